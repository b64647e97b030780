package leafapp

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nkeys"

	"github.com/canopy-iot/canopy/appliance"
	"github.com/canopy-iot/canopy/leaf/enroll"
)

// enrollHub is a stand-in for the hub's enrollment service on loopback
// (plain HTTP is allowed there): token "good" enrolls pi-001 of acme,
// any other is refused as expired.
func enrollHub(t *testing.T) string {
	acc, _ := nkeys.CreateAccount()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Token     string `json:"token"`
			PublicKey string `json:"public_key"`
		}
		if r.URL.Path != enroll.Path || json.NewDecoder(r.Body).Decode(&req) != nil {
			t.Errorf("request %s %s", r.Method, r.URL)
		}
		w.Header().Set("Content-Type", "application/json")
		if req.Token != "good" {
			w.WriteHeader(http.StatusGone)
			json.NewEncoder(w).Encode(map[string]string{"error": "enrollment token expired at 2026-11-22T06:00:00Z"})
			return
		}
		uc := jwt.NewUserClaims(req.PublicKey)
		uc.Name = "pi-001"
		token, _ := uc.Encode(acc)
		json.NewEncoder(w).Encode(map[string]any{"tenant": "acme", "device": "pi-001", "jwt": token, "leafnode_urls": []string{"tls://hub.example.com:7422"}})
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// runLeaf runs canopy-leaf's command line with a configuration file of
// its own (never the machine's /etc/canopy/leaf.yaml).
func runLeaf(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	conf := filepath.Join(t.TempDir(), "leaf.yaml")
	if err := os.WriteFile(conf, []byte("version: 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	code = appliance.Main(context.Background(), Program, append(args, "--config", conf), &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestEnrollCommand(t *testing.T) {
	hub := enrollHub(t)
	dataDir := filepath.Join(t.TempDir(), "canopy")
	creds := filepath.Join(dataDir, enroll.CredsFile)

	code, out, errOut := runLeaf(t, "enroll", "--hub", hub, "--token", "good", "--data-dir", dataDir)
	if code != appliance.ExitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	want := "enrolled as device pi-001 of tenant acme; credentials in " + creds + "\n" +
		"add to leaf.yaml:\n" +
		"uplink:\n" +
		"  urls: [tls://hub.example.com:7422]\n" +
		"  credentials: " + creds + "\n"
	if out != want {
		t.Errorf("output:\n%s\nwant:\n%s", out, want)
	}
	b, err := os.ReadFile(creds)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := nkeys.ParseDecoratedUserNKey(b); err != nil {
		t.Errorf("credentials file: %v", err)
	}
	if fi, _ := os.Stat(creds); runtime.GOOS != "windows" && fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v", fi.Mode().Perm())
	}

	// Enrolled: not again without --force, and the token is not spent.
	code, _, errOut = runLeaf(t, "enroll", "--hub", hub, "--token", "good", "--data-dir", dataDir)
	if wantErr := "canopy-leaf: enroll: " + creds + " already exists: the device is enrolled; pass --force to enroll again\n"; code != appliance.ExitFailure || errOut != wantErr {
		t.Errorf("exit %d, stderr %q, want %q", code, errOut, wantErr)
	}
	code, _, errOut = runLeaf(t, "enroll", "--hub", hub, "--token", "good", "--data-dir", dataDir, "--force")
	if code != appliance.ExitOK {
		t.Fatalf("with --force: exit %d: %s", code, errOut)
	}
	if b2, _ := os.ReadFile(creds); bytes.Equal(b, b2) {
		t.Error("--force did not replace the credentials")
	}

	// --creds names the file.
	other := filepath.Join(t.TempDir(), "elsewhere", "pi.creds")
	code, out, errOut = runLeaf(t, "enroll", "--hub", hub, "--token", "good", "--creds", other)
	if code != appliance.ExitOK || !strings.Contains(out, "  credentials: "+other+"\n") {
		t.Errorf("--creds: exit %d, %s%s", code, out, errOut)
	}
}

func TestEnrollCommandRefused(t *testing.T) {
	dataDir := t.TempDir()
	code, out, errOut := runLeaf(t, "enroll", "--hub", enrollHub(t), "--token", "old", "--data-dir", dataDir)
	want := "canopy-leaf: enroll: the hub refused the enrollment: enrollment token expired at 2026-11-22T06:00:00Z (HTTP 410)\n"
	if code != appliance.ExitFailure || errOut != want || out != "" {
		t.Errorf("exit %d, stdout %q, stderr %q, want %q", code, out, errOut, want)
	}
	if _, err := os.Stat(filepath.Join(dataDir, enroll.CredsFile)); err == nil {
		t.Error("credentials written after a refusal")
	}
}

// A command line enroll cannot act on is a usage error (exit status 2),
// found before anything is sent.
func TestEnrollCommandUsage(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no token", []string{"--hub", "https://hub.example.com:7480"}, "--token is required"},
		{"no hub", []string{"--token", "t"}, "--hub is required"},
		{"nothing", nil, "--hub is required: the hub's enrollment URL, https://host:port; --token is required"},
		{"http to the network", []string{"--hub", "http://hub.example.com:7480", "--token", "t"}, "would cross the network in clear"},
		{"garbled hub", []string{"--hub", "https://hub:port", "--token", "t"}, `hub URL "https://hub:port"`},
		{"missing CA file", []string{"--hub", "https://hub.example.com", "--token", "t", "--ca", "/nonexistent/ca.pem"}, "CA file /nonexistent/ca.pem: no such file or directory"},
		{"argument", []string{"--hub", "https://hub.example.com", "--token", "t", "extra"}, `unknown command "extra"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, errOut := runLeaf(t, append([]string{"enroll"}, tt.args...)...)
			if code != appliance.ExitUsage || !strings.Contains(errOut, tt.want) || !strings.Contains(errOut, "Run 'canopy-leaf --help' for usage.") {
				t.Errorf("exit %d, stderr:\n%s\nwant exit 2 and %q", code, errOut, tt.want)
			}
		})
	}
}
