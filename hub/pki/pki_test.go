package pki_test

import (
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/canopy-iot/canopy/hub/pki"
)

const day = 24 * time.Hour

// newCA makes a fleet CA in a fresh directory and returns the directory.
func newCA(t testing.TB, name string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "tls")
	if err := pki.InitCA(dir, name, 365*day); err != nil {
		t.Fatal(err)
	}
	return dir
}

func issue(t testing.TB, dir, name string, hosts []string, usage pki.Usage) {
	t.Helper()
	if err := pki.Issue(dir, name, hosts, 90*day, usage, false); err != nil {
		t.Fatal(err)
	}
}

func caPool(t testing.TB, dir string) *x509.CertPool {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, pki.CAFile))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		t.Fatal("ca.pem holds no certificate")
	}
	return pool
}

// readChain returns the certificates in a PEM file, in order.
func readChain(t testing.TB, path string) []*x509.Certificate {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var certs []*x509.Certificate
	for {
		var b *pem.Block
		if b, data = pem.Decode(data); b == nil {
			return certs
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		certs = append(certs, c)
	}
}

func mode(t testing.TB, path string) os.FileMode {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

func TestInitCA(t *testing.T) {
	dir := newCA(t, "Acme")
	if m := mode(t, dir); m != 0o700 {
		t.Errorf("directory mode %v, want 0700", m)
	}
	if m := mode(t, filepath.Join(dir, pki.CAKeyFile)); m != 0o600 {
		t.Errorf("ca-key.pem mode %v, want 0600", m)
	}
	ca := readChain(t, filepath.Join(dir, pki.CAFile))
	if len(ca) != 1 {
		t.Fatalf("ca.pem holds %d certificates, want 1", len(ca))
	}
	c := ca[0]
	if c.Subject.CommonName != "Acme Canopy fleet CA" {
		t.Errorf("common name %q", c.Subject.CommonName)
	}
	if !c.IsCA || !c.BasicConstraintsValid || c.MaxPathLen != 0 || !c.MaxPathLenZero {
		t.Errorf("basic constraints: IsCA %v valid %v MaxPathLen %d zero %v", c.IsCA, c.BasicConstraintsValid, c.MaxPathLen, c.MaxPathLenZero)
	}
	if c.KeyUsage != x509.KeyUsageCertSign|x509.KeyUsageCRLSign {
		t.Errorf("key usage %v", c.KeyUsage)
	}
	if n := c.SerialNumber.BitLen(); c.SerialNumber.Sign() <= 0 || n < 64 || n > 129 {
		t.Errorf("serial %v: want a random positive 128-bit number", c.SerialNumber)
	}
	if _, ok := c.PublicKey.(*ecdsa.PublicKey); !ok {
		t.Errorf("public key %T, want ECDSA", c.PublicKey)
	}
	if err := c.CheckSignatureFrom(c); err != nil {
		t.Errorf("not self-signed: %v", err)
	}
	key, _ := os.ReadFile(filepath.Join(dir, pki.CAKeyFile))
	if b, _ := pem.Decode(key); b == nil || b.Type != "PRIVATE KEY" {
		t.Error("ca-key.pem is not a PKCS#8 PEM key")
	}
	if c := readChain(t, filepath.Join(newCA(t, ""), pki.CAFile))[0]; c.Subject.CommonName != "Canopy fleet CA" {
		t.Errorf("common name without a name: %q", c.Subject.CommonName)
	}
}

func TestIssueVerifies(t *testing.T) {
	dir := newCA(t, "test")
	issue(t, dir, "hub", []string{"hub.example.com", "127.0.0.1"}, pki.Both)
	issue(t, dir, "pi-001", nil, pki.Client)
	roots := caPool(t, dir)
	caCert := readChain(t, filepath.Join(dir, pki.CAFile))[0]

	for name, want := range map[string]os.FileMode{
		pki.KeyFile("hub"): 0o600, pki.KeyFile("pi-001"): 0o600,
		pki.CertFile("hub"): 0o644, pki.CertFile("pi-001"): 0o644,
	} {
		if m := mode(t, filepath.Join(dir, name)); m != want {
			t.Errorf("%s mode %v, want %v", name, m, want)
		}
	}
	if _, err := tls.LoadX509KeyPair(filepath.Join(dir, "hub.pem"), filepath.Join(dir, "hub-key.pem")); err != nil {
		t.Errorf("hub.pem and hub-key.pem are no key pair: %v", err)
	}

	hub := readChain(t, filepath.Join(dir, "hub.pem"))
	if len(hub) != 2 || !hub[1].Equal(caCert) {
		t.Fatalf("hub.pem holds %d certificates, want the certificate and the CA's", len(hub))
	}
	if hub[0].Subject.CommonName != "hub" || !slices.Equal(hub[0].DNSNames, []string{"hub.example.com"}) ||
		len(hub[0].IPAddresses) != 1 || !hub[0].IPAddresses[0].Equal(net.IPv4(127, 0, 0, 1)) {
		t.Errorf("hub: CN %q, DNS %v, IP %v", hub[0].Subject.CommonName, hub[0].DNSNames, hub[0].IPAddresses)
	}
	client := readChain(t, filepath.Join(dir, "pi-001.pem"))[0]
	if hub[0].SerialNumber.Cmp(client.SerialNumber) == 0 {
		t.Error("two certificates with one serial number")
	}

	tests := []struct {
		name  string
		cert  *x509.Certificate
		host  string
		usage x509.ExtKeyUsage
		ok    bool
	}{
		{"server by DNS name", hub[0], "hub.example.com", x509.ExtKeyUsageServerAuth, true},
		{"server by IP", hub[0], "127.0.0.1", x509.ExtKeyUsageServerAuth, true},
		{"hub as a client (routes, gateways)", hub[0], "", x509.ExtKeyUsageClientAuth, true},
		{"server by another name", hub[0], "other.example.com", x509.ExtKeyUsageServerAuth, false},
		{"server by another IP", hub[0], "127.0.0.2", x509.ExtKeyUsageServerAuth, false},
		{"device as a client", client, "", x509.ExtKeyUsageClientAuth, true},
		{"device as a server", client, "", x509.ExtKeyUsageServerAuth, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.cert.Verify(x509.VerifyOptions{Roots: roots, DNSName: tt.host, KeyUsages: []x509.ExtKeyUsage{tt.usage}})
			if (err == nil) != tt.ok {
				t.Errorf("Verify: %v, want ok %v", err, tt.ok)
			}
		})
	}
}

func TestRefusals(t *testing.T) {
	dir := newCA(t, "")
	issue(t, dir, "hub", []string{"localhost"}, pki.Both)
	tests := []struct {
		name string
		do   func() error
		is   error  // when set, errors.Is the error
		want string // part of the message
	}{
		{"existing CA", func() error { return pki.InitCA(dir, "", day) }, pki.ErrExists, "ca.pem already exists: a fleet CA is in place"},
		{"existing CA key", func() error {
			d := t.TempDir()
			os.WriteFile(filepath.Join(d, pki.CAKeyFile), nil, 0o600)
			return pki.InitCA(d, "", day)
		}, pki.ErrExists, "ca-key.pem already exists"},
		{"existing certificate", func() error { return pki.Issue(dir, "hub", []string{"localhost"}, day, pki.Both, false) }, pki.ErrExists, "hub.pem already exists"},
		{"existing key", func() error {
			os.WriteFile(filepath.Join(dir, "lonely-key.pem"), nil, 0o600)
			return pki.Issue(dir, "lonely", nil, day, pki.Client, false)
		}, pki.ErrExists, "lonely-key.pem already exists"},
		{"missing CA", func() error { return pki.Issue(t.TempDir(), "hub", []string{"localhost"}, day, pki.Both, false) }, pki.ErrNoCA, "ca.pem is missing"},
		{"empty host", func() error { return pki.Issue(dir, "x", []string{""}, day, pki.Server, false) }, nil, "host is empty"},
		{"host with a space", func() error { return pki.Issue(dir, "x", []string{"hub .example.com"}, day, pki.Server, false) }, nil, "contains a space"},
		{"host with an empty label", func() error { return pki.Issue(dir, "x", []string{"hub..example.com"}, day, pki.Server, false) }, nil, "not an IP address or DNS name"},
		{"host in brackets", func() error { return pki.Issue(dir, "x", []string{"[::1]"}, day, pki.Server, false) }, nil, "not an IP address or DNS name"},
		{"every bad host at once", func() error { return pki.Issue(dir, "x", []string{"a b", "", "ok.example"}, day, pki.Server, false) }, nil, "\"a b\": contains a space\nhost is empty"},
		{"server without hosts", func() error { return pki.Issue(dir, "x", nil, day, pki.Server, false) }, nil, "needs at least one host"},
		{"no usage", func() error { return pki.Issue(dir, "x", nil, day, 0, false) }, nil, "want Server, Client or Both"},
		{"no validity", func() error { return pki.Issue(dir, "x", nil, 0, pki.Client, false) }, nil, "must be positive"},
		{"name with a slash", func() error { return pki.Issue(dir, "../x", nil, day, pki.Client, false) }, nil, "must start with a letter"},
		{"name with a slash inside", func() error { return pki.Issue(dir, "a/b", nil, day, pki.Client, false) }, nil, "only letters, digits"},
		{"name of the CA", func() error { return pki.Issue(dir, "ca", nil, day, pki.Client, true) }, nil, "reserved for the fleet CA"},
		{"name of a key", func() error { return pki.Issue(dir, "hub-key", nil, day, pki.Client, true) }, nil, "must not end in -key"},
		{"empty name", func() error { return pki.Issue(dir, "", nil, day, pki.Client, false) }, nil, "name is empty"},
		{"CA name with a newline", func() error { return pki.InitCA(t.TempDir(), "a\nb", day) }, nil, "only printable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.do()
			if err == nil {
				t.Fatal("no error")
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("error %v is not %v", err, tt.is)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q, want it to contain %q", err, tt.want)
			}
		})
	}
	if _, err := os.Stat(filepath.Join(dir, "x.pem")); err == nil {
		t.Error("a refused request wrote x.pem")
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") {
			t.Errorf("temporary file %s left behind", e.Name())
		}
	}
}

