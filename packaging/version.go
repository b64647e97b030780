package main

import (
	"context"
	"fmt"
	"os/exec"
	"regexp"
	"strings"
	"time"
)

// Source describes the commit being packaged.
type Source struct {
	Version string    // package version, valid for dpkg and rpm
	Commit  string    // short commit id, "+dirty" with uncommitted changes
	Time    time.Time // commit time: package file times, for reproducible packages
}

// describeArgs are how the version is found: the nearest version tag (vX.Y.Z),
// the commits since it and whether the tree has uncommitted changes. Tags not
// shaped like a version are ignored.
var describeArgs = []string{"describe", "--tags", "--always", "--dirty", "--match", "v[0-9]*"}

// gitSource asks git about the checkout in dir.
func gitSource(ctx context.Context, dir string) (Source, error) {
	git := func(args ...string) (string, error) {
		cmd := exec.CommandContext(ctx, "git", args...)
		cmd.Dir = dir
		out, err := cmd.Output()
		if err != nil {
			if ee, ok := err.(*exec.ExitError); ok && len(ee.Stderr) > 0 {
				err = fmt.Errorf("%w: %s", err, strings.TrimSpace(string(ee.Stderr)))
			}
			return "", fmt.Errorf("git %s: %w (give -version when building outside a git checkout)", strings.Join(args, " "), err)
		}
		return strings.TrimSpace(string(out)), nil
	}
	describe, err := git(describeArgs...)
	if err != nil {
		return Source{}, err
	}
	commit, err := git("rev-parse", "--short=12", "HEAD")
	if err != nil {
		return Source{}, err
	}
	unix, err := git("show", "-s", "--format=%ct", "HEAD")
	if err != nil {
		return Source{}, err
	}
	var secs int64
	if _, err := fmt.Sscan(unix, &secs); err != nil {
		return Source{}, fmt.Errorf("commit time %q: %w", unix, err)
	}
	src := Source{Commit: commit, Time: time.Unix(secs, 0).UTC()}
	if strings.HasSuffix(describe, "-dirty") {
		src.Commit += "+dirty"
	}
	src.Version, err = packageVersion(describe, src.Time)
	return src, err
}

var (
	describeRE = regexp.MustCompile(`^(.+)-([0-9]+)-g([0-9a-f]+)$`)
	shaRE      = regexp.MustCompile(`^[0-9a-f]{4,}$`)
	tagRE      = regexp.MustCompile(`^v?([0-9]+(?:\.[0-9]+)*)(?:-([0-9A-Za-z.]+))?(?:\+[0-9A-Za-z.-]+)?$`)
	// versionRE is what both dpkg (an upstream version without a
	// revision) and rpm (no '-') accept.
	versionRE = regexp.MustCompile(`^[0-9][0-9A-Za-z.+~]*$`)
)

// packageVersion turns `git describe` output into a version that dpkg and
// rpm accept and order the way releases happen:
//
//	v1.2.3                   1.2.3
//	v1.2.3-rc.1              1.2.3~rc.1                (before 1.2.3)
//	v1.2.3-4-gabc1234        1.2.3+git4.abc1234        (after 1.2.3)
//	abc1234 (no tag)         0.0.0~git20260102150405.abc1234
//	…-dirty                  ….dirty, or 1.2.3+dirty
//
// Untagged builds carry the commit time, so that a later commit is a newer
// package.
func packageVersion(describe string, commitTime time.Time) (string, error) {
	d, dirty := strings.CutSuffix(strings.TrimSpace(describe), "-dirty")
	var v string
	switch m := describeRE.FindStringSubmatch(d); {
	case m != nil:
		base, err := tagVersion(m[1])
		if err != nil {
			return "", err
		}
		v = base + "+git" + m[2] + "." + m[3]
	case shaRE.MatchString(d):
		v = "0.0.0~git" + commitTime.UTC().Format("20060102150405") + "." + d
	default:
		base, err := tagVersion(d)
		if err != nil {
			return "", err
		}
		v = base
	}
	if dirty {
		if strings.Contains(v, "+") || strings.Contains(v, "~git") {
			v += ".dirty"
		} else {
			v += "+dirty"
		}
	}
	if !versionRE.MatchString(v) {
		return "", fmt.Errorf("version %q (from %q) is not valid for dpkg and rpm", v, describe)
	}
	return v, nil
}

// tagVersion turns a tag (v1.2.3, v1.2.3-rc.1) into a package version.
func tagVersion(tag string) (string, error) {
	m := tagRE.FindStringSubmatch(tag)
	if m == nil {
		return "", fmt.Errorf("tag %q is not a version (vX.Y.Z or vX.Y.Z-pre)", tag)
	}
	v := m[1]
	if m[2] != "" {
		v += "~" + m[2]
	}
	return v, nil
}

// checkVersion refuses a -version flag that dpkg or rpm would refuse.
func checkVersion(v string) error {
	if !versionRE.MatchString(v) {
		return fmt.Errorf("version %q: must start with a digit and contain only letters, digits and . + ~", v)
	}
	return nil
}
