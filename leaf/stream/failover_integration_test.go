package stream_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"

	"github.com/canopy-iot/canopy/hub"
	"github.com/canopy-iot/canopy/internal/wait"
	"github.com/canopy-iot/canopy/leaf"
)

// The hub stream is R3 on a 3-node canopy-hub cluster; its leader is
// stopped while the leaf syncs: nothing is lost, nothing doubled.
func TestIntegrationHubLeaderFailoverDuringSync(t *testing.T) {
	kp, _ := nkeys.CreateUser()
	pub, _ := kp.PublicKey()
	seed, _ := kp.Seed()
	seedFile := filepath.Join(t.TempDir(), "device.nk")
	os.WriteFile(seedFile, seed, 0o600)

	// Route ports are reserved first: every node lists all of them.
	var routes []string
	for range 3 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		routes = append(routes, "nats://"+l.Addr().String())
		l.Close()
	}
	type node struct {
		h      *hub.Hub
		name   string
		cancel context.CancelFunc
		done   chan error
	}
	var nodes []*node
	for i := range 3 {
		n := &node{name: fmt.Sprintf("h%d", i+1), done: make(chan error, 1)}
		h, err := hub.New(hub.Config{
			ServerName: n.name, Listen: "127.0.0.1:0", HTTPListen: "off",
			LeafNodes: hub.LeafNodes{Listen: "127.0.0.1:0"},
			Cluster:   hub.Cluster{Name: "dc", Listen: routes[i][len("nats://"):], Routes: routes},
			JetStream: hub.JetStream{StoreDir: t.TempDir(), Domain: "hub"},
			Accounts: map[string]hub.Account{"acme": {JetStream: true, Users: []hub.User{
				{NKey: pub}, {User: "app", Password: "pw"},
			}}},
		}, nil)
		if err != nil {
			t.Fatal(err)
		}
		n.h = h
		var ctx context.Context
		ctx, n.cancel = context.WithCancel(context.Background())
		go func() { n.done <- h.Run(ctx) }()
		t.Cleanup(func() { n.cancel(); <-n.done })
		nodes = append(nodes, n)
	}
	for _, n := range nodes {
		select {
		case <-n.h.Ready():
		case err := <-n.done:
			n.done <- err // for the cleanup
			t.Fatal(err)
		case <-time.After(30 * time.Second):
			t.Fatal("hub node not ready")
		}
	}
	var urls string
	for _, n := range nodes {
		urls += n.h.ClientURL() + ","
	}
	nc, err := nats.Connect(urls, nats.UserInfo("app", "pw"), nats.MaxReconnects(-1))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	var stream jetstream.Stream
	wait.For(t, 30*time.Second, func() error {
		var err error
		stream, err = js.CreateStream(context.Background(), jetstream.StreamConfig{Name: "TELEMETRY", Subjects: []string{"telemetry.>"}, Replicas: 3, AllowDirect: true})
		return err
	})

	// The leaf knows every node, as a device configured with the cluster's
	// addresses does.
	cfg := leafConfig("", seedFile)
	cfg.Uplink.URLs = nil
	for _, n := range nodes {
		cfg.Uplink.URLs = append(cfg.Uplink.URLs, n.h.LeafNodeURL())
	}
	// The hubs have a JetStream domain, so that the leaf's duplicate check
	// at start is answered at once: without an answer it waits 2 s and
	// starts behind the publisher, and the failover then finds a window
	// of 256 in flight, which the syncer resends after each "duplicate
	// message id is in process" refusal, one message per round.
	ln, logs := startLeaf(t, "unused", seedFile, func(c *leaf.Config) { c.Uplink.URLs = cfg.Uplink.URLs })
	t.Cleanup(func() {
		if t.Failed() {
			for _, l := range strings.Split(logs.String(), "\n") {
				if strings.Contains(l, "component=stream") || strings.Contains(l, "component=uplink") {
					t.Log(l)
				}
			}
		}
	})
	local, err := nats.Connect(ln.NATSURL())
	if err != nil {
		t.Fatal(err)
	}
	defer local.Close()
	ljs, _ := jetstream.New(local)

	const total = 3000
	for i := range total {
		if i == total/3 {
			info, err := stream.Info(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			for _, n := range nodes {
				if n.name == info.Cluster.Leader {
					n.cancel()
					<-n.done
					n.done <- nil // for the cleanup
				}
			}
		}
		if _, err := ljs.PublishAsync("sensors.temp", []byte(strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
		if i%200 == 199 {
			<-ljs.PublishAsyncComplete()
		}
	}
	<-ljs.PublishAsyncComplete()
	// No loss and no duplicate. Order is not checked here: messages that
	// failed while the stream had no leader are resent after later ones
	// were stored (see the stream package's documentation).
	checkHubStreamUnordered(t, stream, total)
}
