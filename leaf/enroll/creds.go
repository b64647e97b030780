package enroll

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// ErrEnrolled refuses to replace an existing credentials file without
// force.
var ErrEnrolled = errors.New("already exists: the device is enrolled")

// CheckTarget reports whether path may receive the credentials: it must
// not exist unless force is set, and never be a directory. Run it before
// Enroll, so that a token is not spent on credentials that cannot be
// written.
func CheckTarget(path string, force bool) error {
	fi, err := os.Lstat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return fmt.Errorf("credentials file %s: %w", path, err)
	case fi.IsDir():
		return fmt.Errorf("credentials file %s: is a directory", path)
	case !force:
		return fmt.Errorf("%s %w", path, ErrEnrolled)
	}
	return nil
}

// WriteCreds writes creds (a .creds file: the JWT and the seed) to path,
// atomically: a temporary file in the same directory with mode 0600,
// synced, renamed over path, and the directory synced, so a power cut
// leaves the old file or the new one, never a part. A missing directory
// is made with mode 0700. An existing file is replaced only with force
// (ErrEnrolled otherwise).
//
// When run as root into a directory that belongs to another user (the
// canopy user's state directory), the file is given to that user, so
// that the service can read it.
func WriteCreds(path string, creds []byte, force bool) error {
	if err := CheckTarget(path, force); err != nil {
		return err
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("credentials directory: %w", err)
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("write credentials: %w", err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // after the rename, there is nothing to remove
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return fmt.Errorf("write credentials %s: %w", path, err)
	}
	if _, err := f.Write(creds); err != nil {
		f.Close()
		return fmt.Errorf("write credentials %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("write credentials %s: %w", path, err)
	}
	if err := giveToDirOwner(f, dir); err != nil {
		f.Close()
		return fmt.Errorf("write credentials %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write credentials %s: %w", path, err)
	}
	// Checked again right before the rename: the window for another
	// enrollment to write the file meanwhile is as small as it gets
	// without hard links, which not every file system has.
	if err := CheckTarget(path, force); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write credentials: %w", err)
	}
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("write credentials %s: sync directory: %w", path, err)
	}
	return nil
}
