package enroll_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nkeys"

	"github.com/canopy-iot/canopy/leaf/enroll"
)

// fakeHub stands in for the hub's enrollment service: it checks the
// request's shape as the hub does and answers by token.
type fakeHub struct {
	t       *testing.T
	account nkeys.KeyPair // signs the device JWTs
	block   chan struct{} // "slow" waits on it
}

func newFakeHub(t *testing.T) *fakeHub {
	acc, err := nkeys.CreateAccount()
	if err != nil {
		t.Fatal(err)
	}
	return &fakeHub{t: t, account: acc, block: make(chan struct{})}
}

// mint issues a user JWT for pub named name, as the hub does.
func (h *fakeHub) mint(pub, name string) string {
	uc := jwt.NewUserClaims(pub)
	uc.Name = name
	token, err := uc.Encode(h.account)
	if err != nil {
		h.t.Error(err)
	}
	return token
}

func (h *fakeHub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	reply := func(status int, v any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(v)
	}
	switch {
	case r.URL.Path != enroll.Path:
		reply(http.StatusNotFound, map[string]string{"error": "no such endpoint " + r.URL.Path})
		return
	case r.Method != http.MethodPost:
		reply(http.StatusMethodNotAllowed, map[string]string{"error": "use POST"})
		return
	case r.Header.Get("Content-Type") != "application/json":
		h.t.Errorf("Content-Type %q", r.Header.Get("Content-Type"))
	}
	var req struct {
		Token     string `json:"token"`
		PublicKey string `json:"public_key"`
	}
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields() // the body is exactly token and public_key
	if err := dec.Decode(&req); err != nil {
		h.t.Errorf("request body: %v", err)
		reply(http.StatusBadRequest, map[string]string{"error": err.Error()})
		return
	}
	if !nkeys.IsValidPublicUserKey(req.PublicKey) {
		h.t.Errorf("public_key %q is not a user key", req.PublicKey)
	}
	urls := []string{"tls://hub.example.com:7422"}
	switch req.Token {
	case "good":
		reply(http.StatusOK, map[string]any{"tenant": "acme", "device": "pi-001", "jwt": h.mint(req.PublicKey, "pi-001"), "leafnode_urls": urls})
	case "expired":
		reply(http.StatusGone, map[string]string{"error": "enrollment token expired at 2026-11-22T06:00:00Z"})
	case "escape":
		reply(http.StatusUnauthorized, map[string]string{"error": "enrollment token is not valid: \x1b[31mred\x1b[0m"})
	case "html":
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.WriteHeader(http.StatusBadGateway)
		w.Write([]byte("<html><body>502 Bad Gateway</body></html>"))
	case "html-200":
		w.Header().Set("Content-Type", "text/html")
		w.Write([]byte("<html>a captive portal</html>"))
	case "huge":
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"tenant":"` + strings.Repeat("a", 2<<20) + `"}`))
	case "other-key":
		other, _ := nkeys.CreateUser()
		pub, _ := other.PublicKey()
		reply(http.StatusOK, map[string]any{"tenant": "acme", "device": "pi-001", "jwt": h.mint(pub, "pi-001"), "leafnode_urls": urls})
	case "other-name":
		reply(http.StatusOK, map[string]any{"tenant": "acme", "device": "pi-001", "jwt": h.mint(req.PublicKey, "pi-002"), "leafnode_urls": urls})
	case "bad-device":
		reply(http.StatusOK, map[string]any{"tenant": "acme", "device": "pi.001", "jwt": h.mint(req.PublicKey, "pi.001")})
	case "redirect":
		http.Redirect(w, r, "http://elsewhere.example.com/v1/enroll", http.StatusTemporaryRedirect)
	case "slow":
		select {
		case <-h.block:
		case <-r.Context().Done():
		}
	default:
		reply(http.StatusUnauthorized, map[string]string{"error": "enrollment token is not valid: unknown token"})
	}
}

// startTLSHub serves h over TLS and writes its certificate to a PEM file.
func startTLSHub(t *testing.T, h *fakeHub) (url, caFile string) {
	srv := httptest.NewUnstartedServer(h)
	// Refused handshakes (the test without the CA) are expected.
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(h.block) }) // before Close: a blocked handler returns
	caFile = filepath.Join(t.TempDir(), "fleet-ca.pem")
	pemData := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	if err := os.WriteFile(caFile, pemData, 0o644); err != nil {
		t.Fatal(err)
	}
	return srv.URL, caFile
}

func TestEnroll(t *testing.T) {
	h := newFakeHub(t)
	url, ca := startTLSHub(t, h)
	res, err := enroll.Enroll(context.Background(), enroll.Request{Hub: url, Token: "good", CAFile: ca})
	if err != nil {
		t.Fatal(err)
	}
	if res.Tenant != "acme" || res.Device != "pi-001" || len(res.LeafNodeURLs) != 1 || res.LeafNodeURLs[0] != "tls://hub.example.com:7422" {
		t.Errorf("result %+v", res)
	}
	// The .creds file holds the hub's JWT and the seed of the key whose
	// public half the JWT names.
	creds, err := res.Creds()
	if err != nil {
		t.Fatal(err)
	}
	token, err := nkeys.ParseDecoratedJWT(creds)
	if err != nil || token != res.JWT {
		t.Fatalf("JWT in the creds: %q, %v", token, err)
	}
	kp, err := nkeys.ParseDecoratedUserNKey(creds)
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := kp.PublicKey()
	claims, err := jwt.DecodeUserClaims(token)
	if err != nil {
		t.Fatal(err)
	}
	if claims.Subject != pub || claims.Name != "pi-001" {
		t.Errorf("JWT for %s named %q; the seed's key is %s", claims.Subject, claims.Name, pub)
	}
	// Each enrollment makes a new key.
	again, err := enroll.Enroll(context.Background(), enroll.Request{Hub: url, Token: "good", CAFile: ca})
	if err != nil {
		t.Fatal(err)
	}
	if c, _ := jwt.DecodeUserClaims(again.JWT); c.Subject == pub {
		t.Error("two enrollments used the same key")
	}
}

func TestEnrollFailures(t *testing.T) {
	h := newFakeHub(t)
	url, ca := startTLSHub(t, h)
	tests := []struct {
		token string
		want  string // in the error
	}{
		{"expired", "the hub refused the enrollment: enrollment token expired at 2026-11-22T06:00:00Z (HTTP 410)"},
		{"unknown", "the hub refused the enrollment: enrollment token is not valid: unknown token (HTTP 401)"},
		{"escape", "the hub refused the enrollment: enrollment token is not valid: [31mred[0m (HTTP 401)"},
		{"html", "the hub's answer (HTTP 502, text/html) is not an enrollment service's: is " + url + "/v1/enroll the hub's enrollment service?"},
		{"html-200", "the hub's answer (HTTP 200, text/html) is not the expected JSON"},
		{"huge", "the hub's answer (HTTP 200, application/json) is over 1 MiB"},
		{"other-key", "the hub returned credentials for another key"},
		{"other-name", `the hub returned credentials for another key: the JWT names device "pi-002", the answer "pi-001"`},
		{"bad-device", `the hub returned an unusable device id "pi.001"`},
		{"redirect", "the hub redirected to http://elsewhere.example.com/v1/enroll"},
	}
	for _, tt := range tests {
		t.Run(tt.token, func(t *testing.T) {
			_, err := enroll.Enroll(context.Background(), enroll.Request{Hub: url, Token: tt.token, CAFile: ca})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want %q", err, tt.want)
			}
		})
	}

	_, err := enroll.Enroll(context.Background(), enroll.Request{Hub: url, Token: "expired", CAFile: ca})
	var refused *enroll.RefusedError
	if !errors.As(err, &refused) || refused.Status != http.StatusGone {
		t.Errorf("refusal %#v", err)
	}
	_, err = enroll.Enroll(context.Background(), enroll.Request{Hub: url, Token: "other-key", CAFile: ca})
	if !errors.Is(err, enroll.ErrOtherKey) {
		t.Errorf("another key: %v", err)
	}
}

// Without --ca, the test hub's certificate is not trusted: its CA is in
// no system store.
func TestEnrollVerifiesTheHub(t *testing.T) {
	url, _ := startTLSHub(t, newFakeHub(t))
	_, err := enroll.Enroll(context.Background(), enroll.Request{Hub: url, Token: "good"})
	var verify *tls.CertificateVerificationError
	if !errors.As(err, &verify) {
		t.Fatalf("error %v, want a certificate verification failure", err)
	}
}

// http:// to this machine is allowed (a hub on the same host, tests).
func TestEnrollPlainHTTPOnLoopback(t *testing.T) {
	srv := httptest.NewServer(newFakeHub(t))
	t.Cleanup(srv.Close)
	res, err := enroll.Enroll(context.Background(), enroll.Request{Hub: srv.URL + "/", Token: "good"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Device != "pi-001" {
		t.Errorf("device %q", res.Device)
	}
}

func TestEnrollCancel(t *testing.T) {
	url, ca := startTLSHub(t, newFakeHub(t))
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	start := time.Now()
	_, err := enroll.Enroll(ctx, enroll.Request{Hub: url, Token: "slow", CAFile: ca})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("error %v, want context.Canceled", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("returned after %v", d)
	}
}

func TestRequestValidate(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "ca.txt")
	os.WriteFile(notPEM, []byte("not a certificate\n"), 0o644)
	missing := filepath.Join(dir, "missing.pem")
	tests := []struct {
		name string
		req  enroll.Request
		want []string // each in the error; none: valid
	}{
		{"https", enroll.Request{Hub: "https://hub.example.com:7480", Token: "t"}, nil},
		{"path prefix", enroll.Request{Hub: "https://fleet.example.com/canopy/", Token: "t"}, nil},
		{"http to 127.0.0.1", enroll.Request{Hub: "http://127.0.0.1:7480", Token: "t"}, nil},
		{"http to ::1", enroll.Request{Hub: "http://[::1]:7480", Token: "t"}, nil},
		{"http to localhost", enroll.Request{Hub: "http://localhost:7480", Token: "t"}, nil},
		{"http to the network", enroll.Request{Hub: "http://hub.example.com:7480", Token: "t"},
			[]string{`hub URL "http://hub.example.com:7480": http:// is allowed to this machine only: the token and the device's credentials would cross the network in clear; use https://`}},
		{"http to a LAN address", enroll.Request{Hub: "http://192.168.1.10:7480", Token: "t"}, []string{"in clear"}},
		{"empty hub", enroll.Request{Token: "t"}, []string{"hub URL: must not be empty"}},
		{"no scheme", enroll.Request{Hub: "hub.example.com:7480", Token: "t"}, []string{`hub URL "hub.example.com:7480"`}},
		{"garbled", enroll.Request{Hub: "https://hub.example.com:port", Token: "t"}, []string{`hub URL "https://hub.example.com:port": want https://host:port`}},
		{"other scheme", enroll.Request{Hub: "ftp://hub.example.com", Token: "t"}, []string{"scheme must be https"}},
		{"user in URL", enroll.Request{Hub: "https://u:p@hub.example.com", Token: "t"}, []string{"must not carry a user or password"}},
		{"query", enroll.Request{Hub: "https://hub.example.com/?x=1", Token: "t"}, []string{"must not have a query"}},
		{"empty token", enroll.Request{Hub: "https://hub.example.com"}, []string{"token: must not be empty"}},
		{"token with a space", enroll.Request{Hub: "https://hub.example.com", Token: "abc def"}, []string{"token: must not contain whitespace"}},
		{"missing CA file", enroll.Request{Hub: "https://hub.example.com", Token: "t", CAFile: missing},
			[]string{"CA file " + missing + ": no such file or directory"}},
		{"CA file without PEM", enroll.Request{Hub: "https://hub.example.com", Token: "t", CAFile: notPEM},
			[]string{"CA file " + notPEM + ": no PEM certificate in it"}},
		{"every problem at once", enroll.Request{Hub: "http://hub.example.com", CAFile: missing},
			[]string{"in clear", "token: must not be empty", "CA file " + missing}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.req.Validate()
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("no error, want %q", tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			// Enroll refuses it too, before anything is sent.
			if _, err := enroll.Enroll(context.Background(), tt.req); err == nil {
				t.Error("Enroll accepted it")
			}
		})
	}
}
