package enroll

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nkeys"
)

// Request is what an enrollment needs from the person enrolling the
// device.
type Request struct {
	// Hub is the base URL of the hub's enrollment service,
	// https://host:port (a path prefix is kept, for a hub behind a
	// proxy). http:// is accepted for loopback hosts only: the token and
	// the JWT would otherwise cross the network in clear.
	Hub string
	// Token is the one-time enrollment token the hub's operator made for
	// this device.
	Token string
	// CAFile is a PEM bundle that the hub's certificate is verified
	// against, typically the fleet's CA. Default: the system's roots.
	CAFile string
}

// Result is an enrolled device's identity and credentials.
type Result struct {
	Tenant       string   // the account the device is bound to
	Device       string   // the device id, the name in JWT
	JWT          string   // the device's user JWT, issued by the hub
	LeafNodeURLs []string // where the hub says the device connects; may be empty
	FirmwareKeys []string // the keys the tenant signs firmware with; may be empty
	seed         []byte   // the device's user seed, made here
}

// Creds is the content of the device's .creds file: its JWT and seed.
func (r Result) Creds() ([]byte, error) {
	if r.JWT == "" || len(r.seed) == 0 {
		return nil, errors.New("no credentials: not an enrollment's result")
	}
	return jwt.FormatUserConfig(r.JWT, r.seed)
}

// RefusedError is the hub's refusal of an enrollment (an expired, used
// or unknown token, an unknown tenant), with the hub's message, which is
// written for the person enrolling the device.
type RefusedError struct {
	Status  int    // the HTTP status
	Message string // the hub's message
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("the hub refused the enrollment: %s (HTTP %d)", e.Message, e.Status)
}

// ErrOtherKey is an answer whose JWT is not for the key this enrollment
// made, or not for the device the answer names: never written.
var ErrOtherKey = errors.New("the hub returned credentials for another key")