// Replacing a certificate with force keeps what its readers rely on: the
// file's group access.
func TestIssueForceReplaces(t *testing.T) {
	dir := newCA(t, "")
	issue(t, dir, "hub", []string{"localhost"}, pki.Both)
	certPath, keyPath := filepath.Join(dir, "hub.pem"), filepath.Join(dir, "hub-key.pem")
	before := readChain(t, certPath)[0]
	if err := os.Chmod(keyPath, 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(certPath, 0o640); err != nil {
		t.Fatal(err)
	}
	if err := pki.Issue(dir, "hub", []string{"hub.example.com"}, day, pki.Both, true); err != nil {
		t.Fatal(err)
	}
	after := readChain(t, certPath)[0]
	if after.SerialNumber.Cmp(before.SerialNumber) == 0 || !slices.Equal(after.DNSNames, []string{"hub.example.com"}) {
		t.Errorf("not replaced: serial %v, DNS names %v", after.SerialNumber, after.DNSNames)
	}
	if m := mode(t, keyPath); m != 0o640 {
		t.Errorf("replaced key mode %v, want 0640 as before", m)
	}
	if m := mode(t, certPath); m != 0o640 {
		t.Errorf("replaced certificate mode %v, want 0640 as before", m)
	}
	if _, err := tls.LoadX509KeyPair(certPath, keyPath); err != nil {
		t.Errorf("replaced files are no key pair: %v", err)
	}

	// A world-readable key is not kept world-readable.
	if err := os.Chmod(keyPath, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := pki.Issue(dir, "hub", []string{"hub.example.com"}, day, pki.Both, true); err != nil {
		t.Fatal(err)
	}
	if m := mode(t, keyPath); m != 0o640 {
		t.Errorf("replaced world-readable key mode %v, want 0640", m)
	}
}

func TestIssueEndsWithCA(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tls")
	if err := pki.InitCA(dir, "", day); err != nil {
		t.Fatal(err)
	}
	if err := pki.Issue(dir, "hub", []string{"localhost"}, 10*day, pki.Server, false); err != nil {
		t.Fatal(err)
	}
	ca := readChain(t, filepath.Join(dir, pki.CAFile))[0]
	if c, err := pki.ReadCertificate(filepath.Join(dir, "hub.pem")); err != nil || !c.NotAfter.Equal(ca.NotAfter) {
		t.Errorf("certificate ends %v (%v), want with the CA, %v", c.NotAfter, err, ca.NotAfter)
	}
}

// A CA whose files are damaged or do not belong together is refused with
// the file named.
func TestBrokenCA(t *testing.T) {
	other := newCA(t, "other")
	otherKey, _ := os.ReadFile(filepath.Join(other, pki.CAKeyFile))
	otherCert, _ := os.ReadFile(filepath.Join(other, pki.CAFile))
	tests := []struct {
		name   string
		file   string
		data   []byte
		want   string
		absent bool // remove the file instead
	}{
		{"garbled certificate", pki.CAFile, []byte("not PEM at all"), "ca.pem: no PEM CERTIFICATE block", false},
		{"garbled key", pki.CAKeyFile, []byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"), "ca-key.pem: parse private key", false},
		{"no key in the key file", pki.CAKeyFile, otherCert, "ca-key.pem: no PEM private key block", false},
		{"another CA's key", pki.CAKeyFile, otherKey, "ca-key.pem does not belong to the certificate in", false},
		{"missing key", pki.CAKeyFile, nil, "ca-key.pem is missing", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := newCA(t, "")
			path := filepath.Join(dir, tt.file)
			var err error
			if tt.absent {
				err = os.Remove(path)
			} else {
				err = os.WriteFile(path, tt.data, 0o600)
			}
			if err != nil {
				t.Fatal(err)
			}
			err = pki.Issue(dir, "hub", []string{"localhost"}, day, pki.Both, false)
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), dir) {
				t.Errorf("Issue: %v, want an error naming %s and containing %q", err, dir, tt.want)
			}
		})
	}
}

