// Command packaging cross-builds canopy-leaf and canopy-hub and packages
// them for the machines they run on: .deb and .rpm packages (built with
// nfpm as a library) and, for install.sh, tarballs with .sha256 files.
//
//	go run ./packaging                        # everything into dist/
//	go run ./packaging -only leaf -arch arm64 # one package set
//	go run ./packaging -formats deb           # only .deb packages
//
// canopy-leaf is built for amd64, arm64, armhf (GOARM=7: Raspberry Pi 2 and
// later on a 32-bit OS) and armel (GOARM=6: Raspberry Pi Zero and 1);
// canopy-hub for amd64 and arm64. Binaries are static (CGO_ENABLED=0),
// built with -trimpath and stamped with the version git describes (see
// packageVersion).
//
// A package holds the binary in /usr/bin, its systemd unit, sysusers and
// tmpfiles entries from systemd/, a default configuration from files/ (a
// conffile: upgrades keep local changes) and the maintainer scripts in
// scripts/. What a package does on install, upgrade, remove and purge is
// written at the top of each script.
//
// This package is a build tool: nothing imports it, and it is never linked
// into Canopy's binaries.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "packaging: %v\n", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("packaging", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("out", "dist", "directory the packages are written to")
	only := fs.String("only", "", `build only "leaf" or "hub" (default both)`)
	arches := fs.String("arch", "", "comma-separated Debian architectures: amd64,arm64,armhf,armel (default all of each binary's)")
	formats := fs.String("formats", strings.Join(allFormats, ","), "comma-separated formats: deb, rpm, tar (tarballs and .sha256 for install.sh)")
	ver := fs.String("version", "", "package version (default from `git describe --tags`)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	opts := Options{
		Out:     *out,
		Only:    *only,
		Arches:  splitList(*arches),
		Formats: splitList(*formats),
		Version: *ver,
		Log:     stdout,
	}
	artefacts, err := Build(ctx, opts)
	if err != nil {
		return err
	}
	for _, a := range artefacts {
		fmt.Fprintf(stdout, "%9d  %s\n", a.Size, a.Path)
	}
	return nil
}

func splitList(s string) []string {
	var list []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			list = append(list, f)
		}
	}
	return list
}
