// Package subject owns NATS subject rules for the leaf: which subjects and
// queue names are valid, whether a filter matches a subject, and the
// subscription index that turns a published subject into the set of
// subscriptions that receive it.
//
// The rules are nats-server's (server/sublist.go), reimplemented so that the
// leaf never links nats-server:
//
//   - A subject is tokens separated by '.'; no token may be empty and no
//     whitespace (space, \t, \n, \r, \f) may appear anywhere.
//   - A token is a wildcard only when it is exactly "*" (one token) or ">"
//     (one or more trailing tokens, last token only). "a*b" and "foo>" are
//     literal tokens.
//   - A published subject is matched token by token as literal bytes: a
//     published "*" token reaches only subscriptions with a wildcard in that
//     position, and a subject with an empty token reaches no one.
//
// Index is the leaf's equivalent of nats-server's Sublist, with a bounded
// match cache. Interest counts subscriptions per (subject, queue) key so the
// uplink can send LS+ and LS- exactly once per key.
//
// It is imported by leaf/natsd (the local server), leaf/uplink and the MQTT
// bridge. It imports only the standard library and must stay that way: it is
// linked into canopy-leaf.
package subject
