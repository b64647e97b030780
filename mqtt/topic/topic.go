package topic

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Kinds of input, as named in [Error.Kind].
const (
	kindTopic   = "topic"
	kindFilter  = "filter"
	kindSubject = "subject"
)

// Subject maps an MQTT topic name (no wildcards) to the NATS subject
// nats-server's MQTT support publishes it on.
func Subject(topic string) (string, error) {
	// A stack buffer, so that most topics cost only the string.
	var buf [128]byte
	b, err := AppendSubject(buf[:0], topic)
	if err != nil {
		return "", err
	}
	return string(b), nil
}

// AppendSubject appends Subject(topic) to dst and returns the extended
// buffer. It allocates only when dst is too small: it runs on every MQTT
// publish. On error it returns dst unchanged.
func AppendSubject(dst []byte, topic string) ([]byte, error) {
	if err := checkSize(kindTopic, topic); err != nil {
		return dst, err
	}
	out, rest := dst, topic
	for n := 1; ; n++ {
		level, tail, more := strings.Cut(rest, Separator)
		var err error
		if out, err = appendLevel(out, kindTopic, topic, n, level); err != nil {
			return dst, err
		}
		if !more {
			return out, nil
		}
		out = append(out, natsSeparator...)
		rest = tail
	}
}

// Subjects maps an MQTT topic filter to the NATS subject filters that
// together match the topics it matches. That is one subject, or two for a
// filter ending in "/#": MQTT's "a/#" matches "a" too, and NATS's "a.>" does
// not, so nats-server subscribes to "a" as well. The parent comes first:
// Subjects("a/#") is ["a", "a.>"].
func Subjects(filter string) ([]string, error) {
	if err := checkSize(kindFilter, filter); err != nil {
		return nil, err
	}
	b, rest := make([]byte, 0, len(filter)+8), filter
	for n := 1; ; n++ {
		level, tail, more := strings.Cut(rest, Separator)
		switch level {
		case SingleLevelWildcard:
			b = append(b, '*')
		case MultiLevelWildcard:
			if more {
				return nil, fail(kindFilter, filter, n, ErrInvalid, `is "#" but not the last level: "#" must end a filter`)
			}
			b = append(b, '>')
		default:
			var err error
			if b, err = appendLevel(b, kindFilter, filter, n, level); err != nil {
				return nil, err
			}
		}
		if !more {
			break
		}
		b = append(b, natsSeparator...)
		rest = tail
	}
	s := string(b)
	if strings.HasPrefix(s, reservedPrefix) {
		return nil, fail(kindFilter, filter, 0, ErrUnmappable,
			fmt.Sprintf("maps to %q: nats-server keeps its MQTT state under %q and refuses such subscriptions", s, reservedPrefix))
	}
	if parent, ok := strings.CutSuffix(s, natsSeparator+">"); ok {
		return []string{parent, s}, nil
	}
	return []string{s}, nil
}

// Topic maps a NATS subject, as a NATS client or the hub publishes it, to
// the MQTT topic a subscriber receives it on. It is the inverse of Subject,
// and refuses the subjects Subject never produces (see the package doc):
// nats-server delivers those rewritten in ways that collide or break MQTT.
func Topic(subject string) (string, error) {
	if subject == "" {
		return "", fail(kindSubject, subject, 0, ErrInvalid, "is empty")
	}
	var buf [128]byte // as in Subject
	b, rest := buf[:0], subject
	for n := 1; ; n++ {
		token, tail, more := strings.Cut(rest, natsSeparator)
		var err error
		if b, err = appendToken(b, subject, n, token); err != nil {
			return "", err
		}
		if !more {
			break
		}
		b = append(b, Separator...)
		rest = tail
	}
	switch {
	case len(b) == 0:
		return "", fail(kindSubject, subject, 0, ErrUnmappable, "is one empty level: MQTT topics cannot be empty")
	case len(b) > MaxLen:
		return "", fail(kindSubject, subject, 0, ErrUnmappable,
			fmt.Sprintf("maps to a %d-byte topic: MQTT strings are at most %d", len(b), MaxLen))
	}
	return string(b), nil
}

