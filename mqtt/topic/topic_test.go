package topic

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

// mappedTopics are topics and the subjects nats-server publishes them on.
// topic_integration_test.go checks each against a real nats-server.
var mappedTopics = []struct{ topic, subject string }{
	{"a", "a"},
	{"a/b/c", "a.b.c"},
	{"/a", "/.a"},
	{"a/", "a./"},
	{"/a/", "/.a./"},
	{"a//b", "a./.b"},
	{"a///b", "a././.b"},
	{"a//", "a././"},
	{"//a", "/./.a"},
	{"/", "/./"},
	{"//", "/././"},
	{"///", "/./././"},
	{"a.b", "a//b"},
	{"a.b/c", "a//b.c"},
	{".", "//"},
	{"..", "////"},
	{"./", "//./"},
	{"/.", "/.//"},
	{"a/./b", "a.//.b"},
	{"a./b", "a//.b"},
	{"a/.b", "a.//b"},
	{"a.//b", "a//./.b"},
	{"a//.b", "a././/b"},
	{"$SYS/broker/load", "$SYS.broker.load"},
	{"$", "$"},
	{"$MQTT/x", "$MQTT.x"}, // publishing there is allowed, as in nats-server
	{"ü/日本/🙂", "ü.日本.🙂"},
	{"a*b/c>d", "a*b.c>d"},
	{"**/>>", "**.>>"},
	{"\x01ctl\x1f", "\x01ctl\x1f"},
	{"c1\u0080", "c1\u0080"},
	{"\uFFFD", "\uFFFD"}, // the replacement character, validly encoded
	{"a-b_c:d=e,f;g@h!i%j&k(l)m", "a-b_c:d=e,f;g@h!i%j&k(l)m"},
	{"sensors/temp/1", "sensors.temp.1"},
}

func TestSubject(t *testing.T) {
	for _, tc := range mappedTopics {
		got, err := Subject(tc.topic)
		if err != nil || got != tc.subject {
			t.Errorf("Subject(%q) = %q, %v; want %q", tc.topic, got, err, tc.subject)
		}
		b, err := AppendSubject([]byte("x."), tc.topic)
		if err != nil || string(b) != "x."+tc.subject {
			t.Errorf("AppendSubject(%q, %q) = %q, %v; want %q", "x.", tc.topic, b, err, "x."+tc.subject)
		}
		back, err := Topic(tc.subject)
		if err != nil || back != tc.topic {
			t.Errorf("Topic(%q) = %q, %v; want %q", tc.subject, back, err, tc.topic)
		}
	}
}

// refusal is an input this package refuses, with the message and sentinel.
type refusal struct {
	in, msg string
	is      error
}

var refusedTopics = []refusal{
	{"", `topic "": is empty: MQTT requires at least one character`, ErrInvalid},
	{"a b/c", `topic "a b/c": level 1 contains a space: NATS subjects cannot carry whitespace`, ErrUnmappable},
	{"a/b\tc", `topic "a/b\tc": level 2 contains whitespace U+0009: NATS subjects cannot carry whitespace`, ErrUnmappable},
	{"a\n", `topic "a\n": level 1 contains whitespace U+000A: NATS subjects cannot carry whitespace`, ErrUnmappable},
	{"\r", `topic "\r": level 1 contains whitespace U+000D: NATS subjects cannot carry whitespace`, ErrUnmappable},
	{"a/\f", `topic "a/\f": level 2 contains whitespace U+000C: NATS subjects cannot carry whitespace`, ErrUnmappable},
	{"a/\v", `topic "a/\v": level 2 contains whitespace U+000B: NATS subjects cannot carry whitespace`, ErrUnmappable},
	{"a\u00a0b", `topic "a\u00a0b": level 1 contains whitespace U+00A0: NATS subjects cannot carry whitespace`, ErrUnmappable},
	{"a\u0085b", `topic "a\u0085b": level 1 contains whitespace U+0085: NATS subjects cannot carry whitespace`, ErrUnmappable},
	{"a/b/\u2028", `topic "a/b/\u2028": level 3 contains whitespace U+2028: NATS subjects cannot carry whitespace`, ErrUnmappable},
	{"\u3000", `topic "\u3000": level 1 contains whitespace U+3000: NATS subjects cannot carry whitespace`, ErrUnmappable},
	{"a\x7fb", `topic "a\x7fb": level 1 contains DEL (U+007F): nats-server refuses it, as its subject tree uses it internally`, ErrUnmappable},
	{"a/\x00", `topic "a/\x00": level 2 contains U+0000: MQTT strings cannot carry it`, ErrInvalid},
	{"a\xffb", `topic "a\xffb": level 1 is not valid UTF-8: MQTT strings must be`, ErrInvalid},
	{"a/\xe6\x97", `topic "a/\xe6\x97": level 2 is not valid UTF-8: MQTT strings must be`, ErrInvalid},
	{"a/+", `topic "a/+": level 2 contains '+': MQTT topic names cannot carry wildcards`, ErrInvalid},
	{"#", `topic "#": level 1 contains '#': MQTT topic names cannot carry wildcards`, ErrInvalid},
	{"a#b", `topic "a#b": level 1 contains '#': MQTT topic names cannot carry wildcards`, ErrInvalid},
	{"a/*", `topic "a/*": level 2 is "*": nats-server would pass it on as a NATS wildcard`, ErrUnmappable},
	{">", `topic ">": level 1 is ">": nats-server would pass it on as a NATS wildcard`, ErrUnmappable},
	{"a/>/b", `topic "a/>/b": level 2 is ">": nats-server would pass it on as a NATS wildcard`, ErrUnmappable},
	{strings.Repeat("a", MaxLen+1), `topic "` + strings.Repeat("a", maxQuoted) + `...": is 65536 bytes long: MQTT strings are at most 65535`, ErrInvalid},
}

