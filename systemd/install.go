package systemd

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

var (
	//go:embed canopy-leaf.service
	leafUnit []byte
	//go:embed canopy-hub.service
	hubUnit []byte
	//go:embed canopy.sysusers
	sysusers []byte
	//go:embed canopy.tmpfiles
	tmpfiles []byte
)

// Errors of Install, Uninstall and UnitFile.
var (
	ErrUnknownService = errors.New("not one of Canopy's services")
	ErrNotInstalled   = errors.New("not installed")
)

// Unit is the unit file name of a service: "canopy-leaf.service".
func Unit(service string) string { return service + ".service" }

// Executable is where a service's binary is installed: ExecStart runs it.
func Executable(service string) string { return "/usr/bin/" + service }

// UnitFile returns the unit of a service (one of Services). A non-empty
// executable replaces the binary ExecStart runs (Executable(service)); it
// must be an absolute path of letters, digits and "/._+-@".
func UnitFile(service, executable string) ([]byte, error) {
	var unit []byte
	switch service {
	case "canopy-leaf":
		unit = leafUnit
	case "canopy-hub":
		unit = hubUnit
	default:
		return nil, fmt.Errorf("%q: %w", service, ErrUnknownService)
	}
	if executable == "" || executable == Executable(service) {
		return bytes.Clone(unit), nil
	}
	if err := checkExecutable(executable); err != nil {
		return nil, err
	}
	old := []byte("\nExecStart=" + Executable(service) + " ")
	if bytes.Count(unit, old) != 1 {
		return nil, fmt.Errorf("unit of %s: no single ExecStart=%s line", service, Executable(service))
	}
	return bytes.Replace(unit, old, []byte("\nExecStart="+executable+" "), 1), nil
}

// checkExecutable refuses paths that a unit file would need to quote or
// escape (spaces, %, $, quotes, backslashes).
func checkExecutable(path string) error {
	if !filepath.IsAbs(path) || filepath.Clean(path) != path || filepath.ToSlash(path) != path {
		return fmt.Errorf("executable %q: not a clean absolute path", path)
	}
	for _, r := range path {
		if !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || strings.ContainsRune("/._+-@", r)) {
			return fmt.Errorf("executable %q: %q would need escaping in a unit file; move the binary to a plainer path", path, r)
		}
	}
	return nil
}

// Sysusers is the sysusers.d(5) file both units rely on: the canopy user
// and group, and the gpio and i2c groups.
func Sysusers() []byte { return bytes.Clone(sysusers) }

// Tmpfiles is the tmpfiles.d(5) file for /etc/canopy and its
// configuration files.
func Tmpfiles() []byte { return bytes.Clone(tmpfiles) }

// Options change what Install writes.
type Options struct {
	// Executable is the binary ExecStart runs (default Executable(service)).
	Executable string
}

// Install writes a service's unit to UnitDir, SysusersFile and TmpfilesFile,
// all under root ("/" for this system; a directory to prepare another
// system's tree), replacing what is there. Each file is written atomically.
// It returns the files written, as paths of the installed system (without
// root). Install runs no command: enabling the unit, creating the user and
// reloading systemd are the caller's.
func Install(root, service string, opts Options) ([]string, error) {
	unit, err := UnitFile(service, opts.Executable)
	if err != nil {
		return nil, err
	}
	files := []struct {
		path string
		data []byte
	}{
		{UnitDir + "/" + Unit(service), unit},
		{SysusersFile, sysusers},
		{TmpfilesFile, tmpfiles},
	}
	var written []string
	for _, f := range files {
		if err := writeFile(under(root, f.path), f.data, 0o644); err != nil {
			return written, err
		}
		written = append(written, f.path)
	}
	return written, nil
}

// Uninstall removes what Install wrote for a service under root, and the
// link `systemctl enable` made: the unit, and the sysusers and tmpfiles
// files once no other Canopy unit is left in UnitDir. It returns the files
// removed (paths of the installed system), and ErrNotInstalled when there
// was none. Users, configuration and state stay.
func Uninstall(root, service string) ([]string, error) {
	if !slices.Contains(Services, service) {
		return nil, fmt.Errorf("%q: %w", service, ErrUnknownService)
	}
	paths := []string{UnitDir + "/" + Unit(service), wantsDir + "/" + Unit(service)}
	others := false
	for _, s := range Services {
		if s == service {
			continue
		}
		if _, err := os.Lstat(under(root, UnitDir+"/"+Unit(s))); err == nil {
			others = true
		}
	}
	if !others {
		paths = append(paths, SysusersFile, TmpfilesFile)
	}
	var removed []string
	for _, p := range paths {
		err := os.Remove(under(root, p))
		switch {
		case err == nil:
			removed = append(removed, p)
		case errors.Is(err, fs.ErrNotExist):
		default:
			return removed, err
		}
	}
	if len(removed) == 0 {
		return nil, fmt.Errorf("%s: %w", service, ErrNotInstalled)
	}
	return removed, nil
}

// Installed returns the unit file of a service under root: the one Install
// writes, else a package's.
func Installed(root, service string) (path string, ok bool) {
	for _, dir := range append([]string{UnitDir}, PackageUnitDirs...) {
		p := dir + "/" + Unit(service)
		if fi, err := os.Stat(under(root, p)); err == nil && fi.Mode().IsRegular() {
			return p, true
		}
	}
	return "", false
}

// Booted reports whether systemd is the running service manager.
func Booted() bool {
	fi, err := os.Lstat(BootedDir)
	return err == nil && fi.IsDir()
}

// under places an absolute path of the installed system under root.
func under(root, path string) string {
	if root == "" {
		root = "/"
	}
	return filepath.Join(root, filepath.FromSlash(path))
}

// writeFile replaces path with data atomically: a temporary file in the
// same directory, synced, renamed over path, and the directory synced.
func writeFile(path string, data []byte, perm fs.FileMode) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // after a successful rename, there is nothing to remove
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	return syncDir(dir)
}
