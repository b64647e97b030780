package hub_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"

	"github.com/canopy-iot/canopy/hub"
	"github.com/canopy-iot/canopy/hub/fleet"
	"github.com/canopy-iot/canopy/internal/wait"
)

// fleetKeys makes a key directory as `canopy-hub init` does.
func fleetKeys(t testing.TB) *fleet.Keys {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "keys")
	keys, err := fleet.Init(dir, nil)
	if err != nil {
		t.Fatalf("fleet.Init: %v", err)
	}
	return keys
}

// operatorConfig is testConfig in operator mode on keys.
func operatorConfig(t testing.TB, keys *fleet.Keys) hub.Config {
	cfg := testConfig(t)
	cfg.Operator = hub.Operator{KeyDir: keys.Dir(), EnrollListen: "127.0.0.1:0"}
	return cfg
}

// addTenant adds a tenant, pushes it to the hub and creates its assets,
// as `canopy-hub tenant add` does.
func addTenant(t testing.TB, admin *hub.Admin, keys *fleet.Keys, name string, lim fleet.Limits, replicas int) {
	t.Helper()
	_, accountJWT, err := keys.AddTenant(name, lim)
	if err != nil {
		t.Fatalf("AddTenant %s: %v", name, err)
	}
	if _, err := admin.PushAccount(accountJWT); err != nil {
		t.Fatalf("push %s: %v", name, err)
	}
	if err := admin.EnsureTenantAssets(context.Background(), name, replicas); err != nil {
		t.Fatalf("assets of %s: %v", name, err)
	}
}

// errCollector gathers a connection's asynchronous errors (permission
// violations arrive that way).
type errCollector struct {
	mu   sync.Mutex
	errs []error
	ch   chan error
}

func newErrCollector() *errCollector { return &errCollector{ch: make(chan error, 100)} }

func (e *errCollector) handler(_ *nats.Conn, _ *nats.Subscription, err error) {
	e.mu.Lock()
	e.errs = append(e.errs, err)
	e.mu.Unlock()
	select {
	case e.ch <- err:
	default:
	}
}

// next waits for the next asynchronous error.
func (e *errCollector) next(t *testing.T) error {
	t.Helper()
	select {
	case err := <-e.ch:
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("no asynchronous error within 10s")
		return nil
	}
}

// connectCreds connects a nats.go client with a .creds file's content.
func connectCreds(t *testing.T, url string, creds []byte, opts ...nats.Option) *nats.Conn {
	t.Helper()
	path := filepath.Join(t.TempDir(), "user.creds")
	if err := os.WriteFile(path, creds, 0o600); err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(url, append([]nats.Option{nats.UserCredentials(path), nats.MaxReconnects(0)}, opts...)...)
	if err != nil {
		t.Fatalf("connect with creds: %v", err)
	}
	t.Cleanup(nc.Close)
	return nc
}

