package appliance_test

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/canopy-iot/canopy/appliance"
	"github.com/canopy-iot/canopy/appliance/hubapp"
	"github.com/canopy-iot/canopy/appliance/leafapp"
	"github.com/canopy-iot/canopy/hub"
	"github.com/canopy-iot/canopy/leaf"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

// Both runners tell the run loop when they are ready, for READY=1.
var (
	_ appliance.Readier = (*leaf.Node)(nil)
	_ appliance.Readier = (*hub.Hub)(nil)
)

// runCLI runs one of the binaries' command lines in-process.
func runCLI(t *testing.T, binary string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	switch binary {
	case "canopy-leaf":
		code = appliance.Main(context.Background(), leafapp.Program, args, &out, &errOut)
	case "canopy-hub":
		code = appliance.Main(context.Background(), hubapp.Program, args, &out, &errOut)
	default:
		t.Fatalf("unknown binary %s", binary)
	}
	return code, out.String(), errOut.String()
}

// tree lists every file under root with its mode and content, in path order.
func tree(t *testing.T, root string) string {
	t.Helper()
	var b strings.Builder
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		fmt.Fprintf(&b, "==== /%s %v\n%s", filepath.ToSlash(rel), fi.Mode(), data)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// TestInstallRootGolden installs each binary under an empty root and
// compares what it said and wrote with testdata/install-<binary>.golden
// (go test -run InstallRootGolden -update rewrites them).
func TestInstallRootGolden(t *testing.T) {
	for _, binary := range []string{"canopy-leaf", "canopy-hub"} {
		t.Run(binary, func(t *testing.T) {
			root := t.TempDir()
			code, stdout, stderr := runCLI(t, binary, "install", "--root", root)
			if code != appliance.ExitOK || stderr != "" {
				t.Fatalf("exit status %d\nstderr: %s", code, stderr)
			}
			got := fmt.Sprintf("$ %s install --root $ROOT\n%s%s", binary, strings.ReplaceAll(stdout, root, "$ROOT"), tree(t, root))
			golden := filepath.Join("testdata", "install-"+binary+".golden")
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if got != string(want) {
				t.Errorf("install --root differs from %s (run with -update to accept):\n%s", golden, got)
			}
		})
	}
}

// The configuration install writes is one the binary accepts, and a second
// install keeps it (and anything an administrator changed).
func TestInstallDefaultConfig(t *testing.T) {
	for binary, file := range map[string]string{"canopy-leaf": "leaf.yaml", "canopy-hub": "hub.yaml"} {
		t.Run(binary, func(t *testing.T) {
			root := t.TempDir()
			if code, _, stderr := runCLI(t, binary, "install", "--root", root); code != appliance.ExitOK {
				t.Fatalf("install: %d %s", code, stderr)
			}
			config := filepath.Join(root, "etc/canopy", file)
			if code, stdout, stderr := runCLI(t, binary, "check-config", "--config", config); code != appliance.ExitOK {
				t.Fatalf("check-config of the written configuration: %d %s %s", code, stdout, stderr)
			}
			var dataDir string
			switch binary {
			case "canopy-leaf":
				cfg, err := leafapp.LoadLeaf(config, true, nil)
				if err != nil {
					t.Fatal(err)
				}
				dataDir = cfg.DataDir
				if dataDir != leaf.DefaultDataDir {
					t.Fatalf("data_dir %q", dataDir)
				}
			case "canopy-hub":
				cfg, err := hubapp.LoadHub(config, true, nil)
				if err != nil {
					t.Fatal(err)
				}
				dataDir = cfg.JetStream.StoreDir
				if dataDir != hub.DefaultStoreDir {
					t.Fatalf("store_dir %q", dataDir)
				}
			}
			// Relative: under the unit's WorkingDirectory, the state directory.
			if filepath.IsAbs(dataDir) {
				t.Fatalf("default state %q is not under the unit's working directory", dataDir)
			}
			changed := []byte("version: 1\nlog_level: debug\n")
			if err := os.WriteFile(config, changed, 0o640); err != nil {
				t.Fatal(err)
			}
			code, stdout, _ := runCLI(t, binary, "install", "--root", root)
			if code != appliance.ExitOK || !strings.Contains(stdout, "kept "+config+"\n") {
				t.Fatalf("second install: %d %s", code, stdout)
			}
			if b, _ := os.ReadFile(config); !bytes.Equal(b, changed) {
				t.Fatalf("second install replaced the configuration: %q", b)
			}
		})
	}
}

func TestUninstallRoot(t *testing.T) {
	root := t.TempDir()
	for _, binary := range []string{"canopy-leaf", "canopy-hub"} {
		if code, _, stderr := runCLI(t, binary, "install", "--root", root); code != appliance.ExitOK {
			t.Fatalf("install %s: %d %s", binary, code, stderr)
		}
	}
	code, stdout, stderr := runCLI(t, "canopy-leaf", "uninstall", "--root", root)
	if code != appliance.ExitOK {
		t.Fatalf("uninstall: %d %s", code, stderr)
	}
	want := fmt.Sprintf("removed %[1]s/etc/systemd/system/canopy-leaf.service\nkept %[1]s/etc/canopy/leaf.yaml, %[1]s/var/lib/canopy/leaf and the canopy user\n", root)
	if stdout != want {
		t.Fatalf("uninstall said %q, want %q", stdout, want)
	}
	// The hub still uses the sysusers and tmpfiles entries.
	code, stdout, _ = runCLI(t, "canopy-hub", "uninstall", "--root", root)
	if code != appliance.ExitOK || !strings.Contains(stdout, "removed "+root+"/etc/sysusers.d/canopy.conf\n") || !strings.Contains(stdout, "removed "+root+"/etc/tmpfiles.d/canopy.conf\n") {
		t.Fatalf("uninstall of the last unit: %d %s", code, stdout)
	}
	got := tree(t, root)
	if strings.Contains(got, "/etc/systemd/") || strings.Contains(got, ".d/canopy.conf") {
		t.Fatalf("left behind:\n%s", got)
	}
	if !strings.Contains(got, "==== /etc/canopy/leaf.yaml") || !strings.Contains(got, "==== /etc/canopy/hub.yaml") {
		t.Fatalf("configuration removed:\n%s", got)
	}
	code, stdout, _ = runCLI(t, "canopy-leaf", "uninstall", "--root", root)
	if code != appliance.ExitOK || stdout != "canopy-leaf is not installed: nothing to remove\n" {
		t.Fatalf("uninstall when not installed: %d %q", code, stdout)
	}
}

func TestStatusRoot(t *testing.T) {
	root := t.TempDir()
	code, stdout, _ := runCLI(t, "canopy-leaf", "status", "--root", root)
	if code != appliance.ExitNotInstalled || stdout != "canopy-leaf: not installed\n" {
		t.Fatalf("status, not installed: %d %q", code, stdout)
	}
	runCLI(t, "canopy-leaf", "install", "--root", root)
	code, stdout, _ = runCLI(t, "canopy-leaf", "status", "--root", root)
	if code != appliance.ExitNotRunning || !strings.HasPrefix(stdout, "canopy-leaf: installed (") {
		t.Fatalf("status, installed: %d %q", code, stdout)
	}
	code, stdout, _ = runCLI(t, "canopy-hub", "status", "--root", root)
	if code != appliance.ExitNotInstalled || stdout != "canopy-hub: not installed\n" {
		t.Fatalf("hub status with only the leaf installed: %d %q", code, stdout)
	}
}

func TestServiceCommandLine(t *testing.T) {
	cases := []struct {
		args       []string
		code       int
		stderrPart string
	}{
		{[]string{"install", "--root", "ROOT", "--nats-listen", "127.0.0.1:0"}, appliance.ExitUsage, "install takes no configuration flags (--nats-listen)"},
		{[]string{"status", "--root", "ROOT", "--config", "x.yaml"}, appliance.ExitUsage, "status takes no configuration flags (--config)"},
		{[]string{"install", "extra"}, appliance.ExitUsage, `unknown command "extra"`},
		{[]string{"start", "--root", "ROOT"}, appliance.ExitUsage, "unknown flag: --root"},
	}
	for _, c := range cases {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			root := t.TempDir()
			args := append([]string(nil), c.args...)
			for i, a := range args {
				if a == "ROOT" {
					args[i] = root
				}
			}
			code, _, stderr := runCLI(t, "canopy-leaf", args...)
			if code != c.code || !strings.Contains(stderr, c.stderrPart) {
				t.Fatalf("exit status %d (want %d), stderr %q", code, c.code, stderr)
			}
			if entries, _ := os.ReadDir(root); len(entries) > 0 {
				t.Fatalf("a refused command wrote under the root")
			}
		})
	}
}
