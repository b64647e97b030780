// Package systemd holds what Canopy's binaries need from systemd: the
// hardened unit files of canopy-leaf and canopy-hub with the sysusers.d and
// tmpfiles.d entries they rely on (embedded, and installed under a root
// directory), and the sd_notify protocol (READY=1, WATCHDOG=1, STOPPING=1,
// RELOADING=1), written with the standard library only.
//
// The files in this directory are also what the .deb packages install:
// packaging/ reads them by name. Only appliance imports this package (and
// packaging's tests may); it imports nothing of Canopy's.
package systemd
