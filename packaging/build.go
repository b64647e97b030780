package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
)

// product is one of Canopy's binaries, as packaged.
type product struct {
	Name        string   // package and binary name: canopy-leaf
	Short       string   // -only value and state directory: leaf
	Arches      []string // Debian names of the architectures it is built for
	Description string
}

// Config is the default configuration's path, /etc/canopy/leaf.yaml.
func (p product) Config() string { return "/etc/canopy/" + p.Short + ".yaml" }

// StateDir is the service's state directory, /var/lib/canopy/leaf.
func (p product) StateDir() string { return "/var/lib/canopy/" + p.Short }

var products = []product{
	{
		Name:   "canopy-leaf",
		Short:  "leaf",
		Arches: []string{"amd64", "arm64", "armhf", "armel"},
		Description: "Canopy device node: local NATS server, MQTT broker, link to a hub\n" +
			"canopy-leaf runs on the device (Raspberry Pi class): a small NATS server\n" +
			"for the device's applications, an MQTT broker for sensors, store-and-forward\n" +
			"of telemetry and a leafnode link to a canopy-hub.",
	},
	{
		Name:   "canopy-hub",
		Short:  "hub",
		Arches: []string{"amd64", "arm64"},
		Description: "Canopy hub: NATS server with JetStream for a fleet of devices\n" +
			"canopy-hub runs in the datacenter: it embeds nats-server (clustering,\n" +
			"gateways, JetStream, accounts) and accepts canopy-leaf devices as leaf\n" +
			"nodes.",
	},
}

// arch is a target architecture under its names in each world.
type arch struct {
	Deb    string // dpkg's name, also used in tarball names
	RPM    string
	GOARCH string
	GOARM  string
}

var arches = []arch{
	{Deb: "amd64", RPM: "x86_64", GOARCH: "amd64"},
	{Deb: "arm64", RPM: "aarch64", GOARCH: "arm64"},
	// ARMv7 with VFPv3: Raspberry Pi 2, 3, 4, 5 and Zero 2 on a 32-bit OS.
	{Deb: "armhf", RPM: "armv7hl", GOARCH: "arm", GOARM: "7"},
	// ARMv6 with VFP: Raspberry Pi Zero, Zero W and 1 (and any later Pi).
	{Deb: "armel", RPM: "armv6hl", GOARCH: "arm", GOARM: "6"},
}

func archNamed(deb string) (arch, bool) {
	for _, a := range arches {
		if a.Deb == deb {
			return a, true
		}
	}
	return arch{}, false
}

// Formats Build writes.
const (
	formatDeb = "deb"
	formatRPM = "rpm"
	formatTar = "tar" // tarball + .sha256, for install.sh
)

var allFormats = []string{formatDeb, formatRPM, formatTar}

// Options says what Build builds.
type Options struct {
	Out     string   // output directory, created if missing
	Only    string   // "leaf", "hub" or "" for both
	Arches  []string // Debian architecture names; none means all
	Formats []string // formats; none means all
	Version string   // package version; "" asks git
	Log     io.Writer
}

// Artefact is a file Build wrote.
type Artefact struct {
	Path string
	Size int64
}

// target is one binary for one architecture.
type target struct {
	product
	arch
	Bin string // the built binary
}

