package pki

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// file is one file for writeAll.
type file struct {
	path string
	data []byte
	mode fs.FileMode // of a new file
	max  fs.FileMode // the most a replaced file's mode is kept at
}

// writeAll writes files into dir, each atomically: a reader (a hub
// reloading its certificates) sees the old file or the new one, never a
// part. Every file is written to a temporary file in dir and synced
// before the first is put in place, so a failure on the way leaves
// nothing behind.
//
// Without replace no file may exist: one that appeared meanwhile stops
// the write with ErrExists, and the files this call already placed are
// removed again. With replace, a new file takes the old one's owner,
// group and mode (within max), so that whoever could read it still can.
func writeAll(dir string, replace bool, files ...file) error {
	temps := make([]string, 0, len(files))
	defer func() {
		for _, t := range temps {
			os.Remove(t) // gone already once renamed; still there once linked
		}
	}()
	for _, f := range files {
		t, err := stage(dir, f, replace)
		if err != nil {
			return err
		}
		temps = append(temps, t)
	}
	for i, f := range files {
		if err := place(temps[i], f.path, replace); err != nil {
			if !replace {
				for _, placed := range files[:i] {
					os.Remove(placed.path)
				}
			}
			return err
		}
	}
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}

// stage writes f to a synced temporary file in dir and returns its path.
func stage(dir string, f file, replace bool) (string, error) {
	mode := f.mode
	var old fs.FileInfo
	if replace {
		if fi, err := os.Lstat(f.path); err == nil && fi.Mode().IsRegular() {
			old, mode = fi, fi.Mode().Perm()&f.max
		}
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(f.path)+".tmp-*")
	if err != nil {
		return "", fmt.Errorf("write %s: %w", f.path, err)
	}
	err = func() error {
		if _, err := tmp.Write(f.data); err != nil {
			return err
		}
		if old != nil {
			if err := keepOwner(tmp, old); err != nil {
				return fmt.Errorf("keep the owner of %s: %w", f.path, err)
			}
		}
		// Chmod after chown: a chown may clear mode bits.
		if err := tmp.Chmod(mode); err != nil {
			return err
		}
		return tmp.Sync()
	}()
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp.Name())
		return "", fmt.Errorf("write %s: %w", f.path, err)
	}
	return tmp.Name(), nil
}

// place moves a staged file to path. Without replace it links instead of
// renaming, which fails on an existing file rather than replacing it;
// where the file system has no hard links it checks, then renames.
func place(tmp, path string, replace bool) error {
	if replace {
		if err := os.Rename(tmp, path); err != nil {
			return fmt.Errorf("write %s: %w", path, err)
		}
		return nil
	}
	err := os.Link(tmp, path)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, fs.ErrExist):
		return fmt.Errorf("%s %w", path, ErrExists)
	}
	if err := refuseExisting(path); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
