package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

var (
	// ErrExists is returned when a file InitCA or Issue would write is
	// there already.
	ErrExists = errors.New("already exists")
	// ErrNoCA is returned by Issue when the directory holds no fleet CA.
	ErrNoCA = errors.New("no fleet CA")
)

// Usage is what an issued certificate may authenticate: its extended key
// usage.
type Usage int

const (
	// Server certificates authenticate a listener to those dialling it.
	Server Usage = 1 << iota
	// Client certificates authenticate a device or a node to a listener
	// that verifies clients.
	Client
	// Both is for hub nodes: routes and gateways are dialled by, and
	// dial, other nodes with one certificate.
	Both = Server | Client
)

func (u Usage) String() string {
	switch u {
	case Server:
		return "server"
	case Client:
		return "client"
	case Both:
		return "server and client"
	}
	return fmt.Sprintf("Usage(%d)", int(u))
}

func (u Usage) extKeyUsage() []x509.ExtKeyUsage {
	var eku []x509.ExtKeyUsage
	if u&Server != 0 {
		eku = append(eku, x509.ExtKeyUsageServerAuth)
	}
	if u&Client != 0 {
		eku = append(eku, x509.ExtKeyUsageClientAuth)
	}
	return eku
}

// backdate is taken off every certificate's start, so that a machine whose
// clock is somewhat behind the issuer's accepts it at once.
const backdate = time.Hour

// maxCANameLen keeps the CA's common name, "<name> Canopy fleet CA",
// within the 64 characters X.509 allows.
const maxCANameLen = 64 - len(" Canopy fleet CA")

// InitCA makes a fleet CA in dir: ca.pem, a self-signed certificate valid
// for validity with the common name "<name> Canopy fleet CA" (name may be
// empty), and ca-key.pem, its key, readable by the owner only. dir is made
// (mode 0700) when missing. It refuses to touch a directory that holds
// either file already: replacing a CA orphans every certificate it signed.
func InitCA(dir, name string, validity time.Duration) error {
	var problems []error
	if err := checkCAName(name); err != nil {
		problems = append(problems, err)
	}
	if validity <= 0 {
		problems = append(problems, fmt.Errorf("CA validity %v: must be positive", validity))
	}
	if err := errors.Join(problems...); err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create certificate directory: %w", err)
	}
	certPath, keyPath := filepath.Join(dir, CAFile), filepath.Join(dir, CAKeyFile)
	for _, p := range []string{certPath, keyPath} {
		if err := refuseExisting(p); err != nil {
			return fmt.Errorf("%w: a fleet CA is in place", err)
		}
	}

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("generate CA key: %w", err)
	}
	serial, err := newSerial()
	if err != nil {
		return err
	}
	cn := "Canopy fleet CA"
	if name != "" {
		cn = name + " " + cn
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.Add(validity),
		IsCA:                  true,
		BasicConstraintsValid: true,
		// It signs end-entity certificates only: an intermediate made
		// from a stolen leaf key could not sign anything.
		MaxPathLen:     0,
		MaxPathLenZero: true,
		KeyUsage:       x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return fmt.Errorf("create CA certificate: %w", err)
	}
	keyPEM, err := encodeKey(key)
	if err != nil {
		return err
	}
	err = writeAll(dir, false,
		file{path: keyPath, data: keyPEM, mode: 0o600, max: 0o640},
		file{path: certPath, data: encodeCerts(der), mode: 0o644, max: 0o644},
	)
	if errors.Is(err, ErrExists) {
		return fmt.Errorf("%w: a fleet CA is in place", err)
	}
	return err
}

