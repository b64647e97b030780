package auth

import "fmt"

// PubViolation returns the -ERR text for a refused publish, exactly as
// nats-server's pubPermissionViolation: `Permissions Violation for Publish
// to "x"`. nats.go reports it as an async error and keeps the connection.
func PubViolation[S ~string | ~[]byte](subject S) string {
	return fmt.Sprintf(pubViolationFormat, subject)
}

// SubViolation returns the -ERR text for a refused subscription, exactly as
// nats-server's subPermissionViolation: `Permissions Violation for
// Subscription to "x"`, followed by ` using queue "q"` when queue is not
// empty.
func SubViolation[S ~string | ~[]byte](subject, queue S) string {
	if len(queue) > 0 {
		return fmt.Sprintf(subQueueViolationFormat, subject, queue)
	}
	return fmt.Sprintf(subViolationFormat, subject)
}