func adminConn(t *testing.T, url string, keys *fleet.Keys, tenant string) *nats.Conn {
	t.Helper()
	creds, err := keys.AdminCreds(tenant, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return connectCreds(t, url, creds)
}

func TestFleetDeviceIsolationOnTheHub(t *testing.T) {
	keys := fleetKeys(t)
	h := startHub(t, operatorConfig(t, keys))
	admin := hub.NewAdmin(h.ClientURL(), nil, keys)
	addTenant(t, admin, keys, "t1", fleet.DefaultLimits(), 1)
	addTenant(t, admin, keys, "t2", fleet.DefaultLimits(), 1)
	credsA, err := keys.AddDevice("t1", "dev-a")
	if err != nil {
		t.Fatal(err)
	}

	// Auditors see everything of their tenant.
	audit1, audit2 := adminConn(t, h.ClientURL(), keys, "t1"), adminConn(t, h.ClientURL(), keys, "t2")
	seen1, _ := audit1.SubscribeSync(">")
	seen2, _ := audit2.SubscribeSync(">")
	audit1.Flush()
	audit2.Flush()

	errs := newErrCollector()
	a := connectCreds(t, h.ClientURL(), credsA, nats.ErrorHandler(errs.handler))

	// Subscriptions outside the device's own subjects are refused.
	for _, subj := range []string{"cmd.dev-b.>", "telemetry.dev-b.>", "telemetry.>", ">", "_INBOX.dev-b.>"} {
		if _, err := a.SubscribeSync(subj); err != nil {
			t.Fatal(err)
		}
		if err := errs.next(t); !errors.Is(err, nats.ErrPermissionViolation) || !strings.Contains(err.Error(), subj) {
			t.Fatalf("subscribe %s: want a permission violation naming it, got %v", subj, err)
		}
	}
	// Publishes into another device's or anything outside its subjects
	// are refused and never delivered.
	for _, subj := range []string{"telemetry.dev-b.temp", "cmd.dev-b.reboot", "cmd.dev-a.reboot", "fw.events.dev-b", "$KV.devices.dev-b"} {
		if err := a.Publish(subj, []byte("x")); err != nil {
			t.Fatal(err)
		}
		if err := errs.next(t); !errors.Is(err, nats.ErrPermissionViolation) {
			t.Fatalf("publish %s: want a permission violation, got %v", subj, err)
		}
	}
	// The device's own telemetry goes through, after everything refused
	// above: the auditor's first message is it.
	if err := a.Publish("telemetry.dev-a.temp", []byte("21.5")); err != nil {
		t.Fatal(err)
	}
	m, err := seen1.NextMsg(10 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if m.Subject != "telemetry.dev-a.temp" {
		t.Fatalf("tenant t1 saw %s first, want telemetry.dev-a.temp", m.Subject)
	}
	// Tenant t2 sees nothing of t1: a marker of its own arrives first.
	audit2.Publish("marker", nil)
	if m, err := seen2.NextMsg(10 * time.Second); err != nil || m.Subject != "marker" {
		t.Fatalf("tenant t2 saw %v (err %v), want only its own marker", m, err)
	}
	// The device's command subjects deliver to it; other devices' do not.
	cmds, _ := a.SubscribeSync("cmd.dev-a.>")
	a.Flush()
	audit1.Publish("cmd.dev-b.reboot", nil)
	audit1.Publish("cmd.dev-a.reboot", nil)
	if m, err := cmds.NextMsg(10 * time.Second); err != nil || m.Subject != "cmd.dev-a.reboot" {
		t.Fatalf("device got %v (err %v), want cmd.dev-a.reboot", m, err)
	}
}

func TestFleetRevokeDisconnectsWithinSeconds(t *testing.T) {
	keys := fleetKeys(t)
	h := startHub(t, operatorConfig(t, keys))
	admin := hub.NewAdmin(h.ClientURL(), nil, keys)
	addTenant(t, admin, keys, "acme", fleet.DefaultLimits(), 1)
	creds, err := keys.AddDevice("acme", "pi-001")
	if err != nil {
		t.Fatal(err)
	}
	closed := make(chan struct{})
	errs := newErrCollector()
	connectCreds(t, h.ClientURL(), creds, nats.ClosedHandler(func(*nats.Conn) { close(closed) }), nats.ErrorHandler(errs.handler))

	accountJWT, err := keys.RevokeDevice("acme", "pi-001")
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, err := admin.PushAccount(accountJWT); err != nil {
		t.Fatal(err)
	}
	select {
	case <-closed:
		t.Logf("revoked device disconnected %v after the push", time.Since(start).Round(time.Millisecond))
	case <-time.After(5 * time.Second):
		t.Fatal("revoked device still connected after 5s")
	}
	if err := errs.next(t); !errors.Is(err, nats.ErrAuthRevoked) {
		t.Errorf("error %v, want the hub's revocation", err)
	}
	// It cannot come back.
	path := filepath.Join(t.TempDir(), "again.creds")
	os.WriteFile(path, creds, 0o600)
	if _, err := nats.Connect(h.ClientURL(), nats.UserCredentials(path), nats.MaxReconnects(0)); err == nil {
		t.Fatal("revoked device connected again")
	} else if !strings.Contains(strings.ToLower(err.Error()), "authorization") {
		t.Fatalf("reconnect error %v, want an authorization violation", err)
	}
	devices, err := keys.Devices("acme")
	if err != nil || len(devices) != 1 || !devices[0].Revoked {
		t.Fatalf("device list %+v (err %v), want pi-001 revoked", devices, err)
	}
}

func TestFleetTenantJetStreamLimits(t *testing.T) {
	keys := fleetKeys(t)
	h := startHub(t, operatorConfig(t, keys))
	admin := hub.NewAdmin(h.ClientURL(), nil, keys)
	lim := fleet.DefaultLimits()
	lim.Streams = 8 // the seven assets and one more
	addTenant(t, admin, keys, "small", lim, 1)
	js, err := jetstream.New(adminConn(t, h.ClientURL(), keys, "small"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "EXTRA1", Subjects: []string{"extra1"}}); err != nil {
		t.Fatalf("8th stream refused: %v", err)
	}
	_, err = js.CreateStream(ctx, jetstream.StreamConfig{Name: "EXTRA2", Subjects: []string{"extra2"}})
	if err == nil || !strings.Contains(err.Error(), "maximum number of streams") {
		t.Fatalf("9th stream: %v, want the account's stream limit", err)
	}
	// Storage beyond the account's limit is refused too.
	_, err = js.CreateStream(ctx, jetstream.StreamConfig{Name: "EXTRA1", Subjects: []string{"extra1"}, MaxBytes: 2 * lim.JetStreamStorage})
	if err == nil {
		t.Fatal("a stream larger than the tenant's storage was accepted")
	}
}

func TestFleetRefusesReadableKeyDirectory(t *testing.T) {
	keys := fleetKeys(t)
	seed := filepath.Join(keys.Dir(), "operator-signing.nk")
	if err := os.Chmod(seed, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := hub.New(operatorConfig(t, keys), nil)
	if err == nil {
		t.Fatal("hub started with a world-readable key")
	}
	for _, want := range []string{seed, "chmod 600"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
}

func TestFleetEnrollmentService(t *testing.T) {
	keys := fleetKeys(t)
	h := startHub(t, operatorConfig(t, keys))
	admin := hub.NewAdmin(h.ClientURL(), nil, keys)
	addTenant(t, admin, keys, "acme", fleet.DefaultLimits(), 1)

	enroll := func(token, pub string) (int, map[string]any) {
		body, _ := json.Marshal(hub.EnrollRequest{Token: token, PublicKey: pub})
		resp, err := http.Post(h.EnrollURL()+hub.EnrollPath, "application/json", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		raw, _ := io.ReadAll(resp.Body)
		if err := json.Unmarshal(raw, &out); err != nil {
			t.Fatalf("answer %q is not JSON: %v", raw, err)
		}
		return resp.StatusCode, out
	}
	user, _ := nkeys.CreateUser()
	pub, _ := user.PublicKey()

	token, err := keys.IssueToken("acme", "pi-042", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	// A bad public key does not spend the token.
	if code, out := enroll(token, "not-a-key"); code != http.StatusBadRequest {
		t.Fatalf("bad key: %d %v", code, out)
	}
	code, out := enroll(token, pub)
	if code != http.StatusOK || out["device"] != "pi-042" || out["tenant"] != "acme" || out["jwt"] == "" {
		t.Fatalf("enroll: %d %v", code, out)
	}
	if tenant, _ := keys.Tenant("acme"); fmt.Sprint(out["firmware_keys"]) != "["+tenant.FirmwareKey+"]" {
		t.Errorf("firmware_keys %v, want the tenant's firmware key %s", out["firmware_keys"], tenant.FirmwareKey)
	}
	if urls, _ := out["leafnode_urls"].([]any); len(urls) != 1 || urls[0] != h.LeafNodeURL() {
		t.Errorf("leafnode_urls %v, want [%s]", out["leafnode_urls"], h.LeafNodeURL())
	}
	// The device connects with its own seed and the issued JWT.
	seed, _ := user.Seed()
	creds := []byte(fmt.Sprintf("-----BEGIN NATS USER JWT-----\n%s\n------END NATS USER JWT------\n\n-----BEGIN USER NKEY SEED-----\n%s\n------END USER NKEY SEED------\n", out["jwt"], seed))
	nc := connectCreds(t, h.ClientURL(), creds, nats.CustomInboxPrefix("_INBOX.pi-042"))
	js, _ := jetstream.New(nc)
	if _, err := js.Publish(context.Background(), "telemetry.pi-042.temp", []byte("20")); err != nil {
		t.Fatalf("enrolled device's telemetry not stored: %v", err)
	}

	cases := []struct {
		name  string
		token func() string
		code  int
		want  string
	}{
		{"reused", func() string { return token }, http.StatusConflict, "already used"},
		{"tampered", func() string {
			tok, _ := keys.IssueToken("acme", "pi-043", time.Hour)
			// Claim another device without re-signing.
			return strings.Replace(tok, tok[10:12], flip(tok[10:12]), 1)
		}, http.StatusUnauthorized, "not valid"},
		{"expired", func() string {
			tok, _ := keys.IssueToken("acme", "pi-044", time.Second)
			// The token's expiry has one-second resolution.
			time.Sleep(2100 * time.Millisecond)
			return tok
		}, http.StatusGone, "expired"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, out := enroll(c.token(), pub)
			msg, _ := out["error"].(string)
			if code != c.code || !strings.Contains(msg, c.want) {
				t.Fatalf("got %d %q, want %d with %q", code, msg, c.code, c.want)
			}
		})
	}
}

// flip changes base64url characters so that the text stays well formed.
func flip(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c == 'A' {
			b[i] = 'B'
		} else {
			b[i] = 'A'
		}
	}
	return string(b)
}

func TestFleetTenantOnRunningClusterReachesEveryNode(t *testing.T) {
	keys := fleetKeys(t)
	nodes := startCluster(t, "fleet", 3, func(c *hub.Config) {
		c.Operator = hub.Operator{KeyDir: keys.Dir(), EnrollListen: hub.Off}
	})
	admin := hub.NewAdmin(nodes[0].ClientURL(), nil, keys)
	// Routes form after the nodes start: wait until all three answer.
	wait.For(t, 30*time.Second, func() error {
		if n, err := admin.ClusterSize(); err != nil || n != 3 {
			return fmt.Errorf("cluster size %d (err %v), want 3", n, err)
		}
		return nil
	})
	_, accountJWT, err := keys.AddTenant("acme", fleet.DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	stored, err := admin.PushAccount(accountJWT)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("account stored by %d nodes", stored)
	wait.For(t, 60*time.Second, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return admin.EnsureTenantAssets(ctx, "acme", 3)
	})
	// A device added after the push works on every node without a
	// restart, and telemetry published anywhere lands in the R3 stream.
	creds, err := keys.AddDevice("acme", "pi-001")
	if err != nil {
		t.Fatal(err)
	}
	for i, n := range nodes {
		nc := connectCreds(t, n.ClientURL(), creds, nats.CustomInboxPrefix("_INBOX.pi-001"))
		js, _ := jetstream.New(nc)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		ack, err := js.Publish(ctx, "telemetry.pi-001.n", []byte(fmt.Sprint(i)))
		cancel()
		if err != nil {
			t.Fatalf("node %s: %v", n.cfg.ServerName, err)
		}
		if ack.Sequence != uint64(i+1) {
			t.Fatalf("node %s: stored at %d, want %d", n.cfg.ServerName, ack.Sequence, i+1)
		}
	}
	js, _ := jetstream.New(adminConn(t, nodes[2].ClientURL(), keys, "acme"))
	info, err := js.Stream(context.Background(), hub.TelemetryStream)
	if err != nil {
		t.Fatal(err)
	}
	if r := info.CachedInfo().Config.Replicas; r != 3 {
		t.Errorf("telemetry stream has %d replicas, want 3", r)
	}
}
