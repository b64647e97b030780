// Package leaf composes canopy-leaf, the small server that runs on a
// device: its configuration (leaf.yaml) and Node, which runs the local
// NATS server (leaf/natsd) and, as they arrive, the uplink to the hub,
// MQTT and store-and-forward.
//
// Subpackages own the parts: natsproto (the wire protocols), subject
// (subject rules and the subscription index), auth (local client
// authentication), natsd (the local server), gpio (GPIO pins on
// hw.gpio.<pin>) and health (the device's health document); enroll
// (`canopy-leaf enroll`, imported by appliance/leafapp) gets the device's
// credentials from the hub. leaf is imported by appliance; nothing under
// leaf may import nats-server or hub.
package leaf
