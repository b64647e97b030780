// Package natsproto reads and writes the bytes of the NATS client protocol
// and of the leafnode link, as nats-server v2.15 speaks them.
//
// It owns wire parsing and encoding only: it does no I/O, keeps no
// subscriptions and makes no policy decisions. A [Parser] turns a byte
// stream, fed in chunks of any size, into calls on a [Handler]; the Append
// functions write operations into a caller's buffer without allocating; the
// [Header] helpers read and build message header blocks.
//
// Importers: leaf/natsd (the local NATS server, [ModeServer]) and leaf/uplink
// (the leafnode link to the hub, [ModeLeaf]). Tests of leaf/natsd use
// [ModeClient] to read what it sends, the way nats.go does. This package
// imports only the standard library and must never import nats-server.
//
// # Errors
//
// Every error returned by [Parser.Parse] is fatal to the connection: the
// stream framing is lost, and nats-server closes the connection in each
// case. [WireText] says whether nats-server sends an -ERR before closing, and
// with which text.
//
// # Left to the caller
//
// Connection state and policy belong to the importer, which acts through the
// Handler (a Handler error stops the parse): an operation other than CONNECT
// before authentication ('Authorization Violation'), HPUB on a connection
// whose CONNECT lacked headers:true (nats-server closes without an -ERR),
// verbose +OK replies, subject validation and permissions.
//
// # Where the parser is stricter than nats-server
//
//   - LF always ends a line. nats-server takes the first byte after the blanks
//     following an operation name as the start of the argument even when it
//     is LF, so "PUB \n" swallows the next line; here it is an empty argument.
//   - Each mode accepts only its own operations. nats-server also reads MSG
//     and HMSG from clients, and PUB and SUB on a leaf link; here they are
//     ErrUnknownOp, which no conforming peer sends.
//   - A CR inside an argument is kept as data in every chunking. nats-server
//     drops bytes around it differently depending on how reads split the line.
package natsproto
