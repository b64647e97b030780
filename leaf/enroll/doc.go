// Package enroll enrolls a device with its hub (`canopy-leaf enroll`): it
// makes the device's NKey user key pair on the device, redeems a one-time
// enrollment token at the hub's enrollment service for the device's user
// JWT, checks that JWT, and writes the .creds file the uplink
// authenticates with. The seed never leaves the device: only the public
// key and the token travel, over verified TLS (plain HTTP to this machine
// only).
//
// It owns the client side of the enrollment protocol, whose server is in
// hub (POST /v1/enroll). It is imported by appliance/leafapp; it imports
// nkeys and nats-io/jwt, never hub or nats-server.
package enroll
