package topic

import (
	"errors"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

// seeds are the awkward inputs, used as topics, filters and subjects alike.
func seeds() []string {
	s := []string{
		"a", "/", "//", "///", ".", "..", "./.", "/./", "a/", "/a", "a//b",
		"a.b", "a./b", "a/.b", "a.//b", "a//.b", "//./", "////", "a.///.b",
		"$SYS/x", "$MQTT/x", "*", ">", "a/*", "a*b", "+", "#", "a/#", "/#",
		"+/#", "a+/b", "a/#/b", " ", "a b", "\t", "\v", "\u00a0", "\u2028",
		"\x00", "\x7f", "\x01", "\u0080", "\xff", "\xe6\x97", "\uFFFD", "ü/日本",
	}
	for _, tc := range mappedTopics {
		s = append(s, tc.topic, tc.subject)
	}
	for _, tc := range mappedFilters {
		s = append(s, tc.filter)
	}
	for _, list := range [][]refusal{refusedTopics, refusedFilters, refusedSubjects} {
		for _, tc := range list {
			// The 64 KiB ones are left to the table tests: the fuzzer
			// would spend its time minimizing them.
			if len(tc.in) <= 256 {
				s = append(s, tc.in)
			}
		}
	}
	return s
}

// FuzzRoundTrip checks, for any string, that what Subject accepts maps to a
// valid literal NATS subject that Topic maps back, that what Topic accepts
// Subject maps back, and that every refusal is an *Error.
func FuzzRoundTrip(f *testing.F) {
	for _, s := range seeds() {
		f.Add(s)
	}
	f.Fuzz(checkRoundTrip)
}

// TestRoundTripSmallStrings runs FuzzRoundTrip's checks on every short
// string of the characters that matter, as topics, filters and subjects.
func TestRoundTripSmallStrings(t *testing.T) {
	for _, s := range smallStrings("a/.+#*> \x7f", 4) {
		checkRoundTrip(t, s)
	}
}

func checkRoundTrip(t *testing.T, s string) {
	t.Helper()
	subject, err := Subject(s)
	if err == nil {
		checkLiteral(t, subject)
		if back, err := Topic(subject); err != nil || back != s {
			t.Fatalf("Topic(Subject(%q) = %q) = %q, %v", s, subject, back, err)
		}
		if b, err := AppendSubject([]byte("x"), s); err != nil || string(b) != "x"+subject {
			t.Fatalf("AppendSubject(%q, %q) = %q, %v; want %q", "x", s, b, err, "x"+subject)
		}
	} else {
		checkError(t, "Subject", s, err)
	}

	topic, err := Topic(s)
	if err == nil {
		if back, err := Subject(topic); err != nil || back != s {
			t.Fatalf("Subject(Topic(%q) = %q) = %q, %v", s, topic, back, err)
		}
	} else {
		checkError(t, "Topic", s, err)
	}

	subjects, err := Subjects(s)
	if err != nil {
		checkError(t, "Subjects", s, err)
		return
	}
	for _, sub := range subjects {
		checkFilter(t, sub)
	}
}

// FuzzMatch checks that the subjects of a filter match the subject of a
// topic exactly when the filter matches the topic in MQTT.
func FuzzMatch(f *testing.F) {
	for _, tc := range mappedFilters {
		for _, topic := range []string{"a", "a/b", "a/b/c", "/", "/a", "a/", "a//b", "a.b", "$SYS/x", "a*b/x"} {
			f.Add(tc.filter, topic)
		}
	}
	f.Fuzz(checkMatch)
}

// TestMatchSmallStrings runs FuzzMatch's checks on every pair of short
// filters and topics.
func TestMatchSmallStrings(t *testing.T) {
	for _, filter := range smallStrings("a/+#", 4) {
		for _, topic := range smallStrings("ab/", 4) {
			checkMatch(t, filter, topic)
		}
	}
}

func checkMatch(t *testing.T, filter, topic string) {
	t.Helper()
	subjects, err := Subjects(filter)
	if err != nil {
		return
	}
	subject, err := Subject(topic)
	if err != nil {
		return
	}
	var nats bool
	for _, sub := range subjects {
		nats = nats || natsMatch(sub, subject)
	}
	if want := mqttMatch(filter, topic); nats != want {
		t.Fatalf("filter %q matches topic %q: %v, but %q matches %q: %v", filter, topic, want, subjects, subject, nats)
	}
}

// smallStrings returns every string of 1 to n characters from alphabet.
func smallStrings(alphabet string, n int) []string {
	var all []string
	last := []string{""}
	for range n {
		var next []string
		for _, s := range last {
			for _, c := range alphabet {
				next = append(next, s+string(c))
			}
		}
		all, last = append(all, next...), next
	}
	return all
}

func checkError(t *testing.T, fn, in string, err error) {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) || e.Input != in || !(errors.Is(err, ErrInvalid) || errors.Is(err, ErrUnmappable)) {
		t.Fatalf("%s(%q) error %#v is not an *Error of this input wrapping a sentinel", fn, in, err)
	}
}

// checkLiteral fails unless subject is a valid NATS subject without wildcards.
func checkLiteral(t *testing.T, subject string) {
	t.Helper()
	checkFilter(t, subject)
	for tok := range strings.SplitSeq(subject, ".") {
		if tok == "*" || tok == ">" {
			t.Fatalf("subject %q has the wildcard token %q", subject, tok)
		}
	}
}

// checkFilter fails unless subject is a valid NATS subject filter.
func checkFilter(t *testing.T, subject string) {
	t.Helper()
	if !utf8.ValidString(subject) || strings.ContainsFunc(subject, unicode.IsSpace) {
		t.Fatalf("subject %q is not UTF-8 or has whitespace", subject)
	}
	toks := strings.Split(subject, ".")
	for i, tok := range toks {
		if tok == "" || tok == ">" && i != len(toks)-1 {
			t.Fatalf("subject %q has an empty or misplaced token %d", subject, i+1)
		}
	}
}

// mqttMatch is MQTT's matching rule (MQTT 3.1.1, 4.7.1), without the
// special case for '$' topics, which is delivery, not mapping.
func mqttMatch(filter, topic string) bool {
	f, tp := strings.Split(filter, "/"), strings.Split(topic, "/")
	for i, level := range f {
		switch {
		case level == "#":
			return true
		case i == len(tp):
			return false
		case level != "+" && level != tp[i]:
			return false
		}
	}
	return len(f) == len(tp)
}

// natsMatch is NATS's matching rule for a subject filter and a literal subject.
func natsMatch(filter, subject string) bool {
	f, s := strings.Split(filter, "."), strings.Split(subject, ".")
	for i, tok := range f {
		switch {
		case tok == ">":
			return len(s) > i
		case i == len(s):
			return false
		case tok != "*" && tok != s[i]:
			return false
		}
	}
	return len(f) == len(s)
}
