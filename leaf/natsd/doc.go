// Package natsd is canopy-leaf's local NATS server: the listener that
// applications on the device connect to with any NATS client (nats.go,
// nats.js, the nats CLI) and that must be indistinguishable, to them, from
// nats-server.
//
// It owns client connections: the handshake (INFO, CONNECT, the PING/PONG
// that completes a client's connect), authentication through leaf/auth,
// PUB/HPUB/SUB/UNSUB with nats-server's exact replies and error texts,
// delivery through the subscription index of leaf/subject (queue groups,
// no-echo, auto-unsubscribe, the 503 no-responders status), per-connection
// writers that coalesce small messages into few writes, and the limits that
// keep one client from hurting the others (max payload, max control line,
// slow consumers, stale connections).
//
// It is imported by leaf (which wires it to the uplink, MQTT and
// store-and-forward) and imports leaf/natsproto, leaf/subject, leaf/auth
// and the standard library. It must never import nats-server.
package natsd