// Issue makes a certificate signed by the fleet CA in dir: <name>.pem,
// the certificate followed by the CA's (the chain a peer needs), and
// <name>-key.pem, its key, readable by the owner only.
//
// The common name is name. hosts become the subject alternative names a
// TLS client checks: IP addresses as IP SANs, anything else as a DNS name
// ("*.example.com" included); a certificate for Server use needs at least
// one. The certificate is valid for validity, but not beyond the CA.
//
// Existing files are replaced only with force, and then keep their owner,
// group and (at most) their group's read access, so that a service that
// could read the old key reads the new one.
func Issue(dir, name string, hosts []string, validity time.Duration, usage Usage, force bool) error {
	if err := checkRequest(name, hosts, validity, usage); err != nil {
		return err
	}
	certPath, keyPath := filepath.Join(dir, CertFile(name)), filepath.Join(dir, KeyFile(name))
	if !force {
		for _, p := range []string{certPath, keyPath} {
			if err := refuseExisting(p); err != nil {
				return err
			}
		}
	}
	ca, err := loadCA(dir)
	if err != nil {
		return err
	}

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("generate key: %w", err)
	}
	serial, err := newSerial()
	if err != nil {
		return err
	}
	now := time.Now()
	notAfter := now.Add(validity)
	if notAfter.After(ca.cert.NotAfter) {
		notAfter = ca.cert.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    now.Add(-backdate),
		NotAfter:     notAfter,
		// ECDSA keys sign (the TLS handshake); they never encrypt.
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: usage.extKeyUsage(),
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, key.Public(), ca.key)
	if err != nil {
		return fmt.Errorf("sign certificate %s: %w", name, err)
	}
	chain := [][]byte{der}
	for _, c := range ca.chain {
		chain = append(chain, c.Raw)
	}
	keyPEM, err := encodeKey(key)
	if err != nil {
		return err
	}
	return writeAll(dir, force,
		file{path: keyPath, data: keyPEM, mode: 0o600, max: 0o640},
		file{path: certPath, data: encodeCerts(chain...), mode: 0o644, max: 0o644},
	)
}

// ReadCertificate returns the first certificate in the PEM file at path.
func ReadCertificate(path string) (*x509.Certificate, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	certs, err := parseCerts(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return certs[0], nil
}

// authority is a loaded fleet CA.
type authority struct {
	cert  *x509.Certificate
	chain []*x509.Certificate // every certificate in ca.pem, cert first
	key   crypto.Signer
}

// loadCA reads the CA in dir. Besides Canopy's own, it takes a CA made
// with openssl (an "EC PRIVATE KEY" or RSA key), so that `canopy-hub tls
// issue` can sign with a CA someone already has.
func loadCA(dir string) (*authority, error) {
	certPath, keyPath := filepath.Join(dir, CAFile), filepath.Join(dir, CAKeyFile)
	certPEM, err := os.ReadFile(certPath)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w in %s: %s is missing", ErrNoCA, dir, CAFile)
	}
	if err != nil {
		return nil, fmt.Errorf("fleet CA: %w", err)
	}
	chain, err := parseCerts(certPEM)
	if err != nil {
		return nil, fmt.Errorf("fleet CA %s: %w", certPath, err)
	}
	cert := chain[0]
	switch {
	case !cert.BasicConstraintsValid || !cert.IsCA:
		return nil, fmt.Errorf("fleet CA %s: not a CA certificate", certPath)
	case cert.KeyUsage != 0 && cert.KeyUsage&x509.KeyUsageCertSign == 0:
		return nil, fmt.Errorf("fleet CA %s: its key usage does not allow signing certificates", certPath)
	case time.Now().After(cert.NotAfter):
		return nil, fmt.Errorf("fleet CA %s: expired on %s", certPath, cert.NotAfter.UTC().Format(time.DateOnly))
	}

	keyPEM, err := os.ReadFile(keyPath)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w in %s: %s is missing (%s alone verifies certificates but cannot sign them)", ErrNoCA, dir, CAKeyFile, CAFile)
	}
	if err != nil {
		return nil, fmt.Errorf("fleet CA key: %w", err)
	}
	key, err := parseKey(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("fleet CA key %s: %w", keyPath, err)
	}
	if pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool }); !ok || !pub.Equal(cert.PublicKey) {
		return nil, fmt.Errorf("fleet CA key %s does not belong to the certificate in %s", keyPath, certPath)
	}
	return &authority{cert: cert, chain: chain, key: key}, nil
}

func parseCerts(data []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certificate %d: %w", len(certs)+1, err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, errors.New("no PEM CERTIFICATE block")
	}
	return certs, nil
}

func parseKey(data []byte) (crypto.Signer, error) {
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			return nil, errors.New("no PEM private key block")
		}
		var key any
		var err error
		switch block.Type {
		case "PRIVATE KEY":
			key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
		case "EC PRIVATE KEY":
			key, err = x509.ParseECPrivateKey(block.Bytes)
		case "RSA PRIVATE KEY":
			key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
		case "ENCRYPTED PRIVATE KEY":
			return nil, errors.New("the key is encrypted: decrypt it first (openssl pkey -in KEY -out KEY.plain)")
		default: // "EC PARAMETERS" before the key, as openssl ecparam writes
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("parse %s: %w", strings.ToLower(block.Type), err)
		}
		signer, ok := key.(crypto.Signer)
		if !ok {
			return nil, fmt.Errorf("a %T cannot sign", key)
		}
		return signer, nil
	}
}

