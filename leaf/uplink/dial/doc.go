// Package dial owns the transport from canopy-leaf to its hub: it opens the
// byte stream that carries the NATS leafnode protocol, whatever lies
// between the device and the hub's leafnode listener.
//
// [Dial] connects over plain TCP (nats-leaf://, nats://, tcp://, tls://),
// over WebSocket (ws://, and wss:// with TLS underneath), optionally
// through an HTTP CONNECT proxy, and returns a [net.Conn] that reads and
// writes the raw leafnode bytes in every case. For TCP URLs the hub starts
// TLS only after its INFO, so Dial returns the plain connection and the
// caller runs [UpgradeTLS] once the INFO asks for it (or the URL is
// tls://); [Options.TLSFirst] covers hubs configured with handshake_first.
//
// The WebSocket client (RFC 6455) is written against the standard library:
// no extensions, masked binary frames out, a streaming frame reader in that
// answers pings and closes and rejects protocol violations.
//
// It is imported by leaf/uplink. It imports only the standard library and
// must never import nats-server (its tests do, to stand up a real hub).
package dial
