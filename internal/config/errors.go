package config

import (
	"errors"
	"fmt"
	"strings"
)

// Error is one configuration problem: where it is (a "file:line" or a
// "flag --name"), which setting (its YAML path, e.g. "cluster.routes[1]"),
// and what is wrong.
type Error struct {
	Loc  string
	Path string
	Msg  string
}

// Errorf returns an *Error for the setting at path. Validation code leaves
// the location empty; Sources.Locate fills it in.
func Errorf(path, format string, args ...any) *Error {
	return &Error{Path: path, Msg: fmt.Sprintf(format, args...)}
}

func (e *Error) Error() string {
	var b strings.Builder
	if e.Loc != "" {
		b.WriteString(e.Loc)
		b.WriteString(": ")
	}
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// List collects configuration problems so that all of them are reported at
// once. The zero value is ready to use.
type List []error

// Addf records a problem with the setting at path.
func (l *List) Addf(path, format string, args ...any) { *l = append(*l, Errorf(path, format, args...)) }

// Add records err (nil is ignored).
func (l *List) Add(err error) {
	if err != nil {
		*l = append(*l, err)
	}
}

// Err returns all recorded problems joined, or nil.
func (l List) Err() error { return errors.Join(l...) }

// Flatten returns the individual errors inside err, looking through
// errors.Join so each problem can be shown or checked on its own.
func Flatten(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, Flatten(e)...)
		}
		return out
	}
	return []error{err}
}

// Nest returns err with the path of every *Error inside it placed under
// prefix, for a configuration struct that validates itself without knowing
// where its parent put it ("listen" becomes "nats.listen").
func Nest(prefix string, err error) error {
	errs := Flatten(err)
	for i, e := range errs {
		var ce *Error
		if errors.As(e, &ce) {
			nested := *ce
			if strings.HasPrefix(ce.Path, "[") {
				nested.Path = prefix + ce.Path // a list's element: "streams[0]"
			} else {
				nested.Path = joinPath(prefix, ce.Path)
			}
			errs[i] = &nested
		}
	}
	return errors.Join(errs...)
}
