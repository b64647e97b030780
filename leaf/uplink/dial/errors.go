package dial

import "errors"

// Sentinel errors. Errors returned by this package wrap them with the
// (redacted) URL and the step that failed; test with errors.Is.
var (
	// ErrURL: the hub URL cannot be used (parse error, no host, unknown
	// scheme) or the proxy URL is not http://host[:port].
	ErrURL = errors.New("invalid URL")
	// ErrProxy: the proxy refused the CONNECT or did not answer with
	// HTTP. The error names the proxy (without its password) and quotes
	// its status line.
	ErrProxy = errors.New("proxy refused the tunnel")
	// ErrHandshake: the WebSocket upgrade was refused or its response
	// does not satisfy RFC 6455 section 4.1.
	ErrHandshake = errors.New("websocket handshake failed")
	// ErrProtocol: the hub broke RFC 6455 framing. The connection is
	// unusable afterwards; a close frame with status 1002 has been sent
	// where possible.
	ErrProtocol = errors.New("websocket protocol violation")
)