func TestSubjectRefuses(t *testing.T) {
	for _, tc := range refusedTopics {
		got, err := Subject(tc.in)
		checkRefusal(t, "Subject", tc, got, err)
		b, err := AppendSubject([]byte("keep"), tc.in)
		checkRefusal(t, "AppendSubject", tc, "", err)
		if string(b) != "keep" {
			t.Errorf("AppendSubject(%q, %q) = %q; want dst unchanged", "keep", tc.in, b)
		}
	}
}

func TestSubjectsOfFilter(t *testing.T) {
	for _, tc := range mappedFilters {
		got, err := Subjects(tc.filter)
		if err != nil || !slices.Equal(got, tc.subjects) {
			t.Errorf("Subjects(%q) = %q, %v; want %q", tc.filter, got, err, tc.subjects)
		}
	}
	// A filter without wildcards is a topic name, unless reserved.
	for _, tc := range mappedTopics {
		if strings.HasPrefix(tc.subject, reservedPrefix) {
			continue
		}
		got, err := Subjects(tc.topic)
		if err != nil || !slices.Equal(got, []string{tc.subject}) {
			t.Errorf("Subjects(%q) = %q, %v; want [%q]", tc.topic, got, err, tc.subject)
		}
	}
}

// mappedFilters are filters and the subjects nats-server subscribes to for
// them; topic_integration_test.go checks each against a real nats-server.
var mappedFilters = []struct {
	filter   string
	subjects []string
}{
	{"a", []string{"a"}},
	{"a/+/c", []string{"a.*.c"}},
	{"+", []string{"*"}},
	{"+/+", []string{"*.*"}},
	{"/+", []string{"/.*"}},
	{"+/", []string{"*./"}},
	{"#", []string{">"}},
	{"a/#", []string{"a", "a.>"}},
	{"a/b/#", []string{"a.b", "a.b.>"}},
	{"/#", []string{"/", "/.>"}},
	{"a//#", []string{"a./", "a./.>"}},
	{"+/#", []string{"*", "*.>"}},
	{"a.b/#", []string{"a//b", "a//b.>"}},
	{"$SYS/#", []string{"$SYS", "$SYS.>"}},
	{"$MQTT", []string{"$MQTT"}},
	{"a*b/+", []string{"a*b.*"}},
}

var refusedFilters = []refusal{
	{"", `filter "": is empty: MQTT requires at least one character`, ErrInvalid},
	{"a+/b", `filter "a+/b": level 1 mixes '+' with other characters: a wildcard must be a whole level`, ErrInvalid},
	{"a/b#", `filter "a/b#": level 2 mixes '#' with other characters: a wildcard must be a whole level`, ErrInvalid},
	{"a/#/b", `filter "a/#/b": level 2 is "#" but not the last level: "#" must end a filter`, ErrInvalid},
	{"#/", `filter "#/": level 1 is "#" but not the last level: "#" must end a filter`, ErrInvalid},
	{"a/*", `filter "a/*": level 2 is "*": nats-server would pass it on as a NATS wildcard`, ErrUnmappable},
	{">/#", `filter ">/#": level 1 is ">": nats-server would pass it on as a NATS wildcard`, ErrUnmappable},
	{"a b/#", `filter "a b/#": level 1 contains a space: NATS subjects cannot carry whitespace`, ErrUnmappable},
	{"$MQTT/#", `filter "$MQTT/#": maps to "$MQTT.>": nats-server keeps its MQTT state under "$MQTT." and refuses such subscriptions`, ErrUnmappable},
	{"$MQTT/sess/+", `filter "$MQTT/sess/+": maps to "$MQTT.sess.*": nats-server keeps its MQTT state under "$MQTT." and refuses such subscriptions`, ErrUnmappable},
}

