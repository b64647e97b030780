// Package stream owns the leaf's streams: store-and-forward of local
// messages to the hub's JetStream.
//
// Every local publish whose subject matches a stream's filters is appended
// durably to that stream's log (package store) before anything else
// happens to it on the way to the hub; a publisher that asked for a reply
// gets a JetStream-compatible PubAck once the message is on disk, so
// js.Publish works against the leaf. A syncer per stream then sends the
// log, in order and pipelined, to the hub as JetStream publishes through
// the uplink, each with a Nats-Msg-Id derived from (device, stream,
// sequence); the log's cursor advances, and retention may delete, only on
// the hub's acknowledgement (saved in the background, so that the window
// stays full while the disk syncs). An optional rate cap (upstream.rate, a
// token bucket) keeps a backlog's drain from taking a thin uplink whole;
// live messages queue behind the backlog either way.
//
// Order: a link failure never reorders (messages travel on one
// connection and are resent from the first unacknowledged one), but when
// the hub stream loses its leader, messages sent while it had none fail
// while later ones may already be stored after the election; they are
// resent and stored once, after those. Nothing is lost or doubled.
//
// Before its first send, a syncer asks the hub stream for the last
// message under the stream's prefix (a JetStream direct get, last by
// subject, which a device's permissions can confine to its own subjects)
// and skips what the hub already holds: acknowledgements lost in a power
// cut do not double messages even after the hub's duplicate window. The
// device's id (the {device} of the prefix and of Nats-Msg-Id) also names
// the syncers' reply inboxes, _INBOX.<device>.…, which is all a device may
// receive answers on.
//
// It is imported by leaf; it imports store, leaf/natsd, leaf/subject and
// leaf/natsproto, never nats-server.
package stream
