// Package topic maps MQTT topic names and filters to NATS subjects and back,
// with the results nats-server's MQTT support gives (server/mqtt.go:
// mqttToNATSSubjectConversion, natsSubjectToMQTTTopic and the extra
// subscription it makes for a filter ending in "/#"). A device then sees the
// same subjects whether it talks MQTT to a canopy-leaf or to nats-server.
//
// An MQTT level becomes a NATS token; levels are joined with '.':
//
//	MQTT topic       NATS subject   rule
//	a/b/c            a.b.c          a level is a token
//	/a               /.a            an empty level is the token "/"
//	a/               a./
//	a//b             a./.b
//	/                /./            two empty levels
//	a.b/c            a//b.c         '.' inside a level is "//"
//	$SYS/x, a*b, ü   $SYS.x, a*b, ü everything else is copied byte for byte
//
//	MQTT filter      NATS subjects
//	a/+/c            a.*.c          "+" is "*", only as a whole level
//	#                >
//	a/#              a, a.>         "a/#" also matches "a", as nats-server
//	/#               /, /.>         (the "/" subscription matches nothing
//	                                 Subject produces; nats-server makes it too)
//
// Topic is the inverse of Subject. It accepts exactly the subjects Subject
// produces, so Subject(Topic(s)) == s and Topic(Subject(t)) == t.
//
// Refusals, each an [*Error] that wraps [ErrInvalid] (the input breaks the
// rules of its own protocol) or [ErrUnmappable] (it is valid there but has no
// faithful counterpart on the other side):
//
//   - Topics and filters that break MQTT: empty, longer than 65535 bytes,
//     not UTF-8, containing U+0000, '+' or '#' in a topic name, a wildcard
//     sharing its level with other characters ("a+/b"), '#' not last.
//     nats-server refuses them all, except that in a filter it takes a
//     wildcard sharing its level as a literal character: "a+/b" becomes the
//     subject "a*.b", "a/b#" becomes "a.b>".
//   - Whitespace anywhere (ErrUnmappable). nats-server refuses only space,
//     \t, \n, \r and \f; this package refuses every unicode.IsSpace rune
//     (\v, U+0085, U+00A0, U+2028, ...): code that splits on any
//     whitespace (strings.Fields, for one) would cut such a subject apart.
//   - DEL (U+007F) (ErrUnmappable), which nats-server refuses because its
//     subject tree uses it internally.
//   - A level that is exactly "*" or ">" (ErrUnmappable). nats-server copies
//     it into the subject, where it becomes a wildcard: a publish to "a/*"
//     goes out on "a.*", and the filter "a/*" matches "a/x". Inside a longer
//     level ("a*b") the characters are literal in NATS too, and are copied.
//   - A filter whose subject starts with "$MQTT." (ErrUnmappable), as
//     nats-server refuses it: that is where it keeps its MQTT state.
//     Publishing to such a topic is allowed, as in nats-server.
//   - Subjects Subject never produces (Topic): empty tokens or wildcard
//     tokens (ErrInvalid); a '/' that is neither the token "/" nor part of
//     "//", '+' or '#', or any character refused above (ErrUnmappable).
//     nats-server delivers these anyway: "a/b" arrives as topic "ab" and
//     "a./b" as "a/b", colliding with the subjects "ab" and "a.b"; "a.+"
//     arrives as the invalid topic name "a/+", "/" as the empty topic, and
//     "a.*" as "a/*".
//
// Not mapping, and so left to the caller: nats-server does not deliver a
// subject starting with '$' to a subscription whose filter starts with a
// wildcard ("#", "+/..."), per MQTT-4.7.2-1.
//
// The package imports only the standard library; any package may import it.
package topic