// A CA key in openssl's traditional format (EC PARAMETERS, then EC
// PRIVATE KEY, as `openssl ecparam -genkey` writes) signs too.
func TestIssueWithSEC1Key(t *testing.T) {
	dir := newCA(t, "")
	keyPath := filepath.Join(dir, pki.CAKeyFile)
	data, _ := os.ReadFile(keyPath)
	b, _ := pem.Decode(data)
	key, err := x509.ParsePKCS8PrivateKey(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	sec1, err := x509.MarshalECPrivateKey(key.(*ecdsa.PrivateKey))
	if err != nil {
		t.Fatal(err)
	}
	params := pem.EncodeToMemory(&pem.Block{Type: "EC PARAMETERS", Bytes: []byte{0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07}})
	if err := os.WriteFile(keyPath, append(params, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: sec1})...), 0o600); err != nil {
		t.Fatal(err)
	}
	issue(t, dir, "hub", []string{"localhost"}, pki.Both)
}

// The certificates work for what they are made for: a listener that
// requires client certificates of the fleet accepts a device's and
// refuses one from another CA.
func TestHandshake(t *testing.T) {
	dir := newCA(t, "fleet")
	issue(t, dir, "hub", []string{"hub.example.com", "127.0.0.1"}, pki.Both)
	issue(t, dir, "pi-001", nil, pki.Client)
	other := newCA(t, "other")
	issue(t, other, "intruder", nil, pki.Client)
	roots := caPool(t, dir)

	load := func(dir, name string) tls.Certificate {
		t.Helper()
		c, err := tls.LoadX509KeyPair(filepath.Join(dir, pki.CertFile(name)), filepath.Join(dir, pki.KeyFile(name)))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{
		Certificates: []tls.Certificate{load(dir, "hub")},
		ClientCAs:    roots,
		ClientAuth:   tls.RequireAndVerifyClientCert,
		MinVersion:   tls.VersionTLS12,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	serverErrs := make(chan error, 16)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(10 * time.Second))
				err := c.(*tls.Conn).Handshake()
				if err == nil {
					_, err = c.Write([]byte("ok"))
				}
				serverErrs <- err
			}()
		}
	}()

	tests := []struct {
		name       string
		serverName string
		certs      []tls.Certificate
		ok         bool
	}{
		{"device by DNS name", "hub.example.com", []tls.Certificate{load(dir, "pi-001")}, true},
		{"device by IP", "127.0.0.1", []tls.Certificate{load(dir, "pi-001")}, true},
		{"another hub node", "hub.example.com", []tls.Certificate{load(dir, "hub")}, true},
		{"certificate from another CA", "hub.example.com", []tls.Certificate{load(other, "intruder")}, false},
		{"no certificate", "hub.example.com", nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", ln.Addr().String(), &tls.Config{
				RootCAs:      roots,
				ServerName:   tt.serverName,
				Certificates: tt.certs,
				MinVersion:   tls.VersionTLS12,
			})
			if err == nil {
				// Under TLS 1.3 the client's handshake ends before the
				// server has checked its certificate: the refusal comes
				// with the first read.
				conn.SetDeadline(time.Now().Add(10 * time.Second))
				var buf [2]byte
				_, err = io.ReadFull(conn, buf[:])
				conn.Close()
			}
			serverErr := <-serverErrs
			if (err == nil) != tt.ok || (serverErr == nil) != tt.ok {
				t.Errorf("client: %v; server: %v; want ok %v", err, serverErr, tt.ok)
			}
			if !tt.ok && serverErr != nil && !strings.Contains(serverErr.Error(), "certificate") {
				t.Errorf("server refused for another reason than the certificate: %v", serverErr)
			}
		})
	}
}
