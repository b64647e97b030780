package natsd_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
	"golang.org/x/crypto/bcrypt"

	"github.com/canopy-iot/canopy/internal/wait"
	"github.com/canopy-iot/canopy/leaf/auth"
	"github.com/canopy-iot/canopy/leaf/natsd"
)

func TestAuthModes(t *testing.T) {
	kp, _ := nkeys.CreateUser()
	pub, _ := kp.PublicKey()
	seed, _ := kp.Seed()
	other, _ := nkeys.CreateUser()
	otherPub, _ := other.PublicKey()
	hash, _ := bcrypt.GenerateFromPassword([]byte("hashed-secret"), bcrypt.MinCost)

	signWith := func(seed []byte) nats.Option {
		kp, err := nkeys.FromSeed(seed)
		if err != nil {
			t.Fatal(err)
		}
		pk, _ := kp.PublicKey()
		return nats.Nkey(pk, kp.Sign)
	}

	cases := []struct {
		name string
		auth auth.Config
		good []nats.Option
		bad  [][]nats.Option
	}{
		{
			name: "token",
			auth: auth.Config{Token: "s3cret"},
			good: []nats.Option{nats.Token("s3cret")},
			bad:  [][]nats.Option{{nats.Token("wrong")}, {}},
		},
		{
			name: "user and password",
			auth: auth.Config{Users: []auth.UserConfig{{User: "app", Password: "pw"}}},
			good: []nats.Option{nats.UserInfo("app", "pw")},
			bad:  [][]nats.Option{{nats.UserInfo("app", "nope")}, {nats.UserInfo("eve", "pw")}, {}},
		},
		{
			name: "bcrypt password",
			auth: auth.Config{Users: []auth.UserConfig{{User: "app", Password: string(hash)}}},
			good: []nats.Option{nats.UserInfo("app", "hashed-secret")},
			bad:  [][]nats.Option{{nats.UserInfo("app", string(hash))}},
		},
		{
			name: "nkey",
			auth: auth.Config{Users: []auth.UserConfig{{NKey: pub}}},
			good: []nats.Option{signWith(seed)},
			bad:  [][]nats.Option{{nats.Nkey(pub, other.Sign)}, {nats.Nkey(otherPub, other.Sign)}, {nats.UserInfo("x", "y")}},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := startServer(t, natsd.Config{Authorization: c.auth})
			nc := connect(t, s.ClientURL(), c.good...)
			sub, _ := nc.SubscribeSync("ok")
			nc.Publish("ok", nil)
			if _, err := sub.NextMsg(5 * time.Second); err != nil {
				t.Fatalf("authenticated client cannot pub/sub: %v", err)
			}
			for i, opts := range c.bad {
				nc, err := nats.Connect(s.ClientURL(), append(opts, nats.NoReconnect())...)
				if err == nil {
					nc.Close()
					t.Fatalf("bad credentials %d accepted", i)
				}
				if !errors.Is(err, nats.ErrAuthorization) && !strings.Contains(strings.ToLower(err.Error()), "authorization violation") {
					t.Fatalf("bad credentials %d: %v, want an Authorization Violation", i, err)
				}
			}
			wait.For(t, 5*time.Second, func() error { return s.logs.Contains("client authentication failed") })
		})
	}
}

func TestAuthRequiredBeforeAnyOperation(t *testing.T) {
	s := startServer(t, natsd.Config{Authorization: auth.Config{Token: "t"}})
	r := dialRaw(t, s.Addr().String())
	info := r.handshake()
	if !strings.Contains(info, `"auth_required":true`) {
		t.Fatalf("INFO does not say auth is required: %s", info)
	}
	r.send("PING\r\n")
	r.expect("-ERR 'Authorization Violation'\r\n")
	r.expectClosed()
}

func TestAuthTimeout(t *testing.T) {
	s := startServer(t, natsd.Config{Authorization: auth.Config{Token: "t"}, AuthTimeout: 200_000_000})
	r := dialRaw(t, s.Addr().String())
	r.handshake()
	r.expect("-ERR 'Authentication Timeout'\r\n")
	r.expectClosed()
}

func TestNKeyNonceInInfo(t *testing.T) {
	kp, _ := nkeys.CreateUser()
	pub, _ := kp.PublicKey()
	s := startServer(t, natsd.Config{Authorization: auth.Config{Users: []auth.UserConfig{{NKey: pub}}}})
	a := dialRaw(t, s.Addr().String()).handshake()
	b := dialRaw(t, s.Addr().String()).handshake()
	na, nb := jsonField(a, "nonce"), jsonField(b, "nonce")
	if na == "" || na == nb {
		t.Fatalf("nonces %q and %q: want a fresh one per connection", na, nb)
	}
	noAuth := startServer(t, natsd.Config{})
	if n := jsonField(dialRaw(t, noAuth.Addr().String()).handshake(), "nonce"); n != "" {
		t.Fatalf("INFO carries a nonce without NKey users: %q", n)
	}
}

func jsonField(js, key string) string {
	i := strings.Index(js, `"`+key+`":"`)
	if i < 0 {
		return ""
	}
	rest := js[i+len(key)+4:]
	return rest[:strings.IndexByte(rest, '"')]
}

func TestPermissions(t *testing.T) {
	s := startServer(t, natsd.Config{Authorization: auth.Config{Users: []auth.UserConfig{
		{User: "sensor", Password: "pw", Permissions: auth.Permissions{
			Publish:   auth.SubjectPermission{Allow: []string{"telemetry.>"}},
			Subscribe: auth.SubjectPermission{Allow: []string{"cmd.>"}, Deny: []string{"cmd.secret"}},
		}},
		{User: "admin", Password: "pw"},
	}}})
	errs := make(chan error, 10)
	sensor := connect(t, s.ClientURL(), nats.UserInfo("sensor", "pw"),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { errs <- err }))
	admin := connect(t, s.ClientURL(), nats.UserInfo("admin", "pw"))
	watch, _ := admin.SubscribeSync(">")
	admin.Flush()

	sensor.Publish("config.set", []byte("denied"))
	if err := <-errs; !errors.Is(err, nats.ErrPermissionViolation) || !strings.Contains(err.Error(), `Permissions Violation for Publish to "config.set"`) {
		t.Fatalf("publish violation: %v", err)
	}
	if _, err := sensor.SubscribeSync("config.>"); err != nil {
		t.Fatal(err)
	}
	if err := <-errs; !strings.Contains(err.Error(), `Permissions Violation for Subscription to "config.>"`) {
		t.Fatalf("subscribe violation: %v", err)
	}
	if !sensor.IsConnected() {
		t.Fatal("a permission violation closed the connection; nats-server keeps it")
	}

	// Allowed traffic flows; the denied subject never reaches the wildcard.
	cmds, _ := sensor.SubscribeSync("cmd.>")
	sensor.Publish("telemetry.temp", []byte("21"))
	sensor.Flush()
	if m, err := watch.NextMsg(5 * time.Second); err != nil || m.Subject != "telemetry.temp" {
		t.Fatalf("allowed publish: %v %v", m, err)
	}
	admin.Publish("cmd.secret", []byte("x"))
	admin.Publish("cmd.reboot", []byte("y"))
	admin.Flush()
	m, err := cmds.NextMsg(5 * time.Second)
	if err != nil || m.Subject != "cmd.reboot" {
		t.Fatalf("first command delivered: %v %v, want cmd.reboot (cmd.secret is denied)", m, err)
	}
	select {
	case err := <-errs:
		t.Fatalf("unexpected async error %v", err)
	default:
	}
}
