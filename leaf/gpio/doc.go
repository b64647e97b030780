// Package gpio bridges the device's GPIO pins into the local NATS subject
// space: each configured input publishes its debounced level on
// hw.gpio.<pin>, each configured output follows commands on
// hw.gpio.<pin>.set. Through the MQTT bridge the same pins are reached as
// hw/gpio/<pin> and hw/gpio/<pin>/set.
//
// Pins come from periph.io, through the Linux GPIO character device
// (/dev/gpiochipN) only: that is the kernel's supported interface on every
// Raspberry Pi (1 to 5) with current Raspberry Pi OS kernels, needs no
// root (membership of the gpio group does), and keeps periph's other board
// drivers (memory-mapped registers, sysfs) out of the leaf binary, which
// has a size budget. A device without GPIO chips, or without a configured
// pin, runs everything else; the bridge says so once in the log.
//
// It is the only package that imports periph.io's host drivers. leaf
// imports it; it imports no other part of Canopy but internal/config.
package gpio
