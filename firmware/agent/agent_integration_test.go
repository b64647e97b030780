package agent_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"

	"github.com/canopy-iot/canopy/firmware"
	"github.com/canopy-iot/canopy/firmware/agent"
	"github.com/canopy-iot/canopy/hub"
	"github.com/canopy-iot/canopy/hub/fleet"
	"github.com/canopy-iot/canopy/internal/config"
	"github.com/canopy-iot/canopy/internal/hubtest"
	"github.com/canopy-iot/canopy/internal/testlog"
	"github.com/canopy-iot/canopy/internal/wait"
)

const (
	tenant    = "t1"
	device    = "pi-001"
	chunkSize = 64 << 10
)

// fleetHub is an operator-mode hub with one tenant and one device, as
// `canopy-hub init`, `tenant add` and `device add` make them.
type fleetHub struct {
	h     *hub.Hub
	keys  *fleet.Keys
	admin *hub.Admin
	creds []byte // the device's
	js    jetstream.JetStream
	// desired and status are the tenant's buckets, seen by its admin.
	desired, status jetstream.KeyValue
}

func startFleetHub(t *testing.T) *fleetHub {
	t.Helper()
	h, keys, admin := hubtest.Operator(t, tenant)
	ctx := context.Background()
	creds, err := keys.AddDevice(tenant, device)
	if err != nil {
		t.Fatal(err)
	}
	adminCreds, err := keys.AdminCreds(tenant, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	nc := connect(t, h.ClientURL(), adminCreds)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	fh := &fleetHub{h: h, keys: keys, admin: admin, creds: creds, js: js}
	if fh.desired, err = js.KeyValue(ctx, firmware.DesiredBucket); err != nil {
		t.Fatal(err)
	}
	if fh.status, err = js.KeyValue(ctx, firmware.StatusBucket); err != nil {
		t.Fatal(err)
	}
	return fh
}

func connect(t *testing.T, url string, creds []byte, opts ...nats.Option) *nats.Conn {
	t.Helper()
	path := filepath.Join(t.TempDir(), "user.creds")
	if err := os.WriteFile(path, creds, 0o600); err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(url, append([]nats.Option{nats.UserCredentials(path)}, opts...)...)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(nc.Close)
	return nc
}

func randomBytes(t testing.TB, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// publish publishes an artifact for any platform and returns its signed
// manifest as the hub stored it.
func (fh *fleetHub) publish(t *testing.T, name, version string, data []byte) (firmware.Manifest, []byte) {
	t.Helper()
	ctx := context.Background()
	meta := hub.FirmwareMeta{Name: name, Version: version, Platform: "any", ChunkSize: chunkSize}
	if _, err := fh.admin.PublishFirmware(ctx, tenant, meta, bytes.NewReader(data)); err != nil {
		t.Fatalf("PublishFirmware: %v", err)
	}
	signed, m, err := fh.admin.FirmwareManifest(ctx, tenant, name, version, "any")
	if err != nil {
		t.Fatal(err)
	}
	return m, signed
}

// sign signs m with the tenant's firmware key.
func (fh *fleetHub) sign(t *testing.T, m firmware.Manifest) []byte {
	t.Helper()
	kp, err := fh.keys.FirmwareSigner(tenant)
	if err != nil {
		t.Fatal(err)
	}
	defer kp.Wipe()
	signed, err := firmware.Sign(m, kp)
	if err != nil {
		t.Fatal(err)
	}
	return signed
}

func (fh *fleetHub) trusted(t *testing.T) []string {
	t.Helper()
	tt, err := fh.keys.Tenant(tenant)
	if err != nil {
		t.Fatal(err)
	}
	return []string{tt.FirmwareKey}
}

// want writes the device's Desired, as a rollout does.
func (fh *fleetHub) want(t *testing.T, rollout string, signed []byte, install bool) {
	t.Helper()
	fh.wantDoc(t, firmware.Desired{Rollout: rollout, Manifest: signed, Install: install})
}

func (fh *fleetHub) wantDoc(t *testing.T, d firmware.Desired) {
	t.Helper()
	doc, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fh.desired.Put(context.Background(), device, doc); err != nil {
		t.Fatal(err)
	}
}

// waitStatus waits until the device's status in the hub's bucket is about
// rollout and in state, and returns it.
func (fh *fleetHub) waitStatus(t *testing.T, rollout string, state firmware.State) firmware.Status {
	t.Helper()
	var st firmware.Status
	wait.For(t, 30*time.Second, func() error {
		e, err := fh.status.Get(context.Background(), device)
		if err != nil {
			return err
		}
		st = firmware.Status{}
		if err := json.Unmarshal(e.Value(), &st); err != nil {
			return err
		}
		if st.Rollout != rollout || st.State != state {
			return fmt.Errorf("status %+v, want rollout %s %s", st, rollout, state)
		}
		return nil
	})
	return st
}

// natsFetcher is the test's Fetcher: a nats.go connection with the
// device's inbox to a leaf node that links to the hub with the device's
// credentials.
type natsFetcher struct {
	nc        *nats.Conn
	connected chan struct{}
	chunks    atomic.Int64 // chunk replies received
	fetched   atomic.Int64 // bytes of chunk replies received
	failAfter int64        // chunk requests fail once this many were answered; 0: never
	failed    atomic.Int64 // chunk requests failed
}

var _ agent.Fetcher = (*natsFetcher)(nil)

// newFetcher connects a fetcher through a fresh leaf node with the
// device's credentials: the hub judges a device's subjects on its leaf
// connection (before its JetStream domain mapping), as it does for
// canopy-leaf's uplink.
func newFetcher(t *testing.T, fh *fleetHub) *natsFetcher {
	t.Helper()
	leaf := startLeaf(t, fh)
	f := &natsFetcher{connected: make(chan struct{}, 1)}
	nc, err := nats.Connect(leaf.ClientURL(),
		nats.CustomInboxPrefix("_INBOX."+device),
		nats.ReconnectHandler(func(*nats.Conn) { f.signal() }))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	f.nc = nc
	f.signal()
	return f
}

// startLeaf runs a nats-server leaf node of the device until the test
// ends, and waits for its link to the hub.
func startLeaf(t *testing.T, fh *fleetHub) *server.Server {
	t.Helper()
	credsPath := filepath.Join(t.TempDir(), device+".creds")
	if err := os.WriteFile(credsPath, fh.creds, 0o600); err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(fh.h.LeafNodeURL())
	if err != nil {
		t.Fatal(err)
	}
	s, err := server.NewServer(&server.Options{
		ServerName: "leaf-" + device,
		Host:       "127.0.0.1",
		Port:       -1, // 0 would be 4222
		NoLog:      true,
		NoSigs:     true,
		LeafNode: server.LeafNodeOpts{Remotes: []*server.RemoteLeafOpts{{
			URLs: []*url.URL{u}, Credentials: credsPath,
		}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	s.Start()
	t.Cleanup(s.Shutdown)
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("leaf node not ready")
	}
	wait.For(t, 10*time.Second, func() error {
		if s.NumLeafNodes() != 1 {
			return errors.New("the leaf node is not linked to the hub")
		}
		return nil
	})
	return s
}

func (f *natsFetcher) signal() {
	select {
	case f.connected <- struct{}{}:
	default:
	}
}

const chunkSubject = "$JS.canopy.API.DIRECT.GET.OBJ_firmware"

func (f *natsFetcher) Request(ctx context.Context, subject string, payload []byte) ([]byte, []byte, error) {
	chunk := subject == chunkSubject
	if chunk && f.failAfter > 0 && f.chunks.Load() >= f.failAfter {
		f.failed.Add(1)
		return nil, nil, errors.New("link cut by the test")
	}
	msg, err := f.nc.RequestWithContext(ctx, subject, payload)
	if err != nil {
		return nil, nil, err
	}
	if chunk {
		f.chunks.Add(1)
		f.fetched.Add(int64(len(msg.Data)))
	}
	return encodeHeader(msg.Header), msg.Data, nil
}

// encodeHeader writes back the header block nats.go parsed, with the
// status line it turned into fields.
func encodeHeader(h nats.Header) []byte {
	if h == nil {
		return nil
	}
	var b strings.Builder
	b.WriteString("NATS/1.0")
	if s := h.Get("Status"); s != "" {
		b.WriteString(" " + s)
		if d := h.Get("Description"); d != "" {
			b.WriteString(" " + d)
		}
	}
	b.WriteString("\r\n")
	for k, vs := range h {
		if k == "Status" || k == "Description" {
			continue
		}
		for _, v := range vs {
			b.WriteString(k + ": " + v + "\r\n")
		}
	}
	b.WriteString("\r\n")
	return []byte(b.String())
}

func (f *natsFetcher) Publish(subject string, payload []byte) error {
	return f.nc.Publish(subject, payload)
}

func (f *natsFetcher) Connected() <-chan struct{} { return f.connected }

// device is an agent under test with its directory and artifact path.
type testDevice struct {
	cfg  agent.Config
	path string // where the file installer puts sensor-fw
	logs *testlog.Buffer
}

func newDevice(t *testing.T, fh *fleetHub) *testDevice {
	dir := t.TempDir()
	on := true
	d := &testDevice{path: filepath.Join(dir, "sensor", "fw.bin")}
	d.cfg = agent.Config{
		Enabled:     &on,
		TrustedKeys: fh.trusted(t),
		Poll:        config.Duration(time.Second), // the minimum
		Installers: map[string]agent.InstallerConfig{
			"sensor-fw": {Path: d.path, HTTPListen: "127.0.0.1:0"},
		},
	}.WithDefaults(filepath.Join(dir, "data"))
	return d
}

// start runs an agent on f until the returned stop is called (or the
// test ends).
func (d *testDevice) start(t *testing.T, f agent.Fetcher) (*agent.Agent, func()) {
	t.Helper()
	logs, log := testlog.New(-4)
	d.logs = logs
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("agent log:\n%s", logs)
		}
	})
	a, err := agent.New(d.cfg, device, f, agent.Options{Installers: agent.NewInstallers(d.cfg, log), Log: log})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("agent.Run: %v", err)
				}
			case <-time.After(30 * time.Second):
				t.Errorf("agent did not stop within 30s")
			}
		})
	}
	t.Cleanup(stop)
	select {
	case <-a.Ready():
	case err := <-done:
		t.Fatalf("agent: %v", err)
	}
	return a, stop
}

