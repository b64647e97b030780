package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestPackageVersion(t *testing.T) {
	commit := time.Date(2026, 1, 2, 15, 4, 5, 0, time.UTC)
	tests := []struct {
		describe, want string
	}{
		{"v1.2.3", "1.2.3"},
		{"v1.2.3-dirty", "1.2.3+dirty"},
		{"v1.2.3-rc.1", "1.2.3~rc.1"},
		{"v1.2.3-rc.1-4-gabc1234", "1.2.3~rc.1+git4.abc1234"},
		{"v1.2.3-4-gabc1234", "1.2.3+git4.abc1234"},
		{"v1.2.3-4-gabc1234-dirty", "1.2.3+git4.abc1234.dirty"},
		{"v2.0", "2.0"},
		{"abc1234", "0.0.0~git20260102150405.abc1234"},
		{"abc1234-dirty", "0.0.0~git20260102150405.abc1234.dirty"},
	}
	for _, tt := range tests {
		got, err := packageVersion(tt.describe, commit)
		if err != nil || got != tt.want {
			t.Errorf("packageVersion(%q) = %q, %v; want %q", tt.describe, got, err, tt.want)
		}
	}
	for _, bad := range []string{"release-x", "v1.2.3_beta", "vfoo-3-gabc1234", ""} {
		if got, err := packageVersion(bad, commit); err == nil {
			t.Errorf("packageVersion(%q) = %q, want an error", bad, got)
		}
	}
}

// TestPackageVersionOrder checks that dpkg orders the versions the way
// releases happen, when dpkg is here to ask.
func TestPackageVersionOrder(t *testing.T) {
	if _, err := exec.LookPath("dpkg"); err != nil {
		t.Skip("dpkg not installed")
	}
	older := time.Date(2026, 1, 2, 15, 4, 5, 0, time.UTC)
	newer := older.Add(time.Hour)
	ordered := []struct {
		describe string
		at       time.Time
	}{
		{"abc1234", older},
		{"0123abc", newer}, // a later untagged commit, whatever its id
		{"v1.0.0-rc.1", older},
		{"v1.0.0", older},
		{"v1.0.0-dirty", older},
		{"v1.0.0-3-gabc1234", older},
		{"v1.0.1", older},
	}
	for i := 1; i < len(ordered); i++ {
		a, err := packageVersion(ordered[i-1].describe, ordered[i-1].at)
		if err != nil {
			t.Fatal(err)
		}
		b, err := packageVersion(ordered[i].describe, ordered[i].at)
		if err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command("dpkg", "--compare-versions", a, "lt", b).CombinedOutput(); err != nil {
			t.Errorf("dpkg does not order %s before %s: %v %s", a, b, err, out)
		}
	}
}

func TestPlan(t *testing.T) {
	names := func(ts []target) string {
		var s []string
		for _, t := range ts {
			s = append(s, t.Name+"/"+t.Deb)
		}
		return strings.Join(s, " ")
	}
	tests := []struct {
		opts Options
		want string
	}{
		{Options{}, "canopy-leaf/amd64 canopy-leaf/arm64 canopy-leaf/armhf canopy-leaf/armel canopy-hub/amd64 canopy-hub/arm64"},
		{Options{Only: "leaf", Arches: []string{"armel"}}, "canopy-leaf/armel"},
		{Options{Arches: []string{"armhf", "arm64"}}, "canopy-leaf/arm64 canopy-leaf/armhf canopy-hub/arm64"},
		{Options{Only: "hub"}, "canopy-hub/amd64 canopy-hub/arm64"},
	}
	for _, tt := range tests {
		got, _, err := plan(tt.opts)
		if err != nil || names(got) != tt.want {
			t.Errorf("plan(%+v) = %q, %v; want %q", tt.opts, names(got), err, tt.want)
		}
	}

	_, _, err := plan(Options{Only: "leafs", Arches: []string{"armv7"}, Formats: []string{"apk"}, Version: "v1.0"})
	if err == nil {
		t.Fatal("plan accepted bad options")
	}
	for _, want := range []string{`-only "leafs"`, `-arch "armv7"`, `-formats "apk"`, `-version`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
	if _, _, err := plan(Options{Only: "hub", Arches: []string{"armel"}}); err == nil {
		t.Error("plan accepted canopy-hub for armel")
	}
}

// TestInstallScriptDetectsArch runs install.sh's architecture detection on
// the CPUs of Raspberry Pis.
func TestInstallScriptDetectsArch(t *testing.T) {
	tests := []struct {
		name, unameM, cpuinfo, want string
	}{
		{"PC", "x86_64", "", "amd64"},
		{"Pi 4, 64-bit kernel", "aarch64", "cpuinfo-pi-4-64bit", "arm64"},
		{"Pi Zero W", "armv6l", "cpuinfo-pi-zero-w", "armel"},
		{"Pi 3, 32-bit OS", "armv7l", "cpuinfo-pi-3-32bit", "armhf"},
		{"Pi 3, 32-bit kernel reporting armv8l", "armv8l", "cpuinfo-pi-3-32bit", "armhf"},
		{"ARMv7 name, no VFPv3 in the CPU's features", "armv7l", "cpuinfo-pi-zero-w", "armel"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := exec.Command("sh", "../install.sh", "--print-arch")
			cmd.Env = append(os.Environ(), "CANOPY_UNAME_M="+tt.unameM, "CANOPY_CPUINFO="+filepath.Join("testdata", tt.cpuinfo))
			out, err := cmd.CombinedOutput()
			if got := strings.TrimSpace(string(out)); err != nil || got != tt.want {
				t.Errorf("install.sh --print-arch on %s = %q, %v; want %s", tt.unameM, got, err, tt.want)
			}
		})
	}
	cmd := exec.Command("sh", "../install.sh", "--print-arch")
	cmd.Env = append(os.Environ(), "CANOPY_UNAME_M=mips")
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "no Canopy build for this machine (mips)") {
		t.Errorf("install.sh --print-arch on mips: %v, %q; want a refusal", err, out)
	}
}

