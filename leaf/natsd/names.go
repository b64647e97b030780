package natsd

// Texts nats-server sends in -ERR lines, and the fields of its INFO. They
// are the compatibility surface with NATS clients: nats.go decides whether
// to reconnect, retry or give up by reading these exact texts.
const (
	errAuthorization       = "Authorization Violation"
	errAuthTimeout         = "Authentication Timeout"
	errStaleConnection     = "Stale Connection"
	errSlowConsumer        = "Slow Consumer"
	errInvalidSubject      = "Invalid Subject"
	errInvalidPubSubject   = "Invalid Publish Subject"
	errInvalidProtocol     = "invalid client protocol"
	errNoRespondersHeaders = "no responders requires headers support"
	errMaxConnections      = "maximum connections exceeded"
	errMaxSubscriptions    = "maximum subscriptions exceeded"
	errReplyViolation      = "Permissions Violation for Publish with Reply of %q"
)

// AdvertisedVersion is the nats-server version announced to clients when
// no hub version is known. Clients gate features on it (nats.go's key-value
// and object store need 2.6.2 or later; nats.js parses it as semver), so it
// must be a real nats-server release old enough for any hub Canopy supports.
const AdvertisedVersion = "2.10.0"

// protoVersion is the client protocol version: 1 enables async INFO and
// no-echo.
const protoVersion = 1

// reservedReplyPrefixes are reply subjects a client may not use, as in
// nats-server: they are routing state of the servers.
var reservedReplyPrefixes = [][]byte{[]byte("_R_."), []byte("$JS.ACK.")}