func (d *testDevice) checkInstalled(t *testing.T, want []byte) {
	t.Helper()
	got, err := os.ReadFile(d.path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("installed artifact: %d bytes, not the %d published", len(got), len(want))
	}
}

func TestIntegrationAgentApplies(t *testing.T) {
	fh := startFleetHub(t)
	data := randomBytes(t, 1<<20+12345)
	m, signed := fh.publish(t, "sensor-fw", "1.0.0", data)
	d := newDevice(t, fh)
	f := newFetcher(t, fh)
	// Events arrive on fw.events.<device> besides the bucket.
	events, err := fh.js.Conn().SubscribeSync(firmware.EventsPrefix + device)
	if err != nil {
		t.Fatal(err)
	}
	fh.js.Conn().Flush()
	a, stop := d.start(t, f)

	fh.want(t, "r1", signed, true)
	st := fh.waitStatus(t, "r1", firmware.StateApplied)
	d.checkInstalled(t, data)
	if st.Name != "sensor-fw" || st.Version != "1.0.0" || st.Running != "1.0.0" || st.Progress != 100 || st.Bytes != m.Size || st.Device != device {
		t.Errorf("status %+v", st)
	}
	if f.chunks.Load() != int64(len(m.Chunks)) {
		t.Errorf("%d chunks fetched, want %d", f.chunks.Load(), len(m.Chunks))
	}
	var states []firmware.State
	for {
		msg, err := events.NextMsg(5 * time.Second)
		if err != nil {
			t.Fatalf("events so far %v: %v", states, err)
		}
		var ev firmware.Status
		json.Unmarshal(msg.Data, &ev)
		if len(states) == 0 || states[len(states)-1] != ev.State {
			states = append(states, ev.State)
		}
		if ev.State == firmware.StateApplied {
			break
		}
	}
	want := []firmware.State{firmware.StateDownloading, firmware.StateVerifying, firmware.StateStaged, firmware.StateApplying, firmware.StateApplied}
	if fmt.Sprint(states) != fmt.Sprint(want) {
		t.Errorf("events %v, want %v", states, want)
	}

	// The LAN server hands sensors the artifact (by range too) and the
	// signed manifest.
	base := "http://" + a.HTTPAddr("sensor-fw") + "/firmware/sensor-fw"
	req, _ := http.NewRequest("GET", base, nil)
	req.Header.Set("Range", "bytes=1000-1999")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	part, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusPartialContent || !bytes.Equal(part, data[1000:2000]) {
		t.Errorf("range request: %s, %d bytes", resp.Status, len(part))
	}
	resp, err = http.Get(base + "/manifest")
	if err != nil {
		t.Fatal(err)
	}
	served, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if _, err := firmware.Verify(served, fh.trusted(t)); err != nil {
		t.Errorf("served manifest: %v", err)
	}
	if resp, err := http.Get("http://" + a.HTTPAddr("sensor-fw") + "/firmware/other"); err == nil {
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("unknown firmware: %s", resp.Status)
		}
	}

	// A restarted agent finds the version running and says so without
	// fetching anything.
	stop()
	f2 := newFetcher(t, fh)
	fh.status.Delete(context.Background(), device)
	d.start(t, f2)
	st = fh.waitStatus(t, "r1", firmware.StateApplied)
	if f2.chunks.Load() != 0 || st.Running != "1.0.0" {
		t.Errorf("after a restart: %d chunks fetched, status %+v", f2.chunks.Load(), st)
	}
}

