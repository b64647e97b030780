//go:build unix

package enroll

import (
	"os"
	"syscall"
)

// giveToDirOwner gives f to the owner of dir when this process runs as
// root and dir belongs to someone else: `sudo canopy-leaf enroll` writes
// into the canopy user's state directory, and the service, running as
// canopy, must read the file.
func giveToDirOwner(f *os.File, dir string) error {
	if os.Geteuid() != 0 {
		return nil
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok || st.Uid == 0 {
		return nil
	}
	return f.Chown(int(st.Uid), int(st.Gid))
}

// syncDir makes a rename in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
