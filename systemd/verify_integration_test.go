package systemd

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// systemdAnalyze finds Debian's systemd-analyze (package systemd).
func systemdAnalyze(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze not installed (Debian package systemd): the units are not verified")
	}
	return bin
}

// installForVerify installs the unit under a temporary root with ExecStart
// pointing at an executable that exists (this test binary): verify checks
// that the command is executable, and its --root needs a whole OS tree.
func installForVerify(t *testing.T, service string) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	exe, err = filepath.EvalSymlinks(exe)
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	if _, err := Install(root, service, Options{Executable: exe}); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(root, UnitDir, Unit(service))
}

// TestIntegrationVerifyUnits runs systemd-analyze verify on both units; any
// output (an unknown setting, a bad value) fails the test.
func TestIntegrationVerifyUnits(t *testing.T) {
	analyze := systemdAnalyze(t)
	for _, service := range Services {
		t.Run(service, func(t *testing.T) {
			unit := installForVerify(t, service)
			out, err := exec.Command(analyze, "verify", "--man=no", unit).CombinedOutput()
			if err != nil || len(out) > 0 {
				t.Fatalf("systemd-analyze verify %s: %v\n%s", Unit(service), err, out)
			}
		})
	}
}

// TestIntegrationUnitExposure keeps the units' hardening from eroding:
// systemd-analyze security rates the hub 1.3 and the leaf 1.5 (0 is best, 10 worst);
// above 2.5 fails.
func TestIntegrationUnitExposure(t *testing.T) {
	analyze := systemdAnalyze(t)
	for _, service := range Services {
		t.Run(service, func(t *testing.T) {
			unit := installForVerify(t, service)
			out, err := exec.Command(analyze, "security", "--offline=true", "--threshold=25", "--no-pager", unit).CombinedOutput()
			lines := strings.Split(strings.TrimSpace(string(out)), "\n")
			t.Log(lines[len(lines)-1])
			if err != nil {
				if strings.Contains(string(out), "Unknown option") || strings.Contains(string(out), "unrecognized option") {
					t.Skipf("this systemd-analyze cannot rate units offline: %s", out)
				}
				t.Fatalf("systemd-analyze security %s: %v\n%s", Unit(service), err, out)
			}
		})
	}
}
