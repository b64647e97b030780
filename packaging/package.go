package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/goreleaser/nfpm/v2"
	_ "github.com/goreleaser/nfpm/v2/deb" // registers the deb packager
	"github.com/goreleaser/nfpm/v2/files"
	_ "github.com/goreleaser/nfpm/v2/rpm" // registers the rpm packager
)

// Package metadata.
const (
	maintainer = "Canopy developers <canopy-iot@users.noreply.github.com>"
	homepage   = "https://github.com/canopy-iot/canopy"
	vendor     = "Canopy"
)

// packageFile is one file a package installs.
type packageFile struct {
	Src    string // in the source tree or the build directory
	Dst    string // installed path
	Tar    string // name inside the tarball for install.sh
	Mode   os.FileMode
	Config bool // a configuration file: an upgrade keeps local changes
}

// packageFiles lists what t's packages install. The sysusers and tmpfiles
// entries are named after the package, not canopy.conf, so that canopy-leaf
// and canopy-hub can be installed side by side (dpkg refuses two packages
// owning one path); both declare the same user, which systemd-sysusers
// creates once.
func packageFiles(root string, t target) []packageFile {
	return []packageFile{
		{Src: t.Bin, Dst: "/usr/bin/" + t.Name, Tar: t.Name, Mode: 0o755},
		{Src: filepath.Join(root, "systemd", t.Name+".service"), Dst: "/usr/lib/systemd/system/" + t.Name + ".service", Tar: t.Name + ".service", Mode: 0o644},
		{Src: filepath.Join(root, "systemd", "canopy.sysusers"), Dst: "/usr/lib/sysusers.d/" + t.Name + ".conf", Tar: "sysusers.conf", Mode: 0o644},
		{Src: filepath.Join(root, "systemd", "canopy.tmpfiles"), Dst: "/usr/lib/tmpfiles.d/" + t.Name + ".conf", Tar: "tmpfiles.conf", Mode: 0o644},
		{Src: filepath.Join(root, "packaging", "files", t.Short+".yaml"), Dst: t.Config(), Tar: t.Short + ".yaml", Mode: 0o644, Config: true},
	}
}

// scriptNames are the maintainer scripts in packaging/scripts, Debian's
// names; the rpm gets the same scripts as %pre, %post, %preun and %postun.
var scriptNames = []string{"preinst", "postinst", "prerm", "postrm"}

// renderScript fills a maintainer script template in for p.
func renderScript(text string, p product) string {
	return strings.NewReplacer(
		"@NAME@", p.Name,
		"@STATE_DIR@", p.StateDir(),
		"@CONFIG@", p.Config(),
	).Replace(text)
}

