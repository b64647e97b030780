package auth

import "errors"

// ErrAuthorization matches (with errors.Is) every error returned by
// [Authenticator.Authenticate]. Its text is the wire text nats-server sends
// in `-ERR 'Authorization Violation'` before it closes the connection, so it
// is capitalised as on the wire.
var ErrAuthorization = errors.New(authViolationText)

// Failure is the error [Authenticator.Authenticate] returns. Its Error text
// is always the wire text of [ErrAuthorization], so a server can send
// err.Error() as is; Reason says why, for the server's log. A Reason never
// holds a secret or a name the client sent.
type Failure struct {
	Reason string
}

func (f *Failure) Error() string { return authViolationText }

// Is makes errors.Is(err, ErrAuthorization) true for every *Failure.
func (f *Failure) Is(target error) bool { return target == ErrAuthorization }

func fail(reason string) error { return &Failure{Reason: reason} }

// Reason returns the reason of an authentication failure, or "" when err is
// not a *Failure.
func Reason(err error) string {
	var f *Failure
	if errors.As(err, &f) {
		return f.Reason
	}
	return ""
}
