package uplink_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/canopy-iot/canopy/internal/config"
	"github.com/canopy-iot/canopy/internal/testlog"
	"github.com/canopy-iot/canopy/internal/wait"
	"github.com/canopy-iot/canopy/leaf/natsd"
	"github.com/canopy-iot/canopy/leaf/uplink"
)

// device is a device's credentials on the test hub.
type device struct {
	public   string
	seedFile string
}

func newDevice(t testing.TB) device {
	t.Helper()
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := kp.PublicKey()
	seed, _ := kp.Seed()
	file := filepath.Join(t.TempDir(), "device.nk")
	if err := os.WriteFile(file, seed, 0o600); err != nil {
		t.Fatal(err)
	}
	return device{public: pub, seedFile: file}
}

// hubOpts is a hub in config mode: account ACME with the device (bound by
// its NKey, with perms when given) and a password user "app" for hub-side
// clients, account OTHER with user "other"; JetStream with domain "hub".
func hubOpts(t testing.TB, dev device, perms *server.Permissions) *server.Options {
	acme := server.NewAccount("ACME")
	other := server.NewAccount("OTHER")
	o := &server.Options{
		ServerName: "hub1", Host: "127.0.0.1", Port: -1, HTTPHost: "127.0.0.1", HTTPPort: -1,
		NoLog: true, NoSigs: true,
		Accounts: []*server.Account{acme, other},
		Nkeys:    []*server.NkeyUser{{Nkey: dev.public, Account: acme, Permissions: perms}},
		Users: []*server.User{
			{Username: "app", Password: "pw", Account: acme},
			{Username: "other", Password: "pw", Account: other},
		},
		JetStream: true, JetStreamDomain: "hub", StoreDir: t.TempDir(),
	}
	o.LeafNode.Host, o.LeafNode.Port = "127.0.0.1", -1
	return o
}

func startHub(t testing.TB, o *server.Options) *server.Server {
	t.Helper()
	s, err := server.NewServer(o)
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("hub not ready")
	}
	t.Cleanup(s.Shutdown)
	if acc, err := s.LookupAccount("ACME"); err == nil && o.JetStream {
		if err := acc.EnableJetStream(nil, nil); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

func leafURL(s *server.Server) string {
	v, err := s.Varz(nil)
	if err != nil {
		panic(err)
	}
	return fmt.Sprintf("nats-leaf://127.0.0.1:%d", v.LeafNode.Port)
}

// leafNode is a canopy leaf (local server plus uplink) in the test.
type leafNode struct {
	srv    *natsd.Server
	up     *uplink.Uplink
	logs   *testlog.Buffer
	cancel context.CancelFunc
	done   chan struct{}
}

// startLeaf runs a leaf whose uplink uses cfg (URLs and credentials set
// by the caller) with fast reconnects.
func startLeaf(t testing.TB, cfg uplink.Config) *leafNode {
	t.Helper()
	logs := &testlog.Buffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	srv, err := natsd.New(natsd.Config{Listen: "127.0.0.1:0"}, "leaf-under-test", log)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ReconnectMin == 0 {
		cfg.ReconnectMin = config.Duration(20 * time.Millisecond)
		cfg.ReconnectMax = config.Duration(200 * time.Millisecond)
	}
	up, err := uplink.New(cfg, "leaf-under-test", srv, log)
	if err != nil {
		t.Fatal(err)
	}
	srv.SetUplink(up)
	ctx, cancel := context.WithCancel(context.Background())
	n := &leafNode{srv: srv, up: up, logs: logs, cancel: cancel, done: make(chan struct{})}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); srv.Run(ctx) }()
	go func() { defer wg.Done(); up.Run(ctx) }()
	go func() { wg.Wait(); close(n.done) }()
	t.Cleanup(n.stop)
	<-srv.Ready()
	return n
}

func (n *leafNode) stop() {
	n.cancel()
	<-n.done
}

// waitConnected waits until the uplink is up.
func (n *leafNode) waitConnected(t testing.TB) {
	t.Helper()
	wait.For(t, 15*time.Second, func() error {
		if s := n.up.Stats(); !s.Connected {
			return fmt.Errorf("uplink not connected (last error: %s)", s.LastError)
		}
		return nil
	})
}

func connect(t testing.TB, url string, opts ...nats.Option) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		t.Fatalf("connect %s: %v", url, err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// deliverEventually publishes with pub until sub receives a message:
// interest crosses the link asynchronously (reference D.4).
func deliverEventually(t testing.TB, pub func() error, sub *nats.Subscription) *nats.Msg {
	t.Helper()
	var got *nats.Msg
	wait.For(t, 10*time.Second, func() error {
		if err := pub(); err != nil {
			return err
		}
		m, err := sub.NextMsg(100 * time.Millisecond)
		if err != nil {
			return fmt.Errorf("nothing received yet: %w", err)
		}
		got = m
		return nil
	})
	return got
}

// drain empties a subscription of messages already queued.
func drain(sub *nats.Subscription) {
	for {
		if _, err := sub.NextMsg(50 * time.Millisecond); err != nil {
			return
		}
	}
}

func splitAddr(t testing.TB, addr string) (string, int) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	p, _ := strconv.Atoi(port)
	return host, p
}

func mustURL(s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		panic(err)
	}
	return u
}
