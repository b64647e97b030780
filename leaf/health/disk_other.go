//go:build !linux

package health

import "errors"

// statDisk is not implemented off Linux, where the leaf does not ship.
func statDisk(string) (*Disk, error) { return nil, errors.ErrUnsupported }
