package systemd

import (
	"strconv"

	"golang.org/x/sys/unix"
)

// monotonicUsec is "\nMONOTONIC_USEC=<CLOCK_MONOTONIC in µs>", which lets
// systemd order a RELOADING=1 against its own clock.
func monotonicUsec() string {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return ""
	}
	return "\nMONOTONIC_USEC=" + strconv.FormatInt(ts.Nano()/1000, 10)
}
