package auth

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"time"

	"github.com/nats-io/nkeys"

	"github.com/canopy-iot/canopy/internal/config"
)

// Authenticator checks CONNECT credentials against a Config. It is
// immutable after New and safe for concurrent use by every connection.
type Authenticator struct {
	token *secret           // nil unless a token is configured
	users map[string]*entry // by user name
	nkeys map[string]*entry // by public key
	now   func() time.Time  // tests replace it
}

// entry is a configured user, shared by all its connections.
type entry struct {
	name   string
	secret *secret       // nil for an NKey user
	pub    nkeys.KeyPair // nil for a password user
	perms  *permissions  // nil when everything is allowed
}

// New validates cfg, reads its secret files and returns an Authenticator.
// The error joins every problem, as Config.Validate does.
func New(cfg Config) (*Authenticator, error) {
	var errs config.List
	s := cfg.resolve(&errs)
	if err := errs.Err(); err != nil {
		return nil, err
	}
	// key makes the bcrypt cache's digests useless outside this process.
	key := make([]byte, 32)
	rand.Read(key)

	a := &Authenticator{now: time.Now}
	if s.token != "" {
		a.token = newSecret(s.token, key)
	}
	for i, u := range cfg.Users {
		e := &entry{perms: compilePermissions(u.Permissions)}
		if u.NKey != "" {
			pub, err := nkeys.FromPublicKey(u.NKey)
			if err != nil { // resolve checked the key; keep the error anyway
				return nil, config.Errorf(fmt.Sprintf("%s[%d].nkey", path("users"), i), "%v", err)
			}
			e.name, e.pub = u.NKey, pub
			if a.nkeys == nil {
				a.nkeys = map[string]*entry{}
			}
			a.nkeys[u.NKey] = e
			continue
		}
		e.name, e.secret = u.User, newSecret(s.passwords[i], key)
		if a.users == nil {
			a.users = map[string]*entry{}
		}
		a.users[u.User] = e
	}
	return a, nil
}

// AuthRequired reports whether clients must authenticate; the server says
// so in INFO's auth_required.
func (a *Authenticator) AuthRequired() bool {
	return a.token != nil || len(a.users) > 0 || len(a.nkeys) > 0
}

// NonceRequired reports whether NKey users exist, so the server must put a
// nonce from NewNonce in each connection's INFO (nats.go refuses to sign
// without one). nats-server sends a nonce only in that case too.
func (a *Authenticator) NonceRequired() bool { return len(a.nkeys) > 0 }

// NewNonce returns a fresh nonce for one connection's INFO: 11 random bytes
// in base64 RawURL, 15 characters, as nats-server's generateNonce.
func (a *Authenticator) NewNonce() string {
	var raw [nonceRawLen]byte
	rand.Read(raw[:]) // never fails (crypto/rand, Go 1.24+)
	return base64.RawURLEncoding.EncodeToString(raw[:])
}

// Authenticate checks the credentials of a CONNECT against the
// configuration. nonce is the one this connection's INFO carried ("" when
// none was sent). It returns a new User for this connection, or an error
// matching ErrAuthorization whose text the server sends as
// `-ERR 'Authorization Violation'` before closing the connection.
//
// When no authentication is configured every client is accepted and its
// credentials are ignored, as nats-server does. Otherwise the rules are
// nats-server's: an NKey is checked when NKey users exist and the client
// sent one; else a user name is looked up; else the token is compared. A
// client that sends a token to a server with users is refused: this is what
// a nats.go URL with a user but no password (nats://name@host) amounts to,
// since nats.go sends such a user as auth_token.
//
// Checking a bcrypt password can take 100 ms; call Authenticate from the
// connection's own goroutine.
func (a *Authenticator) Authenticate(c Credentials, nonce string) (*User, error) {
	if !a.AuthRequired() {
		return a.newUser(nil), nil
	}
	if c.empty() {
		return nil, fail("no credentials")
	}
	if a.token != nil {
		if c.AuthToken == "" {
			return nil, fail("no token")
		}
		if !a.token.check(c.AuthToken) {
			return nil, fail("wrong token")
		}
		return a.newUser(nil), nil
	}
	if len(a.nkeys) > 0 && c.NKey != "" {
		e, ok := a.nkeys[c.NKey]
		if !ok {
			return nil, fail("unknown nkey")
		}
		if err := verifyNonce(e.pub, c.Sig, nonce); err != nil {
			return nil, err
		}
		return a.newUser(e), nil
	}
	if c.User == "" {
		if c.AuthToken != "" {
			return nil, fail("token sent, but users are configured (a URL user without password is sent as a token)")
		}
		return nil, fail("no user or nkey")
	}
	e, ok := a.users[c.User]
	if !ok {
		return nil, fail("unknown user")
	}
	if !e.secret.check(c.Pass) {
		return nil, fail("wrong password")
	}
	return a.newUser(e), nil
}

// verifyNonce checks sig, the client's signature of the nonce bytes as sent
// in INFO (not base64-decoded), as nats-server's auth.go does: base64
// RawURL first, standard base64 as a fallback.
func verifyNonce(pub nkeys.KeyPair, sig, nonce string) error {
	if nonce == "" {
		// Without a nonce a signature could be replayed from any capture.
		return fail("no nonce was sent to the client")
	}
	if sig == "" {
		return fail("missing signature")
	}
	raw, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil {
		if raw, err = base64.StdEncoding.DecodeString(sig); err != nil {
			return fail("signature is not base64")
		}
	}
	if err := pub.Verify([]byte(nonce), raw); err != nil {
		return fail("signature does not verify")
	}
	return nil
}

func (a *Authenticator) newUser(e *entry) *User {
	u := &User{now: a.now}
	if e != nil {
		u.name, u.perms = e.name, e.perms
	}
	return u
}
