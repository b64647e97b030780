package auth

import (
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
)

// connectOpts is how a server might decode CONNECT: its own fields with
// Credentials embedded, so the auth fields land in Credentials directly.
type connectOpts struct {
	Verbose  bool   `json:"verbose"`
	Pedantic bool   `json:"pedantic"`
	Name     string `json:"name"`
	Lang     string `json:"lang"`
	Protocol int    `json:"protocol"`
	Echo     bool   `json:"echo"`
	Headers  bool   `json:"headers"`
	Credentials
}

// connectLine is the CONNECT nats.go v1.55.0 writes (nats.go: connectProto,
// connectInfo: json.Marshal in field order, auth fields omitempty) for the
// given auth fields, e.g. `"user":"alice","pass":"pw",`.
func connectLine(auth string) string {
	return `CONNECT {"verbose":false,"pedantic":false,` + auth +
		`"tls_required":false,"name":"","lang":"go","version":"1.55.0","protocol":1,"echo":true,"headers":true,"no_responders":true}` + "\r\n"
}

func TestCredentialsFromConnect(t *testing.T) {
	nk := newNKeyUser(t)
	const nonce = "XtdG8HGcaA6QdYh"
	sig := nk.sign(t, nonce, base64.RawURLEncoding)
	tokenAuth := mustNew(t, Config{Token: "s3cret"})
	userAuth := mustNew(t, Config{Users: []UserConfig{
		{User: "alice", Password: hash(t, "alice-pw")},
		{NKey: nk.pub},
	}})

	tests := []struct {
		name   string
		a      *Authenticator
		auth   string // auth fields of the CONNECT JSON
		want   Credentials
		user   string
		reason string
	}{
		{
			name: "nats.Token", a: tokenAuth,
			auth: `"auth_token":"s3cret",`,
			want: Credentials{AuthToken: "s3cret"},
		},
		{
			name: "nats.UserInfo", a: userAuth,
			auth: `"user":"alice","pass":"alice-pw",`,
			want: Credentials{User: "alice", Pass: "alice-pw"},
			user: "alice",
		},
		{
			name: "nats.Nkey", a: userAuth,
			auth: `"nkey":"` + nk.pub + `","sig":"` + sig + `",`,
			want: Credentials{NKey: nk.pub, Sig: sig},
			user: nk.pub,
		},
		{
			name: "URL user without password", a: userAuth,
			auth:   `"auth_token":"alice",`,
			want:   Credentials{AuthToken: "alice"},
			reason: "token sent, but users are configured (a URL user without password is sent as a token)",
		},
		{
			name: "nats.UserJWT", a: userAuth,
			auth:   `"jwt":"eyJhbGciOiJlZDI1NTE5In0.e30.x","sig":"` + sig + `",`,
			want:   Credentials{JWT: "eyJhbGciOiJlZDI1NTE5In0.e30.x", Sig: sig},
			reason: "no user or nkey",
		},
		{
			name: "no credentials", a: userAuth,
			reason: "no credentials",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			line := connectLine(tt.auth)
			arg := strings.TrimSuffix(strings.TrimPrefix(line, "CONNECT "), "\r\n")
			var opts connectOpts
			if err := json.Unmarshal([]byte(arg), &opts); err != nil {
				t.Fatal(err)
			}
			if opts.Credentials != tt.want {
				t.Fatalf("decoded %+v, want %+v", opts.Credentials, tt.want)
			}
			if opts.Lang != "go" || !opts.Headers || opts.Protocol != 1 {
				t.Errorf("other fields lost: %+v", opts)
			}
			u, err := tt.a.Authenticate(opts.Credentials, nonce)
			if tt.reason != "" {
				if err == nil || Reason(err) != tt.reason {
					t.Fatalf("Authenticate = %v (%q), want reason %q", err, Reason(err), tt.reason)
				}
				return
			}
			if err != nil {
				t.Fatalf("Authenticate: %v (%s)", err, Reason(err))
			}
			if u.Name() != tt.user {
				t.Errorf("Name() = %q, want %q", u.Name(), tt.user)
			}
		})
	}
}
