package subject

// Wire-visible tokens and names. They are part of the NATS protocol and must
// not change.
const (
	// Separator splits a subject into tokens.
	Separator = "."
	// PartialWildcard is the token that matches exactly one token.
	PartialWildcard = "*"
	// FullWildcard is the token that matches one or more trailing tokens.
	// It is only valid as the last token.
	FullWildcard = ">"
	// SysQueue is the queue name nats-server reserves for internal
	// subscriptions; it refuses it from clients as a permission violation.
	// ValidQueue accepts it, because refusing it is a policy of the server,
	// not a syntax rule.
	SysQueue = "_sys_"
)

// MaxWeight is the largest queue weight nats-server honours in an LS+
// (util.go: queueWeight); larger weights are capped to it.
const MaxWeight = 999_999_999