func TestIntegrationAgentRejectsCorruptChunk(t *testing.T) {
	fh := startFleetHub(t)
	data := randomBytes(t, 1<<20)
	m, _ := fh.publish(t, "sensor-fw", "1.0.0", data)
	// A manifest whose chunk 5 says otherwise than what the hub holds:
	// what a flipped byte in the store looks like to the device.
	bad := m
	bad.Chunks = append([]string(nil), m.Chunks...)
	bad.Chunks[5] = strings.Repeat("ab", 32)
	d := newDevice(t, fh)
	f := newFetcher(t, fh)
	d.start(t, f)
	fh.want(t, "r-bad", fh.sign(t, bad), true)
	st := fh.waitStatus(t, "r-bad", firmware.StateFailed)
	if !strings.Contains(st.Reason, "chunk 5") || !strings.Contains(st.Reason, "checksum mismatch") {
		t.Errorf("reason %q, want it to name chunk 5 and a checksum mismatch", st.Reason)
	}
	if _, err := os.Stat(d.path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("something was installed: %v", err)
	}
	left, _ := filepath.Glob(filepath.Join(d.cfg.Dir, "download", "sensor-fw", "*"))
	staged, _ := filepath.Glob(filepath.Join(d.cfg.Dir, "staged", "sensor-fw", "*"))
	if len(left)+len(staged) > 0 {
		t.Errorf("left behind: %v %v", left, staged)
	}
}

