package auth

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"testing"

	"github.com/nats-io/nkeys"
	"golang.org/x/crypto/bcrypt"
)

// hash returns a bcrypt hash of password at the cheapest cost, so tests
// exercise real bcrypt without its real price.
func hash(t testing.TB, password string) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return string(h)
}

// secretFile writes content to a new file in the test's temp dir.
func secretFile(t testing.TB, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func mustNew(t testing.TB, cfg Config) *Authenticator {
	t.Helper()
	a, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return a
}

// nkeyUser is a real NKey user key pair.
type nkeyUser struct {
	kp  nkeys.KeyPair
	pub string
}

func newNKeyUser(t testing.TB) nkeyUser {
	t.Helper()
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	pub, err := kp.PublicKey()
	if err != nil {
		t.Fatal(err)
	}
	return nkeyUser{kp: kp, pub: pub}
}

// sign signs the nonce bytes as sent and encodes the signature with enc,
// as nats.go does with base64.RawURLEncoding.
func (n nkeyUser) sign(t testing.TB, nonce string, enc *base64.Encoding) string {
	t.Helper()
	sig, err := n.kp.Sign([]byte(nonce))
	if err != nil {
		t.Fatal(err)
	}
	return enc.EncodeToString(sig)
}

// user authenticates with a password user's credentials and fails the test
// otherwise; it is the quickest way to a User with permissions.
func userWith(t testing.TB, p Permissions) *User {
	t.Helper()
	a := mustNew(t, Config{Users: []UserConfig{{User: "u", Password: "p", Permissions: p}}})
	u, err := a.Authenticate(Credentials{User: "u", Pass: "p"}, "")
	if err != nil {
		t.Fatal(err)
	}
	return u
}
