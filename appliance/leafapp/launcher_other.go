//go:build !unix

package leafapp

import "errors"

// execBinary cannot replace a process here: self-updates are for Linux
// devices.
func execBinary(string, []string, []string) error {
	return errors.New("replacing the running process is not supported on this system")
}