// appendLevel appends the NATS token for level n of in, a topic or filter
// (wildcard levels are the caller's).
func appendLevel(dst []byte, kind, in string, n int, level string) ([]byte, error) {
	switch level {
	case "":
		return append(dst, emptyLevel...), nil
	case "*", ">":
		return dst, fail(kind, in, n, ErrUnmappable,
			fmt.Sprintf("is %q: nats-server would pass it on as a NATS wildcard", level))
	}
	for i := 0; i < len(level); {
		c := level[i]
		switch {
		case c == '.':
			dst = append(dst, escapedDot...)
			i++
			continue
		case plain(c):
			dst = append(dst, c)
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(level[i:])
		if reason, err := refuse(kind, r, size); err != nil {
			return dst, fail(kind, in, n, err, reason)
		}
		dst = append(dst, level[i:i+size]...)
		i += size
	}
	return dst, nil
}

// appendToken appends the MQTT level for token n of subject.
func appendToken(dst []byte, subject string, n int, token string) ([]byte, error) {
	switch token {
	case "":
		return dst, fail(kindSubject, subject, n, ErrInvalid, "is empty: NATS subjects have no empty tokens")
	case emptyLevel:
		return dst, nil
	case "*", ">":
		return dst, fail(kindSubject, subject, n, ErrInvalid,
			fmt.Sprintf("is the wildcard %q: messages are published on literal subjects", token))
	}
	for i := 0; i < len(token); {
		c := token[i]
		switch {
		case c == '/':
			if !strings.HasPrefix(token[i:], escapedDot) {
				return dst, fail(kindSubject, subject, n, ErrUnmappable,
					`has a '/' that is neither the token "/" nor half of "//": no MQTT topic maps to it`)
			}
			dst = append(dst, '.')
			i += len(escapedDot)
			continue
		case plain(c):
			dst = append(dst, c)
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(token[i:])
		if reason, err := refuse(kindSubject, r, size); err != nil {
			return dst, fail(kindSubject, subject, n, err, reason)
		}
		dst = append(dst, token[i:i+size]...)
		i += size
	}
	return dst, nil
}

// plain reports whether c is copied between level and token as is:
// printable ASCII other than '.', '/' and the MQTT wildcards.
func plain(c byte) bool {
	return c > ' ' && c < 0x7f && c != '.' && c != '/' && c != '+' && c != '#'
}

// refuse says why the rune r, size bytes long, cannot be copied between a
// level and a token, or returns a nil error if it can. kind says which side
// the input is on, and so whose rule r breaks.
func refuse(kind string, r rune, size int) (string, error) {
	// A topic or filter breaking MQTT's rules is invalid; a subject whose
	// topic would break them is unmappable.
	mqttRule := ErrInvalid
	if kind == kindSubject {
		mqttRule = ErrUnmappable
	}
	// Likewise for whitespace: the subjects nats-server refuses are invalid.
	natsRule := ErrUnmappable
	if kind == kindSubject && strings.ContainsRune(" \t\n\r\f", r) {
		natsRule = ErrInvalid
	}
	switch {
	case (r == '+' || r == '#') && kind == kindFilter:
		return fmt.Sprintf("mixes %q with other characters: a wildcard must be a whole level", r), ErrInvalid
	case r == '+' || r == '#':
		return fmt.Sprintf("contains %q: MQTT topic names cannot carry wildcards", r), mqttRule
	case r == utf8.RuneError && size == 1:
		return "is not valid UTF-8: MQTT strings must be", mqttRule
	case r == 0:
		return "contains U+0000: MQTT strings cannot carry it", mqttRule
	case r == ' ':
		return "contains a space: NATS subjects cannot carry whitespace", natsRule
	case unicode.IsSpace(r):
		return fmt.Sprintf("contains whitespace %U: NATS subjects cannot carry whitespace", r), natsRule
	case r == '\x7f':
		return "contains DEL (U+007F): nats-server refuses it, as its subject tree uses it internally", ErrUnmappable
	}
	return "", nil
}

// checkSize refuses topics and filters MQTT cannot carry for their length.
func checkSize(kind, s string) error {
	switch {
	case s == "":
		return fail(kind, s, 0, ErrInvalid, "is empty: MQTT requires at least one character")
	case len(s) > MaxLen:
		return fail(kind, s, 0, ErrInvalid, fmt.Sprintf("is %d bytes long: MQTT strings are at most %d", len(s), MaxLen))
	}
	return nil
}

func fail(kind, input string, level int, err error, reason string) error {
	return &Error{Kind: kind, Input: input, Level: level, Reason: reason, Err: err}
}