func TestIntegrationAgentRejectsUntrustedSigner(t *testing.T) {
	fh := startFleetHub(t)
	m, _ := fh.publish(t, "sensor-fw", "1.0.0", randomBytes(t, 256<<10))
	other, err := nkeys.CreateAccount()
	if err != nil {
		t.Fatal(err)
	}
	signed, err := firmware.Sign(m, other)
	if err != nil {
		t.Fatal(err)
	}
	d := newDevice(t, fh)
	f := newFetcher(t, fh)
	d.start(t, f)
	fh.want(t, "r-evil", signed, true)
	st := fh.waitStatus(t, "r-evil", firmware.StateFailed)
	if !strings.Contains(st.Reason, "does not trust") {
		t.Errorf("reason %q", st.Reason)
	}
	if n := f.chunks.Load(); n != 0 {
		t.Errorf("%d chunks fetched for an untrusted manifest", n)
	}
	if _, err := os.Stat(d.path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("something was installed: %v", err)
	}
}

func TestIntegrationAgentNoInstaller(t *testing.T) {
	fh := startFleetHub(t)
	_, signed := fh.publish(t, "camera-fw", "2.0.0", randomBytes(t, 8<<10))
	d := newDevice(t, fh)
	f := newFetcher(t, fh)
	d.start(t, f)
	fh.want(t, "r-cam", signed, true)
	st := fh.waitStatus(t, "r-cam", firmware.StateFailed)
	if st.Reason != "no installer configured for firmware camera-fw" || f.chunks.Load() != 0 {
		t.Errorf("status %+v after %d chunks", st, f.chunks.Load())
	}
	// Polls read the same revision: the failure is not retried. The hub
	// writing the Desired again retries it.
	events, err := fh.js.Conn().SubscribeSync(firmware.EventsPrefix + device)
	if err != nil {
		t.Fatal(err)
	}
	fh.js.Conn().Flush()
	if msg, err := events.NextMsg(2500 * time.Millisecond); err == nil { // two polls
		t.Errorf("the failure was retried without a new write: %s", msg.Data)
	}
	fh.want(t, "r-cam", signed, true)
	msg, err := events.NextMsg(10 * time.Second)
	if err != nil {
		t.Fatalf("no retry after the Desired was written again: %v", err)
	}
	var again firmware.Status
	if json.Unmarshal(msg.Data, &again); again.State != firmware.StateFailed || !again.Updated.After(st.Updated) {
		t.Errorf("retry reported %+v", again)
	}
}

