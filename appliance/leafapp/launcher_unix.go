//go:build unix

package leafapp

import "syscall"

// execBinary replaces this process with path: same process id, so that
// systemd's main process (Type=notify, NotifyAccess=main) and watchdog
// follow.
func execBinary(path string, argv, env []string) error { return syscall.Exec(path, argv, env) }