// Build cross-builds the binaries Options select and packages them into
// opts.Out. It returns the files it wrote, SHA256SUMS last.
func Build(ctx context.Context, opts Options) ([]Artefact, error) {
	if opts.Log == nil {
		opts.Log = io.Discard
	}
	targets, formats, err := plan(opts)
	if err != nil {
		return nil, err
	}
	root, err := moduleRoot(ctx)
	if err != nil {
		return nil, err
	}
	src, err := source(ctx, root, opts.Version)
	if err != nil {
		return nil, err
	}
	if err := checkInputs(root, targets); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(opts.Out, 0o755); err != nil {
		return nil, err
	}
	work, err := os.MkdirTemp("", "canopy-packaging-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(work)

	fmt.Fprintf(opts.Log, "version %s (commit %s)\n", src.Version, src.Commit)
	var written []string
	for i := range targets {
		t := &targets[i]
		t.Bin = filepath.Join(work, t.Name+"_"+t.Deb, t.Name)
		fmt.Fprintf(opts.Log, "building %s for %s\n", t.Name, t.Deb)
		if err := goBuild(ctx, root, t, src); err != nil {
			return nil, err
		}
		for _, f := range formats {
			var paths []string
			var err error
			switch f {
			case formatDeb, formatRPM:
				var p string
				p, err = writePackage(root, work, opts.Out, f, *t, src)
				paths = []string{p}
			case formatTar:
				paths, err = writeTarball(root, opts.Out, *t, src)
			}
			if err != nil {
				return nil, fmt.Errorf("%s %s %s: %w", t.Name, t.Deb, f, err)
			}
			written = append(written, paths...)
		}
	}
	if slices.Contains(formats, formatTar) {
		p := filepath.Join(opts.Out, "install.sh")
		if err := copyFile(filepath.Join(root, "install.sh"), p, 0o755); err != nil {
			return nil, err
		}
		written = append(written, p)
	}
	sums, err := writeSums(opts.Out)
	if err != nil {
		return nil, err
	}
	written = append(written, sums)

	artefacts := make([]Artefact, 0, len(written))
	for _, p := range written {
		fi, err := os.Stat(p)
		if err != nil {
			return nil, err
		}
		artefacts = append(artefacts, Artefact{Path: p, Size: fi.Size()})
	}
	return artefacts, nil
}

// plan checks the options and lists the targets and formats they select.
func plan(opts Options) ([]target, []string, error) {
	var errs []error
	if opts.Only != "" && opts.Only != "leaf" && opts.Only != "hub" {
		errs = append(errs, fmt.Errorf(`-only %q: want "leaf" or "hub"`, opts.Only))
	}
	for _, a := range opts.Arches {
		if _, ok := archNamed(a); !ok {
			errs = append(errs, fmt.Errorf("-arch %q: want one of amd64, arm64, armhf, armel", a))
		}
	}
	formats := opts.Formats
	if len(formats) == 0 {
		formats = allFormats
	}
	for _, f := range formats {
		if !slices.Contains(allFormats, f) {
			errs = append(errs, fmt.Errorf("-formats %q: want deb, rpm or tar", f))
		}
	}
	if opts.Version != "" {
		if err := checkVersion(opts.Version); err != nil {
			errs = append(errs, fmt.Errorf("-version: %w", err))
		}
	}
	if len(errs) > 0 {
		return nil, nil, errors.Join(errs...)
	}
	var targets []target
	for _, p := range products {
		if opts.Only != "" && opts.Only != p.Short {
			continue
		}
		for _, name := range p.Arches {
			if len(opts.Arches) > 0 && !slices.Contains(opts.Arches, name) {
				continue
			}
			a, _ := archNamed(name)
			targets = append(targets, target{product: p, arch: a})
		}
	}
	if len(targets) == 0 {
		return nil, nil, fmt.Errorf("nothing to build: canopy-hub is built for amd64 and arm64 only")
	}
	return targets, formats, nil
}

// moduleRoot is the directory of Canopy's go.mod, from wherever in the
// module this runs (go run ./packaging at the root, go test in packaging/).
func moduleRoot(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("not inside Canopy's module: run go run ./packaging from the repository")
	}
	return filepath.Dir(gomod), nil
}

// source is the version being packaged: git's, or the one given.
func source(ctx context.Context, root, version string) (Source, error) {
	src, err := gitSource(ctx, root)
	if version == "" {
		return src, err
	}
	if err != nil { // a source tree without git: the version is given
		src = Source{Commit: "unknown", Time: sourceDateEpoch()}
	}
	src.Version = version
	return src, nil
}

// checkInputs makes sure every file a package takes from the tree is there
// before anything is built.
func checkInputs(root string, targets []target) error {
	var errs []error
	seen := map[string]bool{}
	for _, t := range targets {
		for _, c := range packageFiles(root, t) {
			if c.Src == "" || seen[c.Src] {
				continue
			}
			seen[c.Src] = true
			if _, err := os.Stat(c.Src); err != nil {
				errs = append(errs, err)
			}
		}
	}
	for _, s := range scriptNames {
		if _, err := os.Stat(filepath.Join(root, "packaging", "scripts", s)); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// goBuild cross-builds t's binary into t.Bin.
func goBuild(ctx context.Context, root string, t *target, src Source) error {
	const pkg = "github.com/canopy-iot/canopy/internal/version"
	ldflags := fmt.Sprintf("-s -w -X %s.Version=%s -X %s.Commit=%s", pkg, src.Version, pkg, src.Commit)
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags", ldflags, "-o", t.Bin, "./cmd/"+t.Name)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+t.GOARCH)
	if t.GOARM != "" {
		cmd.Env = append(cmd.Env, "GOARM="+t.GOARM)
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s for %s: %w\n%s", t.Name, t.Deb, err, out)
	}
	return nil
}
