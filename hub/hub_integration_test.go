package hub_test

import (
	"context"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/canopy-iot/canopy/hub"
)

func TestIntegrationZeroConfig(t *testing.T) {
	n := startHub(t, testConfig(t))

	nc, err := nats.Connect(n.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "EVENTS", Subjects: []string{"events.>"}}); err != nil {
		t.Fatalf("create stream: %v", err)
	}
	ack, err := js.Publish(ctx, "events.boot", []byte("hello"))
	if err != nil {
		t.Fatalf("publish: %v", err)
	}
	if ack.Stream != "EVENTS" || ack.Sequence != 1 {
		t.Fatalf("ack = %+v, want stream EVENTS seq 1", ack)
	}

	var health struct{ Status string }
	if err := getJSON(n.MonitorURL()+"/healthz", &health); err != nil {
		t.Fatal(err)
	}
	if health.Status != "ok" {
		t.Fatalf("/healthz status = %q, want ok", health.Status)
	}
	if !strings.HasPrefix(n.LeafNodeURL(), "nats://127.0.0.1:") {
		t.Fatalf("LeafNodeURL = %q, want a loopback listener", n.LeafNodeURL())
	}
}

// A listener that cannot bind is reported by Run as an error; nats-server
// would otherwise exit the whole process.
func TestIntegrationFatalBecomesError(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	cfg := testConfig(t)
	cfg.LeafNodes.Listen = busy.Addr().String()
	h, err := hub.New(cfg, discardLogger())
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- h.Run(context.Background()) }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "leafnode") {
			t.Fatalf("Run = %v, want an error about the leafnode listener", err)
		}
	case <-time.After(40 * time.Second):
		t.Fatal("Run did not return")
	}
}

func TestIntegrationReloadAddsUser(t *testing.T) {
	cfg := testConfig(t)
	cfg.Accounts = map[string]hub.Account{"acme": {Users: []hub.User{{User: "alice", Password: "a-secret"}}}}
	n := startHub(t, cfg)

	url := n.ClientURL()
	if _, err := nats.Connect(url, nats.UserInfo("bob", "b-secret")); err == nil {
		t.Fatal("bob connected before being configured")
	}
	cfg.Accounts["acme"] = hub.Account{Users: append(cfg.Accounts["acme"].Users, hub.User{User: "bob", Password: "b-secret"})}
	if err := n.Reload(cfg); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	nc, err := nats.Connect(url, nats.UserInfo("bob", "b-secret"))
	if err != nil {
		t.Fatalf("bob after reload: %v", err)
	}
	nc.Close()

	// A change nats-server cannot apply live is refused and leaves the hub running.
	bad := cfg
	bad.Listen = "127.0.0.1:1"
	if err := n.Reload(bad); err == nil {
		t.Fatal("Reload accepted a new client port")
	}
	nc, err = nats.Connect(url, nats.UserInfo("alice", "a-secret"))
	if err != nil {
		t.Fatalf("alice after refused reload: %v", err)
	}
	nc.Close()
}

func TestIntegrationLameDuck(t *testing.T) {
	cfg := testConfig(t)
	cfg.LameDuck = 2_000_000_000 // 2s
	n := startHub(t, cfg)
	closed := make(chan struct{})
	nc, err := nats.Connect(n.ClientURL(), nats.NoReconnect(), nats.ClosedHandler(func(*nats.Conn) { close(closed) }),
		nats.LameDuckModeHandler(func(*nats.Conn) {}))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	start := time.Now()
	n.stop(t)
	<-closed
	if d := time.Since(start); d < time.Second {
		t.Fatalf("clients were closed %v after shutdown began; lame duck mode should spread that over 2s", d)
	}
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }
