package config

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// CurrentVersion is the only configuration file version this release reads.
const CurrentVersion = 1

// Override is a value given on the command line for one setting. Flags are
// applied to the parsed file before decoding, so a flag value is checked by
// exactly the same rules as the file value it replaces.
type Override struct {
	Flag   string   // as typed by the user, e.g. "--cluster-listen"
	Path   string   // YAML path, e.g. "cluster.listen"
	Values []string // one value for a scalar setting, any number for a list
	List   bool
}

// Sources says where each setting came from: "hub.yaml:12" or
// "flag --listen". Validation errors are placed with Locate.
type Sources struct {
	file  string
	paths map[string]string
}

// Locate returns where the setting at path (or its nearest configured
// parent) was set; for a setting nobody set, the file itself or "defaults".
func (s Sources) Locate(path string) string {
	for p := path; p != ""; p = parentPath(p) {
		if loc, ok := s.paths[p]; ok {
			return loc
		}
	}
	if s.file != "" {
		return s.file
	}
	return "defaults"
}

// Place fills in the location of every *Error inside err that has none and
// returns all its problems joined, in the order of the lines they are on.
func (s Sources) Place(err error) error {
	errs := Flatten(err)
	for _, e := range errs {
		var ce *Error
		if errors.As(e, &ce) && ce.Loc == "" {
			ce.Loc = s.Locate(ce.Path)
		}
	}
	slices.SortStableFunc(errs, func(a, b error) int { return cmp.Compare(lineOf(a), lineOf(b)) })
	return errors.Join(errs...)
}

// lineOf is the line an error is on; errors without one sort last.
func lineOf(err error) int {
	var ce *Error
	if errors.As(err, &ce) {
		if i := strings.LastIndexByte(ce.Loc, ':'); i >= 0 {
			if n, err := strconv.Atoi(ce.Loc[i+1:]); err == nil {
				return n
			}
		}
	}
	return math.MaxInt
}

// Merge adds to decoding errors the validation errors that concern other
// settings. Validation runs on what could be decoded, so a setting that
// failed to decode may look missing or empty to it; those reports would
// only repeat the decoding error.
func Merge(decodeErr, validateErr error) error {
	decoded := Flatten(decodeErr)
	out := decoded
	for _, v := range Flatten(validateErr) {
		if !overlaps(v, decoded) {
			out = append(out, v)
		}
	}
	return errors.Join(out...)
}

func overlaps(err error, others []error) bool {
	var ce *Error
	if !errors.As(err, &ce) {
		return false
	}
	for _, o := range others {
		var oe *Error
		if !errors.As(o, &oe) {
			continue
		}
		if oe.Path == "" || within(ce.Path, oe.Path) || within(oe.Path, ce.Path) {
			return true
		}
	}
	return false
}

// within reports whether path is inner or a setting inside it.
func within(path, inner string) bool {
	return path == inner || strings.HasPrefix(path, inner+".") || strings.HasPrefix(path, inner+"[")
}

func parentPath(p string) string {
	i := strings.LastIndexAny(p, ".[")
	if i < 0 {
		return ""
	}
	return p[:i]
}

// Decode parses data (the contents of file; nil when there is no file),
// applies overrides and decodes the result strictly into dst, a pointer to
// a struct whose fields carry `yaml` tags. A file must start with
// "version: 1". Every problem found is returned, joined.
func Decode(file string, data []byte, overrides []Override, dst any) (Sources, error) {
	d := &decoder{src: Sources{file: file, paths: map[string]string{}}, flags: map[*yaml.Node]string{}}
	root := &yaml.Node{Kind: yaml.MappingNode}
	if data != nil {
		var doc yaml.Node
		if err := yaml.Unmarshal(data, &doc); err != nil {
			return d.src, syntaxError(file, err)
		}
		if len(doc.Content) == 1 {
			root = doc.Content[0]
		}
		if d.checkVersion(root); root.Kind != yaml.MappingNode {
			return d.src, errors.Join(d.errs...)
		}
	}
	for _, o := range overrides {
		d.override(root, o)
	}
	d.decode(root, reflect.ValueOf(dst).Elem(), "")
	return d.src, errors.Join(d.errs...)
}

