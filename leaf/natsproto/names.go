package natsproto

// Wire-visible constants. They are the compatibility surface with nats-server
// and its clients, so they live together here.

// Complete operations that carry no arguments, ready to write.
const (
	PingLine = "PING\r\n"
	PongLine = "PONG\r\n"
	OKLine   = "+OK\r\n"
)

// Limits that mirror nats-server's defaults (const.go).
const (
	// DefaultMaxControlLine is MAX_CONTROL_LINE_SIZE: the longest argument
	// part of a client's control line, the CONNECT JSON included.
	DefaultMaxControlLine = 4096
	// DefaultMaxLinkControlLine is what nats-server allows on leaf, route and
	// gateway connections (16 × MAX_CONTROL_LINE_SIZE). A hub's INFO and an
	// LMSG naming many queue groups are longer than anything a client sends.
	DefaultMaxLinkControlLine = 16 * DefaultMaxControlLine
	// DefaultMaxPayload is MAX_PAYLOAD_SIZE, 1 MiB.
	DefaultMaxPayload = 1 << 20
	// MaxQueueWeight is the largest LS+ queue weight nats-server accepts.
	MaxQueueWeight = 999_999_999
)

// Header block constants (reference A.8).
const (
	// HeaderVersion starts every header block.
	HeaderVersion = "NATS/1.0"
	// StatusNoResponders is the status of the message a server sends a
	// requester when nobody received its request.
	StatusNoResponders = "503"
	// HeaderSubject names the subject in a no-responders message.
	HeaderSubject = "Nats-Subject"
)

const crlf = "\r\n"
