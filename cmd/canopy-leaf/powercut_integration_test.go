package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"

	"github.com/canopy-iot/canopy/internal/proctest"
	"github.com/canopy-iot/canopy/internal/wait"
)

// Power cut: a canopy-leaf process ingesting acknowledged publishes is
// killed with SIGKILL at random moments, ten times. After it comes back,
// every message whose publisher got an acknowledgement is in the hub's
// stream exactly once.
func TestIntegrationPowerCutLosesNothingAcknowledged(t *testing.T) {
	if testing.Short() {
		t.Skip("kills and restarts canopy-leaf ten times")
	}
	// The hub: JetStream with the TELEMETRY stream, the device's NKey.
	kp, _ := nkeys.CreateUser()
	pub, _ := kp.PublicKey()
	seed, _ := kp.Seed()
	dir := t.TempDir()
	seedFile := filepath.Join(dir, "device.nk")
	os.WriteFile(seedFile, seed, 0o600)
	acc := server.NewAccount("ACME")
	// The domain lets the leaf's duplicate check at start (a direct get)
	// reach the stream: nats-server keeps a leaf node's domain-less
	// $JS.API direct gets from it.
	o := &server.Options{
		ServerName: "hub", Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true,
		Accounts:  []*server.Account{acc},
		Nkeys:     []*server.NkeyUser{{Nkey: pub, Account: acc}},
		Users:     []*server.User{{Username: "app", Password: "pw", Account: acc}},
		JetStream: true, JetStreamDomain: "hub", StoreDir: filepath.Join(dir, "hub"),
	}
	o.LeafNode.Host, o.LeafNode.Port = "127.0.0.1", -1
	hub, err := server.NewServer(o)
	if err != nil {
		t.Fatal(err)
	}
	go hub.Start()
	if !hub.ReadyForConnections(10 * time.Second) {
		t.Fatal("hub not ready")
	}
	defer hub.Shutdown()
	a, _ := hub.LookupAccount("ACME")
	a.EnableJetStream(nil, nil)
	hubConn, err := nats.Connect(hub.ClientURL(), nats.UserInfo("app", "pw"))
	if err != nil {
		t.Fatal(err)
	}
	defer hubConn.Close()
	hjs, _ := jetstream.New(hubConn)
	ctx := context.Background()
	stream, err := hjs.CreateStream(ctx, jetstream.StreamConfig{Name: "TELEMETRY", Subjects: []string{"telemetry.>"}, AllowDirect: true})
	if err != nil {
		t.Fatal(err)
	}
	v, _ := hub.Varz(nil)

	conf := filepath.Join(dir, "leaf.yaml")
	os.WriteFile(conf, []byte(fmt.Sprintf(`version: 1
server_name: pi-001
data_dir: %s
nats:
  listen: 127.0.0.1:0
mqtt:
  listen: 127.0.0.1:0
uplink:
  urls: [nats-leaf://127.0.0.1:%d]
  nkey_seed_file: %s
  reconnect_min: 20ms
  reconnect_max: 200ms
streams:
  - name: sensors
    subjects: ["sensors.>"]
    upstream: {domain: hub}
`, filepath.Join(dir, "leaf-data"), v.LeafNode.Port, seedFile)), 0o600)
	bin := proctest.Build(t, ".", "")

	acked := map[int]bool{}
	next := 0
	for round := range 10 {
		p := proctest.Start(t, bin, dir, leafReady, "--config", conf)
		nc, err := nats.Connect(p.Ready[1], nats.NoReconnect())
		if err != nil {
			t.Fatal(err)
		}
		js, _ := jetstream.New(nc)
		killAt := time.Now().Add(time.Duration(50+rand.IntN(250)) * time.Millisecond)
		killed := false
		for !killed {
			if time.Now().After(killAt) {
				p.Cmd.Process.Signal(syscall.SIGKILL)
				killed = true
			}
			pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			_, err := js.Publish(pctx, "sensors.temp", []byte(strconv.Itoa(next)))
			cancel()
			if err == nil {
				acked[next] = true
			}
			next++
			if err != nil && killed {
				break
			}
		}
		nc.Close()
		p.WaitExit(t, 10*time.Second)
		t.Logf("round %d: %d acknowledged so far", round, len(acked))
	}

	// Back for good: everything acknowledged reaches the hub, once.
	proctest.Start(t, bin, dir, leafReady, "--config", conf)
	seen := map[int]int{}
	cons, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	wait.For(t, 60*time.Second, func() error {
		batch, err := cons.Fetch(500, jetstream.FetchMaxWait(200*time.Millisecond))
		if err != nil {
			return err
		}
		for m := range batch.Messages() {
			i, _ := strconv.Atoi(string(m.Data()))
			seen[i]++
		}
		for i := range acked {
			if seen[i] == 0 {
				return fmt.Errorf("acknowledged message %d not at the hub yet (%d of %d there)", i, len(seen), len(acked))
			}
		}
		return nil
	})
	for i, n := range seen {
		if n > 1 {
			t.Fatalf("message %d is at the hub %d times", i, n)
		}
	}
	t.Logf("%d messages acknowledged across 10 kills, all at the hub once (%d unacknowledged ones got there too)", len(acked), len(seen)-len(acked))
}
