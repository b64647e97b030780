package natsproto

import (
	"errors"
	"fmt"
)

// Errors whose text is exactly what nats-server puts in its -ERR line, so a
// server can send err.Error() as is. They are capitalised as on the wire.
var (
	// ErrUnknownOp is an unknown operation name, an operation the parser's
	// mode does not accept, or a payload not followed by CR LF.
	ErrUnknownOp = errors.New("Unknown Protocol Operation")
	// ErrMaxControlLine is a control line argument longer than the limit.
	// nats-server's text is lower case.
	ErrMaxControlLine = errors.New("maximum control line exceeded")
	// ErrMaxPayload is a message whose announced size (header included)
	// is larger than the limit.
	ErrMaxPayload = errors.New("Maximum Payload Violation")
)

// ErrBadArgs matches, with errors.Is, every *ArgError.
var ErrBadArgs = errors.New("natsproto: bad operation arguments")

// ArgError is an operation whose arguments do not parse: a wrong count, a
// size that is not a number, a header larger than the message. nats-server
// closes the connection on these without sending an -ERR, and logs Text.
type ArgError struct {
	// Op is the operation name as written in upper case, e.g. "HPUB".
	Op string
	// Text is nats-server's (or, for MSG and HMSG, nats.go's) own error
	// text, e.g. `processPub Bad or Missing Size: "foo bar"`.
	Text string
}

func (e *ArgError) Error() string { return e.Text }

// Is makes errors.Is(err, ErrBadArgs) true for every *ArgError.
func (e *ArgError) Is(target error) bool { return target == ErrBadArgs }

// argErrorf builds an *ArgError; it runs only on the error path, so it may
// allocate.
func argErrorf(op, format string, a ...any) error {
	return &ArgError{Op: op, Text: fmt.Sprintf(format, a...)}
}

// WireText returns the text nats-server sends as `-ERR '<text>'` before it
// closes the connection for err, and false when it closes without a word
// (argument errors, handler errors). Every error from Parse closes the
// connection either way.
func WireText(err error) (string, bool) {
	switch {
	case errors.Is(err, ErrUnknownOp):
		return ErrUnknownOp.Error(), true
	case errors.Is(err, ErrMaxControlLine):
		return ErrMaxControlLine.Error(), true
	case errors.Is(err, ErrMaxPayload):
		return ErrMaxPayload.Error(), true
	}
	return "", false
}
