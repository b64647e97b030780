package health

import (
	"fmt"
	"syscall"
)

// statDisk reads the space of the file system holding path.
func statDisk(path string) (*Disk, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(path, &st); err != nil {
		return nil, fmt.Errorf("statfs %s: %w", path, err)
	}
	bs := uint64(st.Bsize)
	return &Disk{Path: path, FreeBytes: uint64(st.Bavail) * bs, TotalBytes: uint64(st.Blocks) * bs}, nil
}