func encodeKey(key *ecdsa.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encode key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

func encodeCerts(ders ...[]byte) []byte {
	var out []byte
	for _, der := range ders {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
	}
	return out
}

// newSerial returns a random positive 128-bit serial number: unique
// without a counter to keep, as RFC 5280 asks.
func newSerial() (*big.Int, error) {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, fmt.Errorf("serial number: %w", err)
	}
	return n.Add(n, big.NewInt(1)), nil
}

func refuseExisting(path string) error {
	if _, err := os.Lstat(path); err == nil {
		return fmt.Errorf("%s %w", path, ErrExists)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// CheckHosts reports every host that Issue would refuse as a subject
// alternative name, so that a caller can check before making anything.
func CheckHosts(hosts []string) error {
	var problems []error
	for _, h := range hosts {
		if err := checkHost(h); err != nil {
			problems = append(problems, err)
		}
	}
	return errors.Join(problems...)
}

// checkRequest reports every problem with an Issue request at once.
func checkRequest(name string, hosts []string, validity time.Duration, usage Usage) error {
	var problems []error
	if err := checkName(name); err != nil {
		problems = append(problems, err)
	}
	if err := CheckHosts(hosts); err != nil {
		problems = append(problems, err)
	}
	switch {
	case usage&^Both != 0 || usage == 0:
		problems = append(problems, fmt.Errorf("usage %v: want Server, Client or Both", usage))
	case usage&Server != 0 && len(hosts) == 0:
		problems = append(problems, errors.New("a server certificate needs at least one host (DNS name or IP address) its clients dial"))
	}
	if validity <= 0 {
		problems = append(problems, fmt.Errorf("validity %v: must be positive", validity))
	}
	return errors.Join(problems...)
}

// checkName allows names that are safe as file names everywhere. "ca"
// and names ending in "-key" would collide with the CA's or another
// name's files.
func checkName(name string) error {
	switch {
	case name == "":
		return errors.New("certificate name is empty")
	case len(name) > 64:
		return fmt.Errorf("certificate name %q: longer than 64 characters", name)
	case name[0] == '.' || name[0] == '-':
		return fmt.Errorf("certificate name %q: must start with a letter, digit or '_'", name)
	case strings.EqualFold(name, "ca"):
		return fmt.Errorf("certificate name %q: reserved for the fleet CA", name)
	case strings.HasSuffix(strings.ToLower(name), "-key"):
		return fmt.Errorf("certificate name %q: must not end in -key (key files do)", name)
	}
	for _, r := range name {
		if !isASCIIAlnum(r) && r != '.' && r != '-' && r != '_' {
			return fmt.Errorf("certificate name %q: only letters, digits, '.', '-' and '_' allowed", name)
		}
	}
	return nil
}

func checkCAName(name string) error {
	if len(name) > maxCANameLen {
		return fmt.Errorf("CA name %q: longer than %d characters", name, maxCANameLen)
	}
	if !utf8.ValidString(name) || strings.TrimSpace(name) != name {
		return fmt.Errorf("CA name %q: invalid text or leading/trailing space", name)
	}
	for _, r := range name {
		if !unicode.IsPrint(r) {
			return fmt.Errorf("CA name %q: only printable characters allowed", name)
		}
	}
	return nil
}

// checkHost accepts an IP address or a DNS name of letters, digits, '-'
// and '_' labels, the first of which may be "*".
func checkHost(h string) error {
	if h == "" {
		return errors.New("host is empty")
	}
	if net.ParseIP(h) != nil {
		return nil
	}
	if strings.ContainsFunc(h, unicode.IsSpace) {
		return fmt.Errorf("host %q: contains a space", h)
	}
	if len(h) > 253 {
		return fmt.Errorf("host %q: longer than 253 characters", h)
	}
	labels := strings.Split(h, ".")
	for i, l := range labels {
		if i == 0 && l == "*" && len(labels) > 1 {
			continue
		}
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return fmt.Errorf("host %q: not an IP address or DNS name", h)
		}
		for _, r := range l {
			if !isASCIIAlnum(r) && r != '-' && r != '_' {
				return fmt.Errorf("host %q: not an IP address or DNS name", h)
			}
		}
	}
	return nil
}

func isASCIIAlnum(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9'
}
