package stream_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"

	"github.com/canopy-iot/canopy/internal/config"
	"github.com/canopy-iot/canopy/internal/faultproxy"
	"github.com/canopy-iot/canopy/internal/testlog"
	"github.com/canopy-iot/canopy/internal/wait"
	"github.com/canopy-iot/canopy/leaf"
	"github.com/canopy-iot/canopy/leaf/natsd"
	"github.com/canopy-iot/canopy/leaf/stream"
	"github.com/canopy-iot/canopy/leaf/uplink"
	"github.com/canopy-iot/canopy/mqtt"
)

// startHub runs a hub with JetStream and the TELEMETRY stream on
// telemetry.>, and an NKey user for the device; it returns the hub and the
// device's seed file.
func startHub(t *testing.T) (*server.Server, string, jetstream.Stream) {
	t.Helper()
	return startHubWith(t, nil, jetstream.StreamConfig{Name: "TELEMETRY", Subjects: []string{"telemetry.>"}, AllowDirect: true})
}

// startHubWith is startHub with the device's permissions and the stream's
// configuration given.
func startHubWith(t *testing.T, perms *server.Permissions, sc jetstream.StreamConfig) (*server.Server, string, jetstream.Stream) {
	t.Helper()
	kp, _ := nkeys.CreateUser()
	pub, _ := kp.PublicKey()
	seed, _ := kp.Seed()
	seedFile := filepath.Join(t.TempDir(), "device.nk")
	os.WriteFile(seedFile, seed, 0o600)
	acc := server.NewAccount("ACME")
	o := &server.Options{
		ServerName: "hub", Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true,
		Accounts:  []*server.Account{acc},
		Nkeys:     []*server.NkeyUser{{Nkey: pub, Account: acc}},
		Users:     []*server.User{{Username: "app", Password: "pw", Account: acc}},
		JetStream: true, JetStreamDomain: "hub", StoreDir: t.TempDir(),
	}
	o.LeafNode.Host, o.LeafNode.Port, o.LeafNode.NoAdvertise = "127.0.0.1", -1, true
	s, err := server.NewServer(o)
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("hub not ready")
	}
	t.Cleanup(s.Shutdown)
	a, _ := s.LookupAccount("ACME")
	if err := a.EnableJetStream(nil, nil); err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(s.ClientURL(), nats.UserInfo("app", "pw"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, _ := jetstream.New(nc)
	st, err := js.CreateStream(context.Background(), sc)
	if err != nil {
		t.Fatal(err)
	}
	return s, seedFile, st
}

func leafPort(t *testing.T, s *server.Server) string {
	v, err := s.Varz(nil)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("127.0.0.1:%d", v.LeafNode.Port)
}

// leafConfig is a canopy leaf with one stream "sensors" on sensors.>, for
// startHub's hub.
func leafConfig(hubAddr, seedFile string) leaf.Config {
	return leaf.Config{
		ServerName: "pi-001",
		NATS:       natsd.Config{Listen: "127.0.0.1:0"},
		MQTT:       mqtt.Config{Listen: "127.0.0.1:0"},
		Uplink: uplink.Config{URLs: []string{"nats-leaf://" + hubAddr}, NKeySeedFile: seedFile,
			ReconnectMin: config.Duration(10 * time.Millisecond), ReconnectMax: config.Duration(100 * time.Millisecond)},
		// The hub has a JetStream domain: a leaf's direct get (the
		// duplicate check) reaches a hub stream only through it.
		Streams: []stream.Config{{Name: "sensors", Subjects: []string{"sensors.>"}, Upstream: stream.Upstream{Domain: "hub"}}},
	}
}

// startLeaf runs a leaf on leafConfig, changed by mut, until the test ends.
func startLeaf(t *testing.T, hubAddr, seedFile string, mut func(*leaf.Config)) (*leaf.Node, *testlog.Buffer) {
	t.Helper()
	cfg := leafConfig(hubAddr, seedFile)
	cfg.DataDir = t.TempDir()
	if mut != nil {
		mut(&cfg)
	}
	logs, log := testlog.New(-4)
	n, err := leaf.New(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	select {
	case <-n.Ready():
	case err := <-done:
		t.Fatal(err)
	}
	return n, logs
}

// cutRepeatedly cuts the link through proxy cuts times in the background,
// each time at a random byte below maxBytes or after a random moment if
// traffic does not reach that byte first, and waits for the leaf to be
// back before the next cut. The returned channel closes after the last.
func cutRepeatedly(t *testing.T, proxy *faultproxy.Proxy, n *leaf.Node, cuts int, maxBytes int64) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range cuts {
			before := proxy.Accepts()
			proxy.CutAfter(rand.Int64N(maxBytes))
			// Not synchronisation: the random moment of the cut.
			time.Sleep(time.Duration(20+rand.IntN(80)) * time.Millisecond)
			proxy.CutAll()
			wait.For(t, 10*time.Second, func() error {
				if proxy.Accepts() == before || !n.Uplink().Up() {
					return fmt.Errorf("link not back")
				}
				return nil
			})
		}
	}()
	return done
}