// renderScripts writes p's maintainer scripts into a directory under work
// and returns it.
func renderScripts(root, work string, p product) (string, error) {
	dir := filepath.Join(work, "scripts-"+p.Name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	for _, s := range scriptNames {
		text, err := os.ReadFile(filepath.Join(root, "packaging", "scripts", s))
		if err != nil {
			return "", err
		}
		if err := os.WriteFile(filepath.Join(dir, s), []byte(renderScript(string(text), p)), 0o755); err != nil {
			return "", err
		}
	}
	return dir, nil
}

// writePackage writes t's .deb or .rpm into out and returns its path.
func writePackage(root, work, out, format string, t target, src Source) (string, error) {
	scripts, err := renderScripts(root, work, t.product)
	if err != nil {
		return "", err
	}
	var contents files.Contents
	for _, f := range packageFiles(root, t) {
		c := &files.Content{
			Source:      f.Src,
			Destination: f.Dst,
			FileInfo:    &files.ContentFileInfo{Mode: f.Mode, MTime: src.Time},
		}
		if f.Config {
			c.Type = files.TypeConfigNoReplace // deb: a conffile
		}
		contents = append(contents, c)
	}
	info := nfpm.WithDefaults(&nfpm.Info{
		Name:          t.Name,
		Arch:          t.Deb,
		Platform:      "linux",
		Version:       src.Version,
		VersionSchema: "none",
		Section:       "net",
		Priority:      "optional",
		Maintainer:    maintainer,
		Description:   t.Description,
		Vendor:        vendor,
		Homepage:      homepage,
		MTime:         src.Time,
		Overridables: nfpm.Overridables{
			Contents: contents,
			Scripts: nfpm.Scripts{
				PreInstall:  filepath.Join(scripts, "preinst"),
				PostInstall: filepath.Join(scripts, "postinst"),
				PreRemove:   filepath.Join(scripts, "prerm"),
				PostRemove:  filepath.Join(scripts, "postrm"),
			},
			Deb: nfpm.Deb{Arch: t.Deb},
			RPM: nfpm.RPM{
				Arch:    t.RPM,
				Summary: strings.SplitN(t.Description, "\n", 2)[0],
				Group:   "System Environment/Daemons",
			},
		},
	})
	packager, err := nfpm.Get(format)
	if err != nil {
		return "", err
	}
	path := filepath.Join(out, packager.ConventionalFileName(info))
	var buf bytes.Buffer
	if err := packager.Package(info, &buf); err != nil {
		return "", err
	}
	return path, writeFileAtomic(path, buf.Bytes(), 0o644)
}

// TarballName is the stable name install.sh downloads for a binary and a
// Debian architecture: canopy-leaf_linux_arm64.tar.gz. It carries no
// version, so that a release's latest/download URL finds it.
func TarballName(name, debArch string) string {
	return name + "_linux_" + debArch + ".tar.gz"
}

// writeTarball writes t's tarball for install.sh and its .sha256 into out.
// The tarball is flat: the binary, the unit, sysusers.conf, tmpfiles.conf,
// the default configuration and VERSION.
func writeTarball(root, out string, t target, src Source) ([]string, error) {
	var buf bytes.Buffer
	gz, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if err != nil {
		return nil, err
	}
	gz.ModTime = src.Time
	tw := tar.NewWriter(gz)
	add := func(name string, mode os.FileMode, data []byte) error {
		hdr := &tar.Header{
			Name: name, Mode: int64(mode), Size: int64(len(data)),
			ModTime: src.Time, Typeflag: tar.TypeReg, Format: tar.FormatPAX,
			Uname: "root", Gname: "root",
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		_, err := tw.Write(data)
		return err
	}
	for _, f := range packageFiles(root, t) {
		data, err := os.ReadFile(f.Src)
		if err != nil {
			return nil, err
		}
		if err := add(f.Tar, f.Mode, data); err != nil {
			return nil, err
		}
	}
	if err := add("VERSION", 0o644, []byte(src.Version+"\n")); err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	if err := gz.Close(); err != nil {
		return nil, err
	}
	name := TarballName(t.Name, t.Deb)
	path := filepath.Join(out, name)
	if err := writeFileAtomic(path, buf.Bytes(), 0o644); err != nil {
		return nil, err
	}
	sum := sha256.Sum256(buf.Bytes())
	line := hex.EncodeToString(sum[:]) + "  " + name + "\n" // sha256sum -c reads it
	if err := writeFileAtomic(path+".sha256", []byte(line), 0o644); err != nil {
		return nil, err
	}
	return []string{path, path + ".sha256"}, nil
}

// writeSums writes SHA256SUMS for every artefact in out, this run's and
// those of earlier runs (go run ./packaging -only leaf, then -only hub),
// sorted by name, and returns its path.
func writeSums(out string) (string, error) {
	entries, err := os.ReadDir(out)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	for _, e := range entries { // sorted by name
		name := e.Name()
		if !e.Type().IsRegular() || name == "SHA256SUMS" || strings.HasPrefix(name, ".") || strings.HasSuffix(name, ".sha256") {
			continue
		}
		data, err := os.ReadFile(filepath.Join(out, name))
		if err != nil {
			return "", err
		}
		sum := sha256.Sum256(data)
		b.WriteString(hex.EncodeToString(sum[:]) + "  " + name + "\n")
	}
	path := filepath.Join(out, "SHA256SUMS")
	return path, writeFileAtomic(path, []byte(b.String()), 0o644)
}

func copyFile(src, dst string, mode os.FileMode) error {
	data, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return writeFileAtomic(dst, data, mode)
}

// writeFileAtomic replaces path with data: a reader sees the old file or
// the new one, never a part.
func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

// sourceDateEpoch is the time for files of a build without git:
// $SOURCE_DATE_EPOCH when set (reproducible builds), else now.
func sourceDateEpoch() time.Time {
	if s, err := strconv.ParseInt(os.Getenv("SOURCE_DATE_EPOCH"), 10, 64); err == nil {
		return time.Unix(s, 0).UTC()
	}
	return time.Now().UTC()
}
