package hubapp

import (
	"bytes"
	"crypto/x509"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/canopy-iot/canopy/hub/pki"
)

// runTLS runs `canopy-hub tls args...` and returns its output and error.
func runTLS(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errOut bytes.Buffer
	cmd := tlsCommand(&out, &errOut)
	cmd.SilenceErrors, cmd.SilenceUsage = true, true
	cmd.SetArgs(args)
	err = cmd.Execute()
	return out.String(), errOut.String(), err
}

func extKeyUsage(t *testing.T, path string) (*x509.Certificate, []x509.ExtKeyUsage) {
	t.Helper()
	c, err := pki.ReadCertificate(path)
	if err != nil {
		t.Fatal(err)
	}
	return c, c.ExtKeyUsage
}

func TestTLSInitAndIssue(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tls")
	stdout, _, err := runTLS(t, "init", "--dir", dir, "--name", "Acme", "--host", "hub-1.example.com", "--host", "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"made in " + dir,
		"tls: {cert_file: " + dir + "/hub.pem, key_file: " + dir + "/hub-key.pem, ca_file: " + dir + "/ca.pem}",
		"  tls: {cert_file: " + dir + "/hub.pem, key_file: " + dir + "/hub-key.pem, ca_file: " + dir + "/ca.pem, verify: true}",
		"hub-1.example.com, 127.0.0.1, valid until ",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("tls init output lacks %q:\n%s", want, stdout)
		}
	}
	hub, eku := extKeyUsage(t, filepath.Join(dir, "hub.pem"))
	if !slices.Equal(eku, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}) || !slices.Equal(hub.DNSNames, []string{"hub-1.example.com"}) {
		t.Errorf("hub certificate: usage %v, DNS names %v", eku, hub.DNSNames)
	}
	if ca, _ := pki.ReadCertificate(filepath.Join(dir, "ca.pem")); ca == nil || ca.Subject.CommonName != "Acme Canopy fleet CA" {
		t.Errorf("CA: %v", ca)
	}

	stdout, _, err = runTLS(t, "issue", "pi-001", "--client", "--dir", dir)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(stdout, "uplink:\n  tls:\n    ca_file: /etc/canopy/tls/ca.pem\n    cert_file: /etc/canopy/tls/pi-001.pem\n") {
		t.Errorf("tls issue --client output lacks the leaf.yaml snippet:\n%s", stdout)
	}
	if _, eku := extKeyUsage(t, filepath.Join(dir, "pi-001.pem")); !slices.Equal(eku, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}) {
		t.Errorf("device certificate usage %v", eku)
	}
	if _, _, err := runTLS(t, "issue", "hub-2", "--host", "hub-2.example.com", "--dir", dir); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"ca.pem", "ca-key.pem", "hub.pem", "hub-key.pem", "pi-001.pem", "pi-001-key.pem", "hub-2.pem", "hub-2-key.pem"} {
		fi, err := os.Stat(filepath.Join(dir, f))
		if err != nil {
			t.Error(err)
			continue
		}
		if strings.HasSuffix(f, "key.pem") && fi.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v, want 0600", f, fi.Mode().Perm())
		}
	}
	if _, eku := extKeyUsage(t, filepath.Join(dir, "hub-2.pem")); len(eku) != 2 {
		t.Errorf("hub node certificate usage %v, want server and client", eku)
	}

	// Issuing again needs --force.
	if _, _, err := runTLS(t, "issue", "pi-001", "--client", "--dir", dir); err == nil || !strings.Contains(err.Error(), "pi-001.pem already exists: --force replaces it") {
		t.Errorf("issue over an existing certificate: %v", err)
	}
	if _, _, err := runTLS(t, "issue", "pi-001", "--client", "--dir", dir, "--force"); err != nil {
		t.Errorf("issue --force: %v", err)
	}
}

func TestTLSInitRefusesTwice(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tls")
	if _, _, err := runTLS(t, "init", "--dir", dir, "--host", "localhost"); err != nil {
		t.Fatal(err)
	}
	ca, _ := os.ReadFile(filepath.Join(dir, "ca.pem"))
	_, _, err := runTLS(t, "init", "--dir", dir, "--host", "localhost")
	if err == nil || !strings.Contains(err.Error(), "a fleet CA is in place") {
		t.Errorf("second tls init: %v", err)
	}
	if again, _ := os.ReadFile(filepath.Join(dir, "ca.pem")); !bytes.Equal(ca, again) {
		t.Error("second tls init changed ca.pem")
	}

	// A hub certificate left without its CA is not silently kept.
	lone := t.TempDir()
	os.WriteFile(filepath.Join(lone, "hub.pem"), []byte("old"), 0o644)
	if _, _, err := runTLS(t, "init", "--dir", lone, "--host", "localhost"); err == nil || !strings.Contains(err.Error(), "tls issue hub --force") {
		t.Errorf("tls init over a hub certificate: %v", err)
	}
	if _, err := os.Stat(filepath.Join(lone, "ca.pem")); err == nil {
		t.Error("refused tls init made a CA")
	}
}

func TestTLSCommandErrors(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tls")
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"bad host", []string{"init", "--dir", dir, "--host", "a b"}, `--host: host "a b": contains a space`},
		{"no CA", []string{"issue", "hub-2", "--host", "hub-2", "--dir", dir}, "no fleet CA in " + dir + ": ca.pem is missing: make one with canopy-hub tls init"},
		{"hub node without hosts", []string{"issue", "hub-2", "--dir", dir}, "needs --host"},
		{"bad name", []string{"issue", "a/b", "--client", "--dir", dir}, "only letters, digits"},
		{"no days", []string{"issue", "pi", "--client", "--dir", dir, "--days", "0"}, "--days must be positive"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, _, err := runTLS(t, tt.args...); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("%v: %v, want an error containing %q", tt.args, err, tt.want)
			}
		})
	}
	if _, err := os.Stat(dir); err == nil {
		t.Error("a refused command made the directory")
	}
}

func TestTLSInitDefaultHosts(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tls")
	_, stderr, err := runTLS(t, "init", "--dir", dir)
	if err != nil {
		t.Fatal(err)
	}
	c, err := pki.ReadCertificate(filepath.Join(dir, "hub.pem"))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(c.DNSNames, "localhost") || len(c.IPAddresses) != 1 || c.IPAddresses[0].String() != "127.0.0.1" {
		t.Errorf("default hosts: DNS %v, IP %v", c.DNSNames, c.IPAddresses)
	}
	if name, err := os.Hostname(); err == nil && pki.CheckHosts([]string{name}) == nil && !slices.Contains(c.DNSNames, name) {
		t.Errorf("default hosts %v lack the host name %q (%s)", c.DNSNames, name, stderr)
	}
}
