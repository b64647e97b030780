//go:build !unix

package systemd

// syncDir is a no-op where directories cannot be synced.
func syncDir(string) error { return nil }
