package systemd

import (
	"errors"
	"fmt"
	"math"
	"net"
	"os"
	"strconv"
	"time"
)

// ErrNotifyAddress is a $NOTIFY_SOCKET this package cannot send to (not
// a path, nor an abstract socket "@name": systemd's vsock addresses, say).
var ErrNotifyAddress = errors.New("unsupported notify socket address")

// notifyTimeout bounds a send, so that a service manager that stopped
// reading cannot wedge the caller (the watchdog would then fire).
const notifyTimeout = time.Second

// Notify sends state, newline-separated VAR=VALUE assignments as in
// sd_notify(3), to the service manager's datagram socket named by
// $NOTIFY_SOCKET: a path, or an abstract socket written "@name". Without
// $NOTIFY_SOCKET (not started by systemd, or without Type=notify) it does
// nothing and returns nil.
func Notify(state string) error {
	addr := os.Getenv(EnvNotifySocket)
	if addr == "" {
		return nil
	}
	if addr[0] != '/' && addr[0] != '@' {
		return fmt.Errorf("sd_notify %s=%q: %w", EnvNotifySocket, addr, ErrNotifyAddress)
	}
	// On Linux, net maps a leading '@' to the abstract namespace's NUL.
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: addr, Net: "unixgram"})
	if err != nil {
		return fmt.Errorf("sd_notify: %w", err)
	}
	defer conn.Close()
	if err := conn.SetWriteDeadline(time.Now().Add(notifyTimeout)); err != nil {
		return fmt.Errorf("sd_notify: %w", err)
	}
	if _, err := conn.Write([]byte(state)); err != nil {
		return fmt.Errorf("sd_notify: %w", err)
	}
	return nil
}

// Ready tells the service manager that start-up is complete (READY=1), or
// that a reload is (after Reloading).
func Ready() error { return Notify("READY=1") }

// Stopping tells the service manager that the service is shutting down
// (STOPPING=1).
func Stopping() error { return Notify("STOPPING=1") }

// Watchdog keeps the service manager's watchdog from firing (WATCHDOG=1).
// Send it from the code whose progress proves health, at least twice per
// WatchdogInterval.
func Watchdog() error { return Notify("WATCHDOG=1") }

// Reloading tells the service manager that the service is reloading its
// configuration (RELOADING=1, with MONOTONIC_USEC where the platform has
// CLOCK_MONOTONIC); send Ready when done.
func Reloading() error { return Notify("RELOADING=1" + monotonicUsec()) }

// WatchdogInterval returns the watchdog timeout the service manager set
// for this process ($WATCHDOG_USEC, when $WATCHDOG_PID is unset or names
// this process); false when there is no watchdog. A service sends
// Watchdog at least twice per timeout.
func WatchdogInterval() (time.Duration, bool) {
	v := os.Getenv(EnvWatchdogUsec)
	if v == "" {
		return 0, false
	}
	if pid := os.Getenv(EnvWatchdogPID); pid != "" {
		if p, err := strconv.Atoi(pid); err != nil || p != os.Getpid() {
			return 0, false
		}
	}
	usec, err := strconv.ParseUint(v, 10, 64)
	if err != nil || usec == 0 || usec > math.MaxInt64/uint64(time.Microsecond) {
		return 0, false
	}
	return time.Duration(usec) * time.Microsecond, true
}