func TestIntegrationAgentWaitsForWindow(t *testing.T) {
	fh := startFleetHub(t)
	_, signed := fh.publish(t, "sensor-fw", "1.0.0", randomBytes(t, 256<<10))
	d := newDevice(t, fh)
	d.start(t, newFetcher(t, fh))
	now := time.Now()
	window := now.Add(2*time.Hour).Format("15:04") + "-" + now.Add(3*time.Hour).Format("15:04")
	fh.wantDoc(t, firmware.Desired{Rollout: "r-night", Manifest: signed, Install: true, Window: window})
	st := fh.waitStatus(t, "r-night", firmware.StateStaged)
	if !strings.Contains(st.Reason, "outside the maintenance window "+window) {
		t.Errorf("staged with reason %q", st.Reason)
	}
	if _, err := os.Stat(d.path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("applied outside its window: %v", err)
	}
}

func TestIntegrationAgentResumes(t *testing.T) {
	fh := startFleetHub(t)
	data := randomBytes(t, 2<<20)
	m, signed := fh.publish(t, "sensor-fw", "1.0.0", data)
	n := int64(len(m.Chunks))
	d := newDevice(t, fh)

	// The link "breaks" after half the chunks; the agent keeps retrying
	// until it is stopped.
	f1 := newFetcher(t, fh)
	f1.failAfter = n / 2
	_, stop := d.start(t, f1)
	fh.want(t, "r1", signed, true)
	wait.For(t, 30*time.Second, func() error {
		if f1.failed.Load() < 2 { // and retried once
			return fmt.Errorf("%d chunk requests failed", f1.failed.Load())
		}
		return nil
	})
	stop()
	if _, err := os.Stat(d.path); err == nil {
		t.Fatal("installed before the download completed")
	}

	// A new process, a new link: the download goes on where it stopped.
	f2 := newFetcher(t, fh)
	d.start(t, f2)
	st := fh.waitStatus(t, "r1", firmware.StateApplied)
	d.checkInstalled(t, data)
	total := f1.fetched.Load() + f2.fetched.Load()
	t.Logf("fetched %d + %d = %d bytes for %d (%.2fx); status says %d", f1.fetched.Load(), f2.fetched.Load(), total, m.Size, float64(total)/float64(m.Size), st.Bytes)
	if float64(total) >= 1.2*float64(m.Size) {
		t.Errorf("fetched %d bytes in all for %d: verified chunks were fetched again", total, m.Size)
	}
	if f2.fetched.Load() > m.Size-f1.fetched.Load()+int64(maxInFlight)*chunkSize || f2.chunks.Load() == n {
		t.Errorf("the second run fetched %d bytes (%d chunks) after %d", f2.fetched.Load(), f2.chunks.Load(), f1.fetched.Load())
	}
	if st.Bytes < f2.fetched.Load() || float64(st.Bytes) >= 1.2*float64(m.Size) {
		t.Errorf("status bytes %d; fetched %d then %d", st.Bytes, f1.fetched.Load(), f2.fetched.Load())
	}
}

