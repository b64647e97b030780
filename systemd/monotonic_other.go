//go:build !linux

package systemd

// monotonicUsec is empty where systemd does not run.
func monotonicUsec() string { return "" }