// checkHubStream reads the hub stream and checks it holds exactly the
// device's messages 0..total-1, each once, in order.
func checkHubStream(t *testing.T, st jetstream.Stream, total int) {
	readHubStream(t, st, "pi-001", total, true)
}

// checkHubStreamUnordered is checkHubStream allowing any order.
func checkHubStreamUnordered(t *testing.T, st jetstream.Stream, total int) {
	readHubStream(t, st, "pi-001", total, false)
}

// readHubStream checks that the hub stream holds exactly the messages
// 0..total-1 of device's stream "sensors", each once.
func readHubStream(t *testing.T, st jetstream.Stream, device string, total int, ordered bool) {
	t.Helper()
	ctx := context.Background()
	wait.For(t, 60*time.Second, func() error {
		info, err := st.Info(ctx)
		if err != nil {
			return err
		}
		if info.State.Msgs < uint64(total) {
			return fmt.Errorf("hub stream has %d of %d messages", info.State.Msgs, total)
		}
		return nil
	})
	cons, err := st.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	seen := make([]bool, total)
	for read := 0; read < total; {
		batch, err := cons.Fetch(min(1000, total-read), jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		for m := range batch.Messages() {
			if want := "telemetry." + device + ".sensors.temp"; m.Subject() != want {
				t.Fatalf("message %d on %s, want %s", read, m.Subject(), want)
			}
			if id := m.Headers().Get("Nats-Msg-Id"); !strings.HasPrefix(id, device+".sensors.") {
				t.Fatalf("message %d has Nats-Msg-Id %q", read, id)
			}
			i, err := strconv.Atoi(string(m.Data()))
			switch {
			case err != nil || i < 0 || i >= total:
				t.Fatalf("unexpected message %q", m.Data())
			case seen[i]:
				t.Fatalf("message %d is at the hub twice", i)
			case ordered && i != read:
				t.Fatalf("message %d is %d: lost or out of order", read, i)
			}
			seen[i] = true
			read++
		}
		if err := batch.Error(); err != nil && read < total {
			t.Fatalf("after %d messages: %v", read, err)
		}
	}
	if info, _ := st.Info(ctx); info.State.Msgs != uint64(total) {
		t.Fatalf("hub stream holds %d messages, want exactly %d", info.State.Msgs, total)
	}
}

// js.Publish against the leaf is acknowledged once the message is on the
// device's disk, even while the hub is unreachable; the messages reach the
// hub's stream once the link is up, exactly once, in order.
func TestIntegrationAckedOnDiskThenSyncedToHub(t *testing.T) {
	hub, seedFile, hubStream := startHub(t)
	proxy := faultproxy.New(t, leafPort(t, hub))
	// The link is down until the messages are in.
	proxy.SetDown(true)
	n, _ := startLeaf(t, proxy.Addr(), seedFile, nil)
	nc, err := nats.Connect(n.NATSURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	const total = 200
	for i := range total {
		ack, err := js.Publish(context.Background(), "sensors.temp", []byte(strconv.Itoa(i)))
		if err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
		if ack.Stream != "sensors" || ack.Sequence != uint64(i+1) {
			t.Fatalf("ack %d: %+v", i, ack)
		}
	}
	if n.Uplink().Up() {
		t.Fatal("the link came up through a downed proxy")
	}
	proxy.SetDown(false)
	start := time.Now()
	checkHubStream(t, hubStream, total)
	t.Logf("synced %d messages %v after the link was allowed up", total, time.Since(start))
}

// Messages keep flowing while the link is cut 20 times at random points:
// the hub stream holds each exactly once, in order.
func TestIntegrationExactlyOnceAcrossLinkCuts(t *testing.T) {
	hub, seedFile, hubStream := startHub(t)
	proxy := faultproxy.New(t, leafPort(t, hub))
	n, _ := startLeaf(t, proxy.Addr(), seedFile, nil)
	nc, err := nats.Connect(n.NATSURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)

	const total, cuts = 5000, 20
	done := cutRepeatedly(t, proxy, n, cuts, 64<<10)
	for i := range total {
		if _, err := js.PublishAsync("sensors.temp", []byte(strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
		if i%256 == 255 {
			<-js.PublishAsyncComplete()
		}
	}
	<-js.PublishAsyncComplete()
	<-done
	checkHubStream(t, hubStream, total)
	if a := proxy.Accepts(); a < cuts {
		t.Fatalf("only %d connections through the proxy for %d cuts", a, cuts)
	}
}

// At a limit the configured policy applies: discard new refuses with an
// error the publisher sees (and a rate-limited log line); discard old
// drops the oldest and counts it.
func TestIntegrationLimits(t *testing.T) {
	hub, seedFile, _ := startHub(t)
	proxy := faultproxy.New(t, leafPort(t, hub))
	proxy.SetDown(true) // nothing leaves the device
	n, logs := startLeaf(t, proxy.Addr(), seedFile, func(c *leaf.Config) {
		c.Streams = []stream.Config{
			{Name: "refusing", Subjects: []string{"r.>"}, MaxMsgs: 5, Discard: "new"},
			{Name: "dropping", Subjects: []string{"d.>"}, MaxMsgs: 5},
		}
	})
	nc, err := nats.Connect(n.NATSURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx := context.Background()
	for i := range 5 {
		if _, err := js.Publish(ctx, "r.x", []byte(strconv.Itoa(i))); err != nil {
			t.Fatalf("publish %d under the limit: %v", i, err)
		}
	}
	for range 3 {
		if _, err := js.Publish(ctx, "r.x", []byte("over")); err == nil {
			t.Fatal("a publish over a discard-new limit was acknowledged")
		}
	}
	if n := logs.Count(`msg="stream refused messages" component=stream stream=refusing`); n != 1 {
		t.Fatalf("refusal logged %d times, want once (rate-limited)", n)
	}
	for i := range 8 {
		ack, err := js.Publish(ctx, "d.x", []byte(strconv.Itoa(i)))
		if err != nil || ack.Sequence != uint64(i+1) {
			t.Fatalf("publish %d on a discard-old stream: %+v %v", i, ack, err)
		}
	}
	st := n.StreamStats("dropping")
	if st.Msgs != 5 || st.FirstSeq != 4 || st.Dropped.MaxMsgs != 3 {
		t.Fatalf("discard-old stats %+v: want 5 messages from seq 4, 3 dropped", st)
	}
}

// The device loses the hub's acknowledgements (a power cut after the hub
// stored the messages, before the device recorded the acks) and comes back
// after the hub stream's duplicate window: before resending, it asks the
// hub what it already has (a direct get, last by subject), and nothing is
// stored twice. Once against a hub with a JetStream domain, once as a
// device with exactly the permissions Canopy's hub issues.
func TestIntegrationNoDuplicatesBeyondTheDuplicateWindow(t *testing.T) {
	sc := jetstream.StreamConfig{
		Name: "TELEMETRY", Subjects: []string{"telemetry.>"}, Duplicates: time.Second, AllowDirect: true,
	}
	t.Run("domain", func(t *testing.T) {
		hub, seedFile, hubStream := startHubWith(t, nil, sc)
		checkNoDuplicatesAfterLostAcks(t, hub, hubStream, "pi-001", func(c *leaf.Config) { c.Uplink.NKeySeedFile = seedFile })
	})
	t.Run("device permissions", func(t *testing.T) {
		hub, creds, hubStream := startOperatorHub(t, "pi-007", sc)
		checkNoDuplicatesAfterLostAcks(t, hub, hubStream, "pi-007", withCredentials(creds))
	})
}

// checkNoDuplicatesAfterLostAcks runs the lost-acknowledgements scenario
// against hub; creds sets the leaf's credentials, device is the device id
// they carry.
func checkNoDuplicatesAfterLostAcks(t *testing.T, hub *server.Server, hubStream jetstream.Stream, device string, creds func(*leaf.Config)) {
	proxy := faultproxy.New(t, leafPort(t, hub))
	dataDir := t.TempDir()
	mut := func(c *leaf.Config) { c.DataDir = dataDir; creds(c) }
	const total = 50

	// 1. Messages stored on the device while the hub is unreachable.
	proxy.SetDown(true)
	ctx, stop := context.WithCancel(context.Background())
	n, done := runLeaf(t, ctx, proxy.Addr(), "", mut)
	publish(t, n.NATSURL(), total)
	stop()
	<-done
	snapshot := copyDir(t, dataDir)

	// 2. They reach the hub; the device records the acknowledgements.
	proxy.SetDown(false)
	ctx, stop = context.WithCancel(context.Background())
	n, done = runLeaf(t, ctx, proxy.Addr(), "", mut)
	readHubStream(t, hubStream, device, total, true)
	wait.For(t, 10*time.Second, func() error {
		if st := n.StreamStats("sensors"); st.AckFloor != total {
			return fmt.Errorf("device cursor at %d", st.AckFloor)
		}
		return nil
	})
	stop()
	<-done

	// 3. The acknowledgements are lost, and the duplicate window passes.
	restoreDir(t, snapshot, dataDir)
	time.Sleep(1500 * time.Millisecond) // let the hub's 1 s duplicate window expire
	n, logs := startLeaf(t, proxy.Addr(), "", mut)
	wait.For(t, 10*time.Second, func() error {
		if st := n.StreamStats("sensors"); st.AckFloor != total {
			return fmt.Errorf("device cursor at %d", st.AckFloor)
		}
		return nil
	})
	readHubStream(t, hubStream, device, total, true)
	if err := logs.Contains("hub already had stream messages; skipping them"); err != nil {
		t.Fatal(err)
	}
}

// runLeaf is startLeaf with the caller controlling when it stops.
func runLeaf(t *testing.T, ctx context.Context, hubAddr, seedFile string, mut func(*leaf.Config)) (*leaf.Node, chan error) {
	t.Helper()
	cfg := leafConfig(hubAddr, seedFile)
	mut(&cfg)
	n, err := leaf.New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	select {
	case <-n.Ready():
	case err := <-done:
		t.Fatal(err)
	}
	return n, done
}

func publish(t *testing.T, url string, total int) {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	for i := range total {
		if _, err := js.Publish(context.Background(), "sensors.temp", []byte(strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
}

func copyDir(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		files[e.Name()] = b
	}
	return files
}

func restoreDir(t *testing.T, files map[string][]byte, dir string) {
	t.Helper()
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}