// syntaxError places a YAML parser error ("yaml: line 4: mapping values
// are not allowed in this context") at its line.
func syntaxError(file string, err error) error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		if num, text, ok := strings.Cut(rest, ": "); ok {
			if _, err := strconv.Atoi(num); err == nil {
				return &Error{Loc: file + ":" + num, Msg: text}
			}
		}
	}
	return &Error{Loc: file, Msg: msg}
}

type decoder struct {
	src   Sources
	flags map[*yaml.Node]string // nodes that came from flags, not the file
	errs  []error
}

func (d *decoder) loc(n *yaml.Node) string {
	if f, ok := d.flags[n]; ok {
		return "flag " + f
	}
	if n.Line == 0 {
		return d.src.file
	}
	return d.src.file + ":" + strconv.Itoa(n.Line)
}

func (d *decoder) fail(n *yaml.Node, path, format string, args ...any) {
	d.errs = append(d.errs, &Error{Loc: d.loc(n), Path: path, Msg: fmt.Sprintf(format, args...)})
}

func (d *decoder) checkVersion(root *yaml.Node) {
	if root.Kind != yaml.MappingNode {
		d.fail(root, "", "want a mapping of settings at the top level, got a %s", kindName(root))
		return
	}
	for i := 0; i+1 < len(root.Content); i += 2 {
		if root.Content[i].Value != "version" {
			continue
		}
		v := root.Content[i+1]
		if n, err := strconv.Atoi(v.Value); err != nil || n != CurrentVersion {
			d.fail(v, "version", "unsupported version %q (this release reads version %d)", v.Value, CurrentVersion)
		}
		return
	}
	d.errs = append(d.errs, &Error{Loc: d.src.file, Path: "version", Msg: fmt.Sprintf("missing (the file must start with \"version: %d\")", CurrentVersion)})
}

// override sets the node at o.Path, creating the mappings on the way.
func (d *decoder) override(root *yaml.Node, o Override) {
	if root.Kind != yaml.MappingNode {
		return // already reported by checkVersion
	}
	n := root
	keys := strings.Split(o.Path, ".")
	for i, k := range keys {
		var next *yaml.Node
		for j := 0; j+1 < len(n.Content); j += 2 {
			if n.Content[j].Value == k {
				next = n.Content[j+1]
				break
			}
		}
		last := i == len(keys)-1
		if next == nil || (!last && next.Kind != yaml.MappingNode) {
			if next == nil {
				next = &yaml.Node{}
				n.Content = append(n.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: k}, next)
			}
			*next = yaml.Node{Kind: yaml.MappingNode}
		}
		n = next
	}
	*n = yaml.Node{Kind: yaml.ScalarNode, Value: strings.Join(o.Values, ",")}
	if o.List {
		*n = yaml.Node{Kind: yaml.SequenceNode}
		for _, v := range o.Values {
			item := &yaml.Node{Kind: yaml.ScalarNode, Value: v}
			d.flags[item] = o.Flag
			n.Content = append(n.Content, item)
		}
	}
	d.flags[n] = o.Flag
}

var unmarshalerType = reflect.TypeFor[yaml.Unmarshaler]()

func (d *decoder) decode(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if _, ok := d.src.paths[path]; !ok && path != "" {
		d.src.paths[path] = d.loc(n)
	}
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" {
		v.Set(reflect.Zero(v.Type()))
		return
	}
	if v.Kind() == reflect.Pointer {
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		d.decode(n, v.Elem(), path)
		return
	}
	if reflect.PointerTo(v.Type()).Implements(unmarshalerType) {
		if err := v.Addr().Interface().(yaml.Unmarshaler).UnmarshalYAML(n); err != nil {
			d.fail(n, path, "%v", err)
		}
		return
	}
	switch v.Kind() {
	case reflect.Struct:
		d.decodeStruct(n, v, path)
	case reflect.Map:
		d.decodeMap(n, v, path)
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			d.fail(n, path, "want a list, got a %s", kindName(n))
			return
		}
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, item := range n.Content {
			d.decode(item, s.Index(i), fmt.Sprintf("%s[%d]", path, i))
		}
		v.Set(s)
	default:
		d.decodeScalar(n, v, path)
	}
}