// TestPreinstRefusesARMv7PackageOnARMv6 checks the armhf package's guard
// against the Pi Zero and Pi 1, which Raspberry Pi OS also calls armhf.
func TestPreinstRefusesARMv7PackageOnARMv6(t *testing.T) {
	script := renderedScript(t, "preinst", products[0])
	tests := []struct {
		debArch, unameM string
		ok              bool
	}{
		{"armhf", "armv6l", false},
		{"armhf", "armv7l", true},
		{"armhf", "aarch64", true}, // 64-bit kernel, 32-bit Raspberry Pi OS
		{"armel", "armv6l", true},
		{"amd64", "x86_64", true},
	}
	for _, tt := range tests {
		cmd := exec.Command("sh", script, "install")
		cmd.Env = append(os.Environ(), "DPKG_MAINTSCRIPT_ARCH="+tt.debArch, "CANOPY_UNAME_M="+tt.unameM)
		out, err := cmd.CombinedOutput()
		if (err == nil) != tt.ok {
			t.Errorf("preinst install, %s package on %s: %v %s; want ok=%v", tt.debArch, tt.unameM, err, out, tt.ok)
		}
		if !tt.ok && !strings.Contains(string(out), "_armel.deb") {
			t.Errorf("refusal does not name the armel package: %s", out)
		}
	}
}

// TestShellcheck lints install.sh and the maintainer scripts as POSIX sh.
func TestShellcheck(t *testing.T) {
	if _, err := exec.LookPath("shellcheck"); err != nil {
		t.Skip("shellcheck not installed")
	}
	files := []string{"../install.sh"}
	for _, s := range scriptNames {
		for _, p := range products {
			files = append(files, renderedScript(t, s, p))
		}
	}
	shellcheck(t, files...)
}

var placeholderRE = regexp.MustCompile(`@[A-Z_]+@`)

func shellcheck(t testing.TB, files ...string) {
	t.Helper()
	if out, err := exec.Command("shellcheck", append([]string{"--shell=sh", "--severity=info"}, files...)...).CombinedOutput(); err != nil {
		t.Errorf("shellcheck: %v\n%s", err, out)
	}
}

// renderedScript writes maintainer script name, filled in for p, into a
// temporary directory.
func renderedScript(t testing.TB, name string, p product) string {
	t.Helper()
	text, err := os.ReadFile(filepath.Join("scripts", name))
	if err != nil {
		t.Fatal(err)
	}
	rendered := renderScript(string(text), p)
	if left := placeholderRE.FindString(rendered); left != "" {
		t.Fatalf("%s: placeholder %s left", name, left)
	}
	path := filepath.Join(t.TempDir(), p.Name+"."+name)
	if err := os.WriteFile(path, []byte(rendered), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}
