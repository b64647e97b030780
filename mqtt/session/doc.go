// Package session keeps the MQTT broker's durable state: retained
// messages, and the sessions that outlive their connection (MQTT 3.1.1
// clean session 0, MQTT 5 session expiry interval above 0) with their
// subscriptions and unacknowledged QoS 1/2 messages. Its Hook plugs into
// mochi-mqtt, writes through a small Table interface (the leaf passes a
// *store.Table, so that every write shares the store's group commit) and
// hands the state back to mochi when the broker starts.
//
// Clean sessions cost nothing: the hook writes only for sessions that
// persist, so an ordinary client's QoS 1 traffic never waits for a disk.
//
// It is imported by package mqtt, which wires it into the broker. It
// imports mochi's root, packets and storage-types packages and the
// standard library; never mochi's config or storage engine packages, and
// not package store.
package session
