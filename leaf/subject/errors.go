package subject

import "errors"

// Sentinel errors. Index methods wrap them with the offending subject or
// queue, so test them with errors.Is.
var (
	// ErrInvalidSubject means a subscription subject is not a valid filter
	// (see ValidSubscribe).
	ErrInvalidSubject = errors.New("invalid subject")
	// ErrInvalidQueue means a queue name is not valid (see ValidQueue).
	ErrInvalidQueue = errors.New("invalid queue name")
	// ErrNotFound means a subscription or key is not in the index.
	ErrNotFound = errors.New("subscription not found")
)