// maxInFlight bounds chunks requested but not yet written when a cut
// lands (the agent's window).
const maxInFlight = 4

func TestIntegrationAgentReusesInstalledChunks(t *testing.T) {
	fh := startFleetHub(t)
	v1 := randomBytes(t, 2<<20)
	_, signed1 := fh.publish(t, "sensor-fw", "1.0.0", v1)
	v2 := bytes.Clone(v1)
	v2[3*chunkSize+10] ^= 0xff
	v2[20*chunkSize] ^= 0xff
	m2, signed2 := fh.publish(t, "sensor-fw", "1.1.0", v2)
	d := newDevice(t, fh)
	f := newFetcher(t, fh)
	d.start(t, f)
	fh.want(t, "r1", signed1, true)
	fh.waitStatus(t, "r1", firmware.StateApplied)
	before, bytesBefore := f.chunks.Load(), f.fetched.Load()

	fh.want(t, "r2", signed2, true)
	st := fh.waitStatus(t, "r2", firmware.StateApplied)
	d.checkInstalled(t, v2)
	if got := f.chunks.Load() - before; got != 2 {
		t.Errorf("version 2 fetched %d chunks, want the 2 that changed", got)
	}
	if got := f.fetched.Load() - bytesBefore; st.Bytes != got || got != 2*chunkSize {
		t.Errorf("status bytes %d, fetched %d, want %d", st.Bytes, got, 2*chunkSize)
	}
	if prev, err := os.ReadFile(d.path + ".previous"); err != nil || !bytes.Equal(prev, v1) {
		t.Errorf("previous artifact kept: %v", err)
	}
	if st.Running != m2.Version {
		t.Errorf("running %q", st.Running)
	}
}

func TestIntegrationAgentDownloadOnlyThenInstall(t *testing.T) {
	fh := startFleetHub(t)
	data := randomBytes(t, 1<<20)
	m, signed := fh.publish(t, "sensor-fw", "1.0.0", data)
	d := newDevice(t, fh)
	f := newFetcher(t, fh)
	d.start(t, f)
	fh.want(t, "r1", signed, false)
	st := fh.waitStatus(t, "r1", firmware.StateStaged)
	if st.Progress != 100 || st.Bytes != m.Size || st.Running != "" {
		t.Errorf("staged status %+v", st)
	}
	if _, err := os.Stat(d.path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("download only, yet installed: %v", err)
	}
	fetched := f.chunks.Load()

	fh.want(t, "r1", signed, true)
	fh.waitStatus(t, "r1", firmware.StateApplied)
	d.checkInstalled(t, data)
	if f.chunks.Load() != fetched {
		t.Errorf("installing a staged artifact fetched %d more chunks", f.chunks.Load()-fetched)
	}
}
