package hubapp

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/canopy-iot/canopy/appliance"
	"github.com/canopy-iot/canopy/hub"
	"github.com/canopy-iot/canopy/internal/hubtest"
)

// runHub runs canopy-hub's command line with args and returns its exit
// status and output.
func runHub(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = appliance.Main(context.Background(), Program, args, &out, &errOut)
	return code, out.String(), errOut.String()
}

// A command line the firmware commands cannot act on is a usage error,
// found before the key directory or the hub are touched.
func TestFirmwareCommandUsage(t *testing.T) {
	file := filepath.Join(t.TempDir(), "fw.bin")
	if err := os.WriteFile(file, []byte("firmware"), 0o600); err != nil {
		t.Fatal(err)
	}
	publish := func(extra ...string) []string {
		return append([]string{"firmware", "publish", "--tenant", "t1", "--name", "sensor-fw", "--version", "1.0.0", "--platform", "linux/arm64", "--file", file}, extra...)
	}
	tests := []struct {
		name string
		args []string
		want []string
	}{
		{"nothing", []string{"firmware", "publish"}, []string{"--tenant is required", "--name is required", "--version is required", "--platform is required", "--file is required"}},
		{"no tenant", []string{"firmware", "publish", "--name", "x", "--version", "1", "--platform", "any", "--file", file}, []string{"--tenant is required"}},
		{"bad platform", publish("--platform", "Linux/ARM64"), []string{`--platform: platform "Linux/ARM64"`}},
		{"bad version", publish("--version", "../1"), []string{`--version: version "../1"`}},
		{"missing file", publish("--file", "/nonexistent/fw.bin"), []string{"/nonexistent/fw.bin", "no such file"}},
		{"directory", publish("--file", t.TempDir()), []string{"not a regular file"}},
		{"chunk size", publish("--chunk-size", "1KiB"), []string{"--chunk-size is 1024 bytes"}},
		{"garbled chunk size", publish("--chunk-size", "lots"), []string{`invalid size "lots"`}},
		{"argument", publish("extra"), []string{`unknown command "extra"`}},
		{"list without tenant", []string{"firmware", "list"}, []string{"--tenant is required"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// An absent key directory proves nothing was opened.
			args := append(tt.args, "--key-dir", filepath.Join(t.TempDir(), "absent"))
			code, _, errOut := runHub(t, args...)
			if code != appliance.ExitUsage || !strings.Contains(errOut, "Run 'canopy-hub --help' for usage.") {
				t.Fatalf("exit %d, stderr:\n%s\nwant a usage error", code, errOut)
			}
			for _, w := range tt.want {
				if !strings.Contains(errOut, w) {
					t.Errorf("stderr:\n%s\nwant %q", errOut, w)
				}
			}
		})
	}
}

func TestIntegrationFirmwareCommands(t *testing.T) {
	dir := t.TempDir()
	keyDir := filepath.Join(dir, "keys")
	cfgFile := filepath.Join(dir, "hub.yaml")
	if err := os.WriteFile(cfgFile, []byte("version: 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, errOut := runHub(t, "init", "-c", cfgFile, "--key-dir", keyDir); code != 0 {
		t.Fatalf("init: exit %d: %s", code, errOut)
	}

	// A hub in operator mode on that key directory.
	h := hubtest.Run(t, hub.Config{
		Listen:     "127.0.0.1:0",
		HTTPListen: "127.0.0.1:0",
		LeafNodes:  hub.LeafNodes{Listen: "127.0.0.1:0"},
		JetStream:  hub.JetStream{StoreDir: filepath.Join(dir, "js")},
		Operator:   hub.Operator{KeyDir: keyDir, EnrollListen: "127.0.0.1:0"},
	})
	common := []string{"-c", cfgFile, "--key-dir", keyDir, "--server", h.ClientURL()}
	if code, _, errOut := runHub(t, append([]string{"tenant", "add", "t1"}, common...)...); code != 0 {
		t.Fatalf("tenant add: exit %d: %s", code, errOut)
	}

	data := make([]byte, 300<<10+5)
	rand.Read(data)
	file := filepath.Join(dir, "sensor-fw.bin")
	if err := os.WriteFile(file, data, 0o600); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	code, out, errOut := runHub(t, append([]string{"firmware", "publish", "--tenant", "t1", "--name", "sensor-fw", "--version", "1.4.0",
		"--platform", "linux/arm64", "--file", file, "--notes", "driver fix", "--chunk-size", "64KiB"}, common...)...)
	if code != 0 {
		t.Fatalf("firmware publish: exit %d: %s", code, errOut)
	}
	for _, want := range []string{"sensor-fw", "1.4.0", "linux/arm64", "307205 bytes (300.0KiB)", "5 of 64KiB", hex.EncodeToString(sum[:]), "sensor-fw/1.4.0/linux/arm64"} {
		if !strings.Contains(out, want) {
			t.Errorf("publish output:\n%s\nwant %q", out, want)
		}
	}

	code, out, errOut = runHub(t, append([]string{"firmware", "list", "--tenant", "t1"}, common...)...)
	if code != 0 {
		t.Fatalf("firmware list: exit %d: %s", code, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "NAME") {
		t.Fatalf("list output:\n%s\nwant a header and one line", out)
	}
	fields := strings.Fields(lines[1])
	want := []string{"sensor-fw", "1.4.0", "linux/arm64", "300.0KiB", "5", "", hex.EncodeToString(sum[:])[:12]}
	if len(fields) != len(want) {
		t.Fatalf("list line %q: want %d fields", lines[1], len(want))
	}
	for i, w := range want {
		if w != "" && fields[i] != w {
			t.Errorf("list column %d is %q, want %q (line %q)", i, fields[i], w, lines[1])
		}
	}

	// A file the command cannot read is named.
	if err := os.Chmod(file, 0); err == nil && os.Geteuid() != 0 {
		code, _, errOut = runHub(t, append([]string{"firmware", "publish", "--tenant", "t1", "--name", "x", "--version", "1",
			"--platform", "any", "--file", file}, common...)...)
		if code == 0 || !strings.Contains(errOut, file) {
			t.Errorf("unreadable file: exit %d, stderr %s", code, errOut)
		}
	}
}