func TestSubjectsRefuses(t *testing.T) {
	for _, tc := range refusedFilters {
		got, err := Subjects(tc.in)
		checkRefusal(t, "Subjects", tc, strings.Join(got, ","), err)
	}
}

var refusedSubjects = []refusal{
	{"", `subject "": is empty`, ErrInvalid},
	{"a..b", `subject "a..b": token 2 is empty: NATS subjects have no empty tokens`, ErrInvalid},
	{".a", `subject ".a": token 1 is empty: NATS subjects have no empty tokens`, ErrInvalid},
	{"a.", `subject "a.": token 2 is empty: NATS subjects have no empty tokens`, ErrInvalid},
	{"a.*", `subject "a.*": token 2 is the wildcard "*": messages are published on literal subjects`, ErrInvalid},
	{">", `subject ">": token 1 is the wildcard ">": messages are published on literal subjects`, ErrInvalid},
	{"a b", `subject "a b": token 1 contains a space: NATS subjects cannot carry whitespace`, ErrInvalid},
	{"a.\tb", `subject "a.\tb": token 2 contains whitespace U+0009: NATS subjects cannot carry whitespace`, ErrInvalid},
	{"a\vb", `subject "a\vb": token 1 contains whitespace U+000B: NATS subjects cannot carry whitespace`, ErrUnmappable},
	{"a/b", `subject "a/b": token 1 has a '/' that is neither the token "/" nor half of "//": no MQTT topic maps to it`, ErrUnmappable},
	{"a./b", `subject "a./b": token 2 has a '/' that is neither the token "/" nor half of "//": no MQTT topic maps to it`, ErrUnmappable},
	{"a.///", `subject "a.///": token 2 has a '/' that is neither the token "/" nor half of "//": no MQTT topic maps to it`, ErrUnmappable},
	{"a.+", `subject "a.+": token 2 contains '+': MQTT topic names cannot carry wildcards`, ErrUnmappable},
	{"a#", `subject "a#": token 1 contains '#': MQTT topic names cannot carry wildcards`, ErrUnmappable},
	{"a\x00", `subject "a\x00": token 1 contains U+0000: MQTT strings cannot carry it`, ErrUnmappable},
	{"a.\xff", `subject "a.\xff": token 2 is not valid UTF-8: MQTT strings must be`, ErrUnmappable},
	{"\x7f", `subject "\x7f": token 1 contains DEL (U+007F): nats-server refuses it, as its subject tree uses it internally`, ErrUnmappable},
	{"/", `subject "/": is one empty level: MQTT topics cannot be empty`, ErrUnmappable},
	{strings.Repeat("a.", MaxLen/2) + "aa", `subject "` + strings.Repeat("a.", maxQuoted/2) + `...": maps to a 65536-byte topic: MQTT strings are at most 65535`, ErrUnmappable},
}

func TestTopicRefuses(t *testing.T) {
	for _, tc := range refusedSubjects {
		got, err := Topic(tc.in)
		checkRefusal(t, "Topic", tc, got, err)
	}
}

func checkRefusal(t *testing.T, fn string, tc refusal, got string, err error) {
	t.Helper()
	var e *Error
	switch {
	case err == nil:
		t.Errorf("%s(%.40q) = %q; want error %q", fn, tc.in, got, tc.msg)
	case err.Error() != tc.msg:
		t.Errorf("%s(%.40q) error:\n got  %s\n want %s", fn, tc.in, err, tc.msg)
	case !errors.Is(err, tc.is):
		t.Errorf("%s(%.40q) error %q is not %v", fn, tc.in, err, tc.is)
	case !errors.As(err, &e) || e.Input != tc.in:
		t.Errorf("%s(%.40q) error %#v does not carry the input", fn, tc.in, err)
	}
}