func (d *decoder) decodeStruct(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.MappingNode {
		d.fail(n, path, "want a mapping of settings, got a %s", kindName(n))
		return
	}
	fields := map[string]int{}
	for i := range v.NumField() {
		name, _, _ := strings.Cut(v.Type().Field(i).Tag.Get("yaml"), ",")
		if name != "" && name != "-" {
			fields[name] = i
		}
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		key, val := n.Content[i], n.Content[i+1]
		p := joinPath(path, key.Value)
		idx, ok := fields[key.Value]
		switch {
		case !ok:
			d.fail(key, p, "unknown key%s", suggest(key.Value, fields))
		case seen[key.Value]:
			d.fail(key, p, "duplicate key")
		default:
			seen[key.Value] = true
			// A setting is located at its key: for a nested mapping the
			// value's own line would be that of its first child.
			d.src.paths[p] = d.loc(key)
			if _, fromFlag := d.flags[val]; fromFlag {
				d.src.paths[p] = d.loc(val)
			}
			d.decode(val, v.Field(idx), p)
		}
	}
}

func (d *decoder) decodeMap(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.MappingNode {
		d.fail(n, path, "want a mapping, got a %s", kindName(n))
		return
	}
	if v.Type().Key().Kind() != reflect.String {
		panic("config: map keys must be strings: " + v.Type().String())
	}
	m := reflect.MakeMapWithSize(v.Type(), len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		key, val := n.Content[i], n.Content[i+1]
		p := joinPath(path, key.Value)
		k := reflect.ValueOf(key.Value).Convert(v.Type().Key())
		if m.MapIndex(k).IsValid() {
			d.fail(key, p, "duplicate key")
			continue
		}
		elem := reflect.New(v.Type().Elem()).Elem()
		d.src.paths[p] = d.loc(key)
		d.decode(val, elem, p)
		m.SetMapIndex(k, elem)
	}
	v.Set(m)
}

func (d *decoder) decodeScalar(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.ScalarNode {
		d.fail(n, path, "want a single value, got a %s", kindName(n))
		return
	}
	switch v.Kind() {
	case reflect.String:
		v.SetString(n.Value)
	case reflect.Bool:
		b, err := strconv.ParseBool(n.Value)
		if err != nil {
			d.fail(n, path, "want true or false, got %q", n.Value)
			return
		}
		v.SetBool(b)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		i, err := strconv.ParseInt(n.Value, 0, v.Type().Bits())
		if err != nil {
			d.fail(n, path, "want an integer, got %q", n.Value)
			return
		}
		v.SetInt(i)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		u, err := strconv.ParseUint(n.Value, 0, v.Type().Bits())
		if err != nil {
			d.fail(n, path, "want a non-negative integer, got %q", n.Value)
			return
		}
		v.SetUint(u)
	case reflect.Float32, reflect.Float64:
		f, err := strconv.ParseFloat(n.Value, v.Type().Bits())
		if err != nil {
			d.fail(n, path, "want a number, got %q", n.Value)
			return
		}
		v.SetFloat(f)
	default:
		panic("config: unsupported field type " + v.Type().String() + " at " + path)
	}
}

func joinPath(parent, key string) string {
	if parent == "" {
		return key
	}
	return parent + "." + key
}

// suggest names the known key closest to an unknown one, to catch typos.
func suggest(key string, known map[string]int) string {
	best, bestDist := "", 3
	for k := range known {
		if dist := editDistance(key, k); dist < bestDist || (dist == bestDist && best != "" && k < best) {
			best, bestDist = k, dist
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
