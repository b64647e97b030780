// Package mqtt is canopy-leaf's MQTT broker for sensors: mochi-mqtt
// (MQTT 3.1.1 and 5.0, QoS 0-2, retained and will messages, shared
// subscriptions) behind a narrow Broker, joined to the local NATS server.
// With its subpackages it is the only importer of mochi-mqtt, and it
// imports only mochi's root, listeners, packets and the storage record
// types: never its config or storage engine packages, which would drag
// badger, pebble and redis into the leaf.
//
// The bridge makes MQTT and NATS one subject space. An MQTT publish on
// a/b/c reaches NATS subscribers of a.b.c, the hub through the uplink and
// the leaf streams whose subjects match; a NATS or hub message reaches
// MQTT subscribers at their subscription's QoS (or the MQTT publisher's,
// when it came from one: Nmqtt-Pub, as in nats-server). Topics map to
// subjects exactly as nats-server's MQTT support maps them (package
// mqtt/topic); a topic NATS cannot carry is refused, never rewritten.
// MQTT 5 user properties are NATS headers, the response topic is the
// reply subject. Shared subscriptions ($share/<group>/<filter>) are
// members of the NATS queue group <group>, so MQTT and NATS workers share
// one load-balanced group. Every subscriber gets a message once, whichever
// side published it.
//
// A QoS 1/2 publish on a leaf stream's subject is acknowledged only once
// it is on disk; a stream that refuses it (full, discard: new) answers an
// MQTT 5 publisher with reason code 0x97 (quota exceeded) and drops the
// message for an MQTT 3.1.1 one (which then gets no acknowledgement and a
// log line says why).
//
// Retained messages and persistent sessions (subscriptions, undelivered
// QoS 1/2 messages) are kept through package mqtt/session in the leaf's
// store and survive a restart.
package mqtt
