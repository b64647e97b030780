package agent

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"

	"github.com/canopy-iot/canopy/firmware"
)

// writeFileAtomic replaces path with data so that a crash leaves either
// the old file or the new one, whole: temp in the same directory → fsync
// → rename → fsync the directory.
func writeFileAtomic(path string, data []byte, perm fs.FileMode) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // after a successful rename, a no-op
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("write %s: sync: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return syncDir(dir)
}

// copyFileAtomic places a copy of src at dst as writeFileAtomic does,
// streaming rather than holding the artifact in memory.
func copyFileAtomic(src, dst string, perm fs.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	dir := filepath.Dir(dst)
	f, err := os.CreateTemp(dir, "."+filepath.Base(dst)+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if _, err := io.Copy(f, in); err != nil {
		f.Close()
		return fmt.Errorf("copy %s to %s: %w", src, dir, err)
	}
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("sync %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, dst); err != nil {
		return err
	}
	return syncDir(dir)
}

// syncDir makes a rename or a new file in dir durable. Windows cannot
// sync a directory (and needs not: the leaf runs on Linux).
func syncDir(dir string) error {
	if runtime.GOOS == "windows" {
		return nil
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}

// renameDurable moves a file and syncs both directories.
func renameDurable(from, to string) error {
	if err := os.MkdirAll(filepath.Dir(to), 0o750); err != nil {
		return err
	}
	if err := os.Rename(from, to); err != nil {
		return err
	}
	if err := syncDir(filepath.Dir(to)); err != nil {
		return err
	}
	if filepath.Dir(from) != filepath.Dir(to) {
		return syncDir(filepath.Dir(from))
	}
	return nil
}

// installedRecord is what the agent keeps of the firmware applied last
// under one name: its signed manifest (verified when it was applied,
// so read here without the keys) and, when the installer left it, the
// artifact.
type installedRecord struct {
	m      firmware.Manifest
	signed []byte
}

// readInstalled returns the record of name, ok false when nothing was
// applied through the agent (or the record is unreadable: then the
// version running is unknown, and everything is downloaded).
func (l layout) readInstalled(name string) (installedRecord, bool) {
	signed, err := os.ReadFile(l.installedManifest(name))
	if err != nil {
		return installedRecord{}, false
	}
	m, err := unverifiedManifest(signed)
	if err != nil || m.Name != name {
		return installedRecord{}, false
	}
	return installedRecord{m: m, signed: signed}, true
}

// unverifiedManifest decodes the manifest inside a Signed document that
// the agent verified before it wrote it to disk.
func unverifiedManifest(signed []byte) (firmware.Manifest, error) {
	var s firmware.Signed
	if err := json.Unmarshal(signed, &s); err != nil {
		return firmware.Manifest{}, err
	}
	var m firmware.Manifest
	if err := json.Unmarshal(s.Manifest, &m); err != nil {
		return firmware.Manifest{}, err
	}
	return m, nil
}

// pending is an install that spans a restart: written before an
// installer that may restart the process is called, read by the next
// process once the installer's Resumer reported the outcome.
type pending struct {
	Key     string          `json:"key"`     // the Desired's key (see desired.key)
	Desired json.RawMessage `json:"desired"` // the Desired document applied
	Signed  json.RawMessage `json:"signed"`  // its signed manifest
	Version string          `json:"version"`
	Staged  string          `json:"staged"` // the staged artifact's path
}

func (l layout) readPending(name string) (pending, bool) {
	b, err := os.ReadFile(l.pendingPath(name))
	if err != nil {
		return pending{}, false
	}
	var p pending
	if json.Unmarshal(b, &p) != nil {
		return pending{}, false
	}
	return p, true
}

// failure is the last Desired that failed. Reading the same Desired
// again (at a start or a reconnection) reports the failure instead of
// retrying it: an installer that rolls back by restarting would
// otherwise loop. A put of the Desired by the hub retries it.
type failure struct {
	Desired string          `json:"desired"` // desiredID of the document
	Status  firmware.Status `json:"status"`
}

func (l layout) readFailure() (failure, bool) {
	b, err := os.ReadFile(l.failedPath())
	if err != nil {
		return failure{}, false
	}
	var f failure
	if json.Unmarshal(b, &f) != nil {
		return failure{}, false
	}
	return f, true
}

func (l layout) writeFailure(f failure) error {
	b, err := json.Marshal(f)
	if err != nil {
		return err
	}
	return writeFileAtomic(l.failedPath(), b, 0o640)
}

func (l layout) clearFailure() error {
	if err := os.Remove(l.failedPath()); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// desiredID identifies a Desired document by its bytes.
func desiredID(doc []byte) string {
	sum := sha256.Sum256(doc)
	return hex.EncodeToString(sum[:])
}

// manifestID identifies a manifest's content (the download state names
// it, so that a state is never applied to another manifest's chunks).
func manifestID(m firmware.Manifest) string {
	b, _ := json.Marshal(m) // a struct of plain fields: no error
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}