// Validate checks the request without contacting the hub: the hub URL,
// the token, and the CA file when one is given. It reports every problem.
func (r Request) Validate() error {
	var errs []error
	if _, err := r.endpoint(); err != nil {
		errs = append(errs, err)
	}
	if strings.TrimSpace(r.Token) == "" {
		errs = append(errs, errors.New("token: must not be empty"))
	} else if strings.ContainsAny(r.Token, " \t\r\n") {
		errs = append(errs, errors.New("token: must not contain whitespace (was it copied whole?)"))
	}
	if r.CAFile != "" {
		if _, err := loadCA(r.CAFile); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// endpoint is the enrollment URL under Hub, once Hub is checked.
func (r Request) endpoint() (*url.URL, error) {
	if r.Hub == "" {
		return nil, errors.New("hub URL: must not be empty (want https://host:port)")
	}
	u, err := url.Parse(r.Hub)
	if err != nil || u.Host == "" || u.Opaque != "" {
		return nil, fmt.Errorf("hub URL %q: want https://host:port", r.Hub)
	}
	switch {
	case u.Scheme != "https" && u.Scheme != "http":
		return nil, fmt.Errorf("hub URL %q: scheme must be https", r.Hub)
	case u.User != nil:
		return nil, fmt.Errorf("hub URL %q: must not carry a user or password", r.Hub)
	case u.RawQuery != "" || u.Fragment != "":
		return nil, fmt.Errorf("hub URL %q: must not have a query or fragment", r.Hub)
	case u.Scheme == "http" && !loopback(u.Hostname()):
		return nil, fmt.Errorf("hub URL %q: http:// is allowed to this machine only: the token and the device's credentials would cross the network in clear; use https://", r.Hub)
	}
	e := *u
	e.Path = strings.TrimSuffix(u.Path, "/") + Path
	e.RawPath = ""
	return &e, nil
}

// loopback reports whether host names this machine: localhost or a
// loopback address.
func loopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// loadCA reads a PEM bundle of CA certificates.
func loadCA(file string) (*x509.CertPool, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return nil, fmt.Errorf("CA file %s: %w", file, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("CA file %s: no PEM certificate in it", file)
	}
	return pool, nil
}

// request and answer are the enrollment protocol's bodies.
type request struct {
	Token     string `json:"token"`
	PublicKey string `json:"public_key"`
}

type answer struct {
	Tenant       string   `json:"tenant"`
	Device       string   `json:"device"`
	JWT          string   `json:"jwt"`
	LeafNodeURLs []string `json:"leafnode_urls"`
	FirmwareKeys []string `json:"firmware_keys"`
}

// Enroll makes the device's key pair, sends its public key and the token
// to the hub, and returns the credentials the hub issued once it checked
// them. Nothing is written: see WriteCreds. A refusal by the hub is a
// *RefusedError. Enroll gives up after Timeout or when ctx ends.
func Enroll(ctx context.Context, req Request) (Result, error) {
	if err := req.Validate(); err != nil {
		return Result{}, err
	}
	endpoint, _ := req.endpoint()
	var pool *x509.CertPool
	if req.CAFile != "" {
		var err error
		if pool, err = loadCA(req.CAFile); err != nil {
			return Result{}, err
		}
	}
	kp, err := nkeys.CreateUser()
	if err != nil {
		return Result{}, fmt.Errorf("make the device's key: %w", err)
	}
	defer kp.Wipe()
	pub, err := kp.PublicKey()
	if err != nil {
		return Result{}, fmt.Errorf("make the device's key: %w", err)
	}
	seed, err := kp.Seed()
	if err != nil {
		return Result{}, fmt.Errorf("make the device's key: %w", err)
	}
	seed = bytes.Clone(seed) // Wipe overwrites the key pair's own copy
	body, _ := json.Marshal(request{Token: req.Token, PublicKey: pub})

	ctx, cancel := context.WithTimeout(ctx, Timeout)
	defer cancel()
	resp, err := post(ctx, endpoint, pool, body)
	if err != nil {
		return Result{}, err
	}
	what := fmt.Sprintf("HTTP %d, %s", resp.status, contentType(resp.contentType))
	switch {
	case resp.tooLarge:
		return Result{}, fmt.Errorf("the hub's answer (%s) is over 1 MiB: is %s the hub's enrollment service?", what, endpoint.Redacted())
	case resp.status >= 300 && resp.status < 400 && resp.location != "":
		// Not followed: a redirect could carry the token elsewhere, or
		// to plain HTTP.
		return Result{}, fmt.Errorf("the hub redirected to %s; give that address as the hub URL", printable(resp.location))
	case resp.status != http.StatusOK:
		var refusal struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(resp.body, &refusal) != nil || strings.TrimSpace(refusal.Error) == "" {
			return Result{}, fmt.Errorf("the hub's answer (%s) is not an enrollment service's: is %s the hub's enrollment service?", what, endpoint.Redacted())
		}
		return Result{}, &RefusedError{Status: resp.status, Message: printable(refusal.Error)}
	}
	var ans answer
	if err := json.Unmarshal(resp.body, &ans); err != nil {
		return Result{}, fmt.Errorf("the hub's answer (%s) is not the expected JSON: %v", what, err)
	}
	if err := check(ans, pub); err != nil {
		return Result{}, err
	}
	return Result{Tenant: ans.Tenant, Device: ans.Device, JWT: ans.JWT, LeafNodeURLs: ans.LeafNodeURLs, FirmwareKeys: ans.FirmwareKeys, seed: seed}, nil
}

// check verifies that the answer's JWT is a user JWT for pub, named as the
// device the answer names, and that the device id can be a subject token
// (it becomes the {device} of the device's subjects).
func check(ans answer, pub string) error {
	if ans.JWT == "" {
		return errors.New("the hub's answer has no JWT")
	}
	claims, err := jwt.DecodeUserClaims(ans.JWT)
	if err != nil {
		return fmt.Errorf("the hub's JWT is not a user JWT: %w", err)
	}
	if claims.Subject != pub {
		return ErrOtherKey
	}
	if claims.Name != ans.Device {
		return fmt.Errorf("%w: the JWT names device %q, the answer %q", ErrOtherKey, printable(claims.Name), printable(ans.Device))
	}
	if ans.Device == "" || strings.ContainsAny(ans.Device, ".*> \t\r\n") || printable(ans.Device) != ans.Device {
		return fmt.Errorf("the hub returned an unusable device id %q (it must be one subject token)", printable(ans.Device))
	}
	return nil
}

// contentType describes a Content-Type header for an error message.
func contentType(v string) string {
	if v == "" {
		return "no content type"
	}
	if mt, _, err := mime.ParseMediaType(v); err == nil {
		return mt
	}
	return printable(v)
}

// printable is s for a terminal: control characters (an escape sequence
// from a hostile or broken server) dropped, and at most 500 bytes.
func printable(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return -1
		}
		return r
	}, s)
	for i := range s { // rune boundaries
		if i >= 500 {
			return s[:i] + "…"
		}
	}
	return s
}
