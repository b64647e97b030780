package topic

import (
	"errors"
	"fmt"
)

// Sentinels wrapped by every [*Error]; test with errors.Is.
var (
	// ErrInvalid: the input breaks the rules of its own protocol (MQTT for
	// topics and filters, NATS for subjects).
	ErrInvalid = errors.New("invalid")
	// ErrUnmappable: the input is valid, but has no faithful counterpart
	// on the other side.
	ErrUnmappable = errors.New("unmappable")
)

// Error says which input was refused, where and why.
type Error struct {
	// Kind is what Input is: "topic", "filter" or "subject".
	Kind  string
	Input string
	// Level is the 1-based level (topics, filters) or token (subjects) at
	// fault, or 0 when the input as a whole is.
	Level int
	// Reason says what is wrong and why, e.g. "contains a space: NATS
	// subjects cannot carry whitespace".
	Reason string
	// Err is ErrInvalid or ErrUnmappable.
	Err error
}

// maxQuoted bounds how much of the input an error message repeats: inputs
// may be 64 KiB long, and messages end up in logs.
const maxQuoted = 80

func (e *Error) Error() string {
	in := e.Input
	if len(in) > maxQuoted {
		in = in[:maxQuoted] + "..."
	}
	if e.Level == 0 {
		return fmt.Sprintf("%s %q: %s", e.Kind, in, e.Reason)
	}
	part := "level"
	if e.Kind == kindSubject {
		part = "token"
	}
	return fmt.Sprintf("%s %q: %s %d %s", e.Kind, in, part, e.Level, e.Reason)
}

func (e *Error) Unwrap() error { return e.Err }
