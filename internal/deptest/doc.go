// Package deptest holds the test that keeps forbidden dependencies out of
// Canopy's binaries: above all, canopy-leaf must never link nats-server,
// which would cost a Raspberry Pi megabytes of binary and of memory. It has
// no code of its own and nothing imports it.
package deptest
