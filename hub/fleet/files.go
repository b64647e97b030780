package fleet

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"

	"github.com/nats-io/nkeys"
)

const (
	dirMode  fs.FileMode = 0o700
	fileMode fs.FileMode = 0o600
)

// writeFile writes data to path atomically: a temporary file in the same
// directory, fsync, rename, fsync of the directory. The file is 0600.
func writeFile(path string, data []byte) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err = f.Chmod(fileMode); err != nil {
		return err
	}
	if _, err = f.Write(data); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	if err = os.Rename(tmp, path); err != nil {
		return err
	}
	return syncDir(dir)
}

// syncDir makes a directory's entries (a rename, a new file) durable.
func syncDir(dir string) error {
	if runtime.GOOS == "windows" {
		return nil // directories cannot be opened for sync there
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}

// mkdir creates one directory with mode 0700 whatever the umask, and makes
// its entry in the parent durable.
func mkdir(path string) error {
	if err := os.Mkdir(path, dirMode); err != nil {
		return err
	}
	if err := os.Chmod(path, dirMode); err != nil {
		return err
	}
	return syncDir(filepath.Dir(path))
}

// writeSeed stores a key pair's seed, as nsc does: the seed and a newline.
func writeSeed(path string, kp nkeys.KeyPair) error {
	seed, err := kp.Seed()
	if err != nil {
		return err
	}
	// Seed returns the key pair's own bytes: write a copy, and wipe that.
	buf := append(append(make([]byte, 0, len(seed)+1), seed...), '\n')
	defer wipe(buf)
	return writeFile(path, buf)
}

// readSeed loads a key pair from a seed file. The caller wipes it.
func readSeed(path string) (nkeys.KeyPair, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	defer wipe(b)
	kp, err := nkeys.FromSeed(bytes.TrimSpace(b))
	if err != nil {
		return nil, fmt.Errorf("%s: not an nkeys seed: %w", path, err)
	}
	return kp, nil
}

// publicKeyOf is the public key of the seed in path.
func publicKeyOf(path string) (string, error) {
	kp, err := readSeed(path)
	if err != nil {
		return "", err
	}
	defer kp.Wipe()
	return kp.PublicKey()
}

func wipe(b []byte) {
	for i := range b {
		b[i] = 'x'
	}
}

// CheckPermissions refuses a key directory that group or others can reach:
// the directory itself or any directory inside it with a mode other than
// 0700-or-narrower, any file with a mode other than 0600-or-narrower. The
// error names the first such path, its mode and the command that fixes it.
// A symbolic link as dir is followed; links inside are checked by their
// targets' modes and not descended into. On Windows, where modes do not
// express access control, it checks nothing.
func CheckPermissions(dir string) error {
	if runtime.GOOS == "windows" {
		return nil
	}
	root := dir
	if fi, err := os.Lstat(dir); err != nil {
		return fmt.Errorf("key directory: %w", err)
	} else if fi.Mode()&fs.ModeSymlink != 0 {
		if root, err = filepath.EvalSymlinks(dir); err != nil {
			return fmt.Errorf("key directory: %w", err)
		}
	}
	if fi, err := os.Stat(root); err != nil {
		return fmt.Errorf("key directory: %w", err)
	} else if !fi.IsDir() {
		return fmt.Errorf("key directory: %s is not a directory", dir)
	}
	return filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("key directory: %w", err)
		}
		var fi fs.FileInfo
		if d.Type()&fs.ModeSymlink != 0 {
			fi, err = os.Stat(path)
		} else {
			fi, err = d.Info()
		}
		if err != nil {
			return fmt.Errorf("key directory: %w", err)
		}
		perm := fi.Mode().Perm()
		if perm&0o077 == 0 {
			return nil
		}
		if fi.IsDir() {
			return fmt.Errorf("key directory: %s is accessible by group or others (mode %04o); fix with: chmod 700 %s", path, perm, path)
		}
		return fmt.Errorf("key directory: %s is readable by group or others (mode %04o); fix with: chmod 600 %s", path, perm, path)
	})
}

// exists reports whether path exists; other errors than absence are errors.
func exists(path string) (bool, error) {
	_, err := os.Lstat(path)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	default:
		return false, err
	}
}
