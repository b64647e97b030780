// Package health publishes the device's health on the local NATS server
// at a fixed interval: CPU temperature, the Raspberry Pi firmware's
// under-voltage and throttling flags, load, memory, the data directory's
// free space, uptime and the leaf's version, as one JSON document.
//
// Everything is read from procfs and sysfs below a configurable root, so
// that tests (and containers that mount the host's /proc and /sys
// elsewhere) can point it at another tree. A value that cannot be read
// is left out of the document; the first failure of each is logged at
// debug level, once.
//
// leaf imports it; besides the standard library it imports only
// internal/config, internal/version and leaf/subject.
package health
