// Package uplink links canopy-leaf to its hub: it solicits a NATS leafnode
// connection, so the hub (canopy-hub or any nats-server 2.9 or later) sees
// the device as an ordinary leaf node bound to the tenant's account by the
// device's credentials.
//
// It owns the leafnode protocol on the leaf's side: the handshake (the
// hub's INFO, TLS, CONNECT with the signed nonce, the connect-info INFO
// carrying the device's permissions), interest in both directions (local
// subscriptions announced with LS+/LS-, queue groups with weights; the
// hub's interest kept in an index), messages in both directions (LMSG and
// HMSG, queue names, the JetStream "@" reply rewrite), keepalive, and
// reconnecting with backoff across the hub's URLs. Local clients are
// served by leaf/natsd whether or not the link is up.
//
// It is imported by leaf; it imports leaf/natsd, leaf/natsproto,
// leaf/subject, leaf/uplink/dial, nkeys and nats-io/jwt (to read the
// device id from a .creds file), never nats-server.
package uplink
