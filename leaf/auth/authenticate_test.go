package auth

import (
	"encoding/base64"
	"errors"
	"fmt"
	"regexp"
	"testing"
)

func TestAuthenticate(t *testing.T) {
	nk := newNKeyUser(t)
	other := newNKeyUser(t) // not configured
	users := Config{Users: []UserConfig{
		{User: "alice", Password: "alice-pw"},
		{User: "bob", Password: hash(t, "bob-pw")},
		{User: "carol", PasswordFile: secretFile(t, "  "+hash(t, "carol-pw")+"\n")},
		{User: "erin", PasswordFile: secretFile(t, "erin-pw\n")},
		{NKey: nk.pub},
	}}
	nonce := "abcdefghijklmno"

	tests := []struct {
		name     string
		cfg      Config
		creds    Credentials
		nonce    string
		wantName string
		reason   string // "" for success
	}{
		{name: "no auth, no credentials", cfg: Config{}},
		{name: "no auth ignores credentials", cfg: Config{}, creds: Credentials{User: "x", Pass: "y", AuthToken: "z"}},

		{name: "token", cfg: Config{Token: "s3cret"}, creds: Credentials{AuthToken: "s3cret"}},
		{name: "token wrong", cfg: Config{Token: "s3cret"}, creds: Credentials{AuthToken: "s3cret!"}, reason: "wrong token"},
		{name: "token prefix", cfg: Config{Token: "s3cret"}, creds: Credentials{AuthToken: "s3"}, reason: "wrong token"},
		{name: "token missing", cfg: Config{Token: "s3cret"}, reason: "no credentials"},
		{name: "token as user/pass", cfg: Config{Token: "s3cret"}, creds: Credentials{User: "s3cret"}, reason: "no token"},
		{name: "token bcrypt", cfg: Config{Token: hash(t, "s3cret")}, creds: Credentials{AuthToken: "s3cret"}},
		{name: "token bcrypt wrong", cfg: Config{Token: hash(t, "s3cret")}, creds: Credentials{AuthToken: "nope"}, reason: "wrong token"},
		{name: "token file trimmed", cfg: Config{TokenFile: secretFile(t, "\ts3cret \n")}, creds: Credentials{AuthToken: "s3cret"}},

		{name: "plain password", cfg: users, creds: Credentials{User: "alice", Pass: "alice-pw"}, wantName: "alice"},
		{name: "plain password wrong", cfg: users, creds: Credentials{User: "alice", Pass: "alice-p"}, reason: "wrong password"},
		{name: "plain password empty", cfg: users, creds: Credentials{User: "alice"}, reason: "wrong password"},
		{name: "bcrypt password", cfg: users, creds: Credentials{User: "bob", Pass: "bob-pw"}, wantName: "bob"},
		{name: "bcrypt password wrong", cfg: users, creds: Credentials{User: "bob", Pass: "alice-pw"}, reason: "wrong password"},
		{name: "bcrypt hash sent as password", cfg: users, creds: Credentials{User: "bob", Pass: users.Users[1].Password}, reason: "wrong password"},
		{name: "password file bcrypt", cfg: users, creds: Credentials{User: "carol", Pass: "carol-pw"}, wantName: "carol"},
		{name: "password file plain", cfg: users, creds: Credentials{User: "erin", Pass: "erin-pw"}, wantName: "erin"},
		{name: "unknown user", cfg: users, creds: Credentials{User: "mallory", Pass: "alice-pw"}, reason: "unknown user"},
		{name: "user names are case-sensitive", cfg: users, creds: Credentials{User: "Alice", Pass: "alice-pw"}, reason: "unknown user"},
		{name: "missing credentials", cfg: users, reason: "no credentials"},
		{name: "password only", cfg: users, creds: Credentials{Pass: "alice-pw"}, reason: "no user or nkey"},
		// nats://alice@host: nats.go sends a user without password as a
		// token, which nats-server refuses when users are configured.
		{name: "URL user without password", cfg: users, creds: Credentials{AuthToken: "alice"}, reason: "token sent, but users are configured (a URL user without password is sent as a token)"},
		{name: "token ignored with user", cfg: users, creds: Credentials{User: "alice", Pass: "alice-pw", AuthToken: "junk"}, wantName: "alice"},
		{name: "jwt ignored", cfg: users, creds: Credentials{JWT: "eyJ0eXAiOiJKV1QifQ.e30.sig", Sig: "x"}, reason: "no user or nkey"},

		{name: "nkey rawurl sig", cfg: users, nonce: nonce, creds: Credentials{NKey: nk.pub, Sig: nk.sign(t, nonce, base64.RawURLEncoding)}, wantName: nk.pub},
		{name: "nkey std sig", cfg: users, nonce: nonce, creds: Credentials{NKey: nk.pub, Sig: nk.sign(t, nonce, base64.StdEncoding)}, wantName: nk.pub},
		{name: "nkey wins over user", cfg: users, nonce: nonce, creds: Credentials{NKey: nk.pub, Sig: nk.sign(t, nonce, base64.RawURLEncoding), User: "alice", Pass: "wrong"}, wantName: nk.pub},
		{name: "nkey wrong nonce", cfg: users, nonce: nonce, creds: Credentials{NKey: nk.pub, Sig: nk.sign(t, "abcdefghijklmnp", base64.RawURLEncoding)}, reason: "signature does not verify"},
		{name: "nkey signed by other key", cfg: users, nonce: nonce, creds: Credentials{NKey: nk.pub, Sig: other.sign(t, nonce, base64.RawURLEncoding)}, reason: "signature does not verify"},
		{name: "nkey signature of decoded nonce", cfg: users, nonce: nonce, creds: Credentials{NKey: nk.pub, Sig: nk.sign(t, string(mustDecode(t, nonce)), base64.RawURLEncoding)}, reason: "signature does not verify"},
		{name: "nkey truncated sig", cfg: users, nonce: nonce, creds: Credentials{NKey: nk.pub, Sig: nk.sign(t, nonce, base64.RawURLEncoding)[:40]}, reason: "signature does not verify"},
		{name: "nkey sig not base64", cfg: users, nonce: nonce, creds: Credentials{NKey: nk.pub, Sig: "not base64!"}, reason: "signature is not base64"},
		{name: "nkey missing sig", cfg: users, nonce: nonce, creds: Credentials{NKey: nk.pub}, reason: "missing signature"},
		{name: "nkey without nonce", cfg: users, nonce: "", creds: Credentials{NKey: nk.pub, Sig: nk.sign(t, "", base64.RawURLEncoding)}, reason: "no nonce was sent to the client"},
		{name: "unknown nkey", cfg: users, nonce: nonce, creds: Credentials{NKey: other.pub, Sig: other.sign(t, nonce, base64.RawURLEncoding)}, reason: "unknown nkey"},
		{name: "nkey ignored without nkey users", cfg: Config{Users: []UserConfig{{User: "alice", Password: "alice-pw"}}}, nonce: nonce,
			creds: Credentials{NKey: nk.pub, Sig: nk.sign(t, nonce, base64.RawURLEncoding), User: "alice", Pass: "alice-pw"}, wantName: "alice"},
	}
	auths := map[string]*Authenticator{} // New per distinct config is slow with bcrypt files
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key := fmt.Sprintf("%#v", tt.cfg)
			a, ok := auths[key]
			if !ok {
				a = mustNew(t, tt.cfg)
				auths[key] = a
			}
			u, err := a.Authenticate(tt.creds, tt.nonce)
			if tt.reason != "" {
				if u != nil || !errors.Is(err, ErrAuthorization) {
					t.Fatalf("Authenticate = %v, %v; want ErrAuthorization", u, err)
				}
				if err.Error() != "Authorization Violation" {
					t.Errorf("wire text %q", err.Error())
				}
				if got := Reason(err); got != tt.reason {
					t.Errorf("reason %q, want %q", got, tt.reason)
				}
				return
			}
			if err != nil {
				t.Fatalf("Authenticate: %v (%s)", err, Reason(err))
			}
			if u.Name() != tt.wantName {
				t.Errorf("Name() = %q, want %q", u.Name(), tt.wantName)
			}
		})
	}
}

