// Package version holds the build's version, set at link time:
//
//	go build -ldflags "-X github.com/canopy-iot/canopy/internal/version.Version=1.2.3 \
//	  -X github.com/canopy-iot/canopy/internal/version.Commit=$(git rev-parse --short HEAD)"
//
// Any package may import it; it imports only the standard library.
package version

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// Set through -ldflags -X; the defaults mark a development build.
var (
	Version = "dev"
	Commit  = ""
)

// String describes the build for `version` subcommands and logs:
// "canopy-hub 1.2.3 (commit abc123, go1.26.8 linux/arm64)".
func String(program string) string {
	commit := Commit
	if commit == "" {
		commit = vcsRevision()
	}
	if commit == "" {
		commit = "unknown"
	}
	return fmt.Sprintf("%s %s (commit %s, %s %s/%s)", program, Version, commit, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

// vcsRevision falls back to the revision the go tool stamps into binaries
// built from a checkout, so a plain `go build` still says what it is.
func vcsRevision() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return ""
	}
	var rev, dirty string
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
			if len(rev) > 12 {
				rev = rev[:12]
			}
		case "vcs.modified":
			if s.Value == "true" {
				dirty = "+dirty"
			}
		}
	}
	if rev == "" {
		return ""
	}
	return rev + dirty
}
