package dial

// Wire-visible names and numbers. They are the compatibility surface with
// nats-server's leafnode and websocket listeners and with HTTP proxies.

// URL schemes Dial accepts.
const (
	SchemeNATSLeaf = "nats-leaf"
	SchemeNATS     = "nats"
	SchemeTCP      = "tcp"
	SchemeTLS      = "tls"
	SchemeWS       = "ws"
	SchemeWSS      = "wss"
)

// Default ports, by scheme family.
const (
	DefaultLeafPort = "7422" // nats-server's leafnode listener (DEFAULT_LEAFNODE_PORT)
	DefaultWSPort   = "80"
	DefaultWSSPort  = "443"
	// defaultProxyPort applies to a proxy URL without a port, as
	// nats-server does for http:// proxies.
	defaultProxyPort = "80"
)

// LeafNodePath is the request path that tells nats-server's websocket
// listener to create a leafnode connection rather than a client one: the
// listener checks that the path ends with it (websocket.go: wsUpgrade), and
// nats-server's own solicitor appends it to any path in the URL
// (leafnode.go: leafNodeSolicitWSConnection).
const LeafNodePath = "/leafnode"

// RFC 6455 handshake values.
const (
	wsGUID    = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11" // section 1.3
	wsVersion = "13"
)

// RFC 6455 section 5.2 opcodes and header bits.
const (
	opContinuation = 0x0
	opText         = 0x1
	opBinary       = 0x2
	opClose        = 0x8
	opPing         = 0x9
	opPong         = 0xA

	finBit  = 0x80
	rsvBits = 0x70
	maskBit = 0x80

	maxControlPayload = 125
	maxFrameHeader    = 14 // 2 + 8 bytes of length + 4 bytes of mask key
)

// RFC 6455 section 7.4.1 close status codes that this package sends.
const (
	closeNormal        = 1000
	closeProtocolError = 1002
	closeNoStatus      = 1005 // never on the wire: "the close frame had no code"
)