func mustDecode(t *testing.T, s string) []byte {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestAuthenticateNewUserPerConnection(t *testing.T) {
	a := mustNew(t, Config{Users: []UserConfig{{User: "u", Password: "p"}}})
	u1, err1 := a.Authenticate(Credentials{User: "u", Pass: "p"}, "")
	u2, err2 := a.Authenticate(Credentials{User: "u", Pass: "p"}, "")
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	if u1 == u2 {
		t.Fatal("two connections share one User; their caches must be separate")
	}
}

func TestRequired(t *testing.T) {
	nk := newNKeyUser(t)
	tests := []struct {
		name        string
		cfg         Config
		auth, nonce bool
	}{
		{"zero", Config{}, false, false},
		{"empty users", Config{Users: []UserConfig{}}, false, false},
		{"token", Config{Token: "t"}, true, false},
		{"password users", Config{Users: []UserConfig{{User: "u", Password: "p"}}}, true, false},
		{"nkey user", Config{Users: []UserConfig{{NKey: nk.pub}}}, true, true},
		{"mixed", Config{Users: []UserConfig{{User: "u", Password: "p"}, {NKey: nk.pub}}}, true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := mustNew(t, tt.cfg)
			if got := a.AuthRequired(); got != tt.auth {
				t.Errorf("AuthRequired = %v, want %v", got, tt.auth)
			}
			if got := a.NonceRequired(); got != tt.nonce {
				t.Errorf("NonceRequired = %v, want %v", got, tt.nonce)
			}
		})
	}
}

func TestNewNonce(t *testing.T) {
	a := mustNew(t, Config{})
	form := regexp.MustCompile(`^[A-Za-z0-9_-]{15}$`)
	seen := map[string]bool{}
	for range 1000 {
		n := a.NewNonce()
		if !form.MatchString(n) {
			t.Fatalf("nonce %q is not 15 RawURL base64 characters", n)
		}
		if b, err := base64.RawURLEncoding.DecodeString(n); err != nil || len(b) != 11 {
			t.Fatalf("nonce %q decodes to %d bytes, %v", n, len(b), err)
		}
		if seen[n] {
			t.Fatalf("nonce %q repeated", n)
		}
		seen[n] = true
	}
}

func TestNewRefusesInvalidConfig(t *testing.T) {
	a, err := New(Config{Token: "t", Users: []UserConfig{{User: "u", Password: "p"}}})
	if a != nil || err == nil {
		t.Fatalf("New = %v, %v; want an error", a, err)
	}
	if err.Error() != "authorization.token: set either a token or users, not both" {
		t.Errorf("error %q", err)
	}
}
