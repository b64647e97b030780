package leafapp

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/canopy-iot/canopy/appliance"
	"github.com/canopy-iot/canopy/internal/wait"
	"github.com/canopy-iot/canopy/leaf"
	"github.com/canopy-iot/canopy/leaf/natsd"
	"github.com/canopy-iot/canopy/leaf/stream"
	"github.com/canopy-iot/canopy/leaf/uplink"
	"github.com/canopy-iot/canopy/mqtt"
)

// runningLeaf runs a leaf whose hub is unreachable, with a stream, and
// returns it once ready.
func runningLeaf(t *testing.T) *leaf.Node {
	t.Helper()
	// A port nobody listens on: the link stays down.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := l.Addr().String()
	l.Close()
	n, err := leaf.New(leaf.Config{
		ServerName: "pi-042",
		DataDir:    t.TempDir(),
		NATS:       natsd.Config{Listen: "127.0.0.1:0"},
		MQTT:       mqtt.Config{Listen: "127.0.0.1:0"},
		Uplink:     uplink.Config{URLs: []string{"nats://" + dead}},
		Streams:    []stream.Config{{Name: "sensors", Subjects: []string{"sensors.>"}}},
		Monitor:    leaf.MonitorConfig{Listen: "127.0.0.1:0"},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("leaf: %v", err)
		}
	})
	select {
	case <-n.Ready():
	case err := <-done:
		done <- err
		t.Fatal(err)
	case <-time.After(10 * time.Second):
		t.Fatal("leaf not ready")
	}
	return n
}

func TestStatusSummarizesTheRunningLeaf(t *testing.T) {
	n := runningLeaf(t)
	nc, err := nats.Connect(n.NATSURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	for range 7 {
		nc.Publish("sensors.temp", []byte("21.5"))
	}
	nc.Flush()
	wait.For(t, 10*time.Second, func() error {
		if st := n.StreamStats("sensors"); st.Msgs != 7 {
			return errString("backlog not stored yet")
		}
		if n.Uplink().Stats().LastError == "" {
			return errString("no failed attempt yet")
		}
		return nil
	})
	addr := strings.TrimPrefix(n.MonitorURL(), "http://")
	code, out, errOut := runLeaf(t, "status", "--monitor-listen", addr)
	if code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	t.Logf("canopy-leaf status:\n%s", out)
	for _, want := range []string{
		"device    pi-042",
		"link      DOWN, never connected",
		"last error: ",
		"sensors: backlog 7 msgs, ",
		", oldest ",
		"nats      1 clients, 7 msgs in",
		"mqtt      0 clients",
		"store     ",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("summary lacks %q:\n%s", want, out)
		}
	}

	code, out, _ = runLeaf(t, "status", "--json", "--monitor-listen", addr)
	if code != 0 || !strings.Contains(out, `"name": "sensors"`) || !strings.Contains(out, `"up": false`) {
		t.Errorf("status --json: exit %d\n%s", code, out)
	}
}

// Without a running leaf, status says who it asked, then what the
// service manager knows (not installed, 4, or stopped, 3).
func TestStatusWithoutARunningLeaf(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	code, out, errOut := runLeaf(t, "status", "--monitor-listen", addr)
	want := "canopy-leaf: no running leaf answers at http://" + addr + " (monitor.listen): "
	if (code != appliance.ExitNotInstalled && code != appliance.ExitNotRunning) || !strings.HasPrefix(errOut, want) ||
		!strings.HasPrefix(out, "canopy-leaf: ") {
		t.Fatalf("exit %d, stdout %q, stderr %q; want exit 3 or 4, %q and the service's state", code, out, errOut, want)
	}
	code, _, errOut = runLeaf(t, "status", "--monitor-listen", "off")
	if code == 0 || !strings.Contains(errOut, "monitor.listen is off") {
		t.Fatalf("monitor off: exit %d, stderr %q", code, errOut)
	}
}

type errString string

func (e errString) Error() string { return string(e) }

func TestSummaryOfALinkedLeaf(t *testing.T) {
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	st := leaf.Status{
		Device: "pi-001", ServerName: "kitchen", Version: "1.2.3", Uptime: leaf.Seconds(7200),
		Link: &leaf.LinkStatus{Up: true, URL: "tls://hub.example.com:7422", Since: now.Add(-90 * time.Second), Reconnects: 2, MsgsOut: 10, MsgsIn: 3},
		Streams: []leaf.StreamStatus{
			{Name: "telemetry", Msgs: 0, Dropped: map[string]uint64{"max_age": 0}},
			{Name: "events", Msgs: 3, Bytes: 3 << 20, OldestAge: 42, Dropped: map[string]uint64{"max_msgs": 4, "max_age": 1}, Refused: 2},
		},
		MQTT:     &leaf.MQTTStatus{ServerStatus: leaf.ServerStatus{Clients: 5}, Retained: 3},
		Firmware: []leaf.FirmwareStatus{{Name: "sensor-fw", Version: "2.0.0", State: "applied"}, {Name: "modem"}},
		Store:    &leaf.StoreStatus{Path: "/data/streams.db", FileBytes: 2 << 20},
	}
	got := summary(st, now)
	for _, want := range []string{
		"device    pi-001 (server_name kitchen), canopy-leaf 1.2.3, up 2h0m0s\n",
		"link      up to tls://hub.example.com:7422 since ",
		"(1m30s), 2 reconnects, 10 msgs out, 3 in\n",
		"streams   telemetry: backlog 0 msgs, 0 B, 0 dropped\n",
		"          events: backlog 3 msgs, 3.0 MiB, oldest 42s, 5 dropped, 2 refused\n",
		"mqtt      5 clients",
		"firmware  sensor-fw 2.0.0 (applied)\n",
		"          modem none (none)\n",
		"store     2.0 MiB (0 B free inside)  /data/streams.db\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("summary lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "last error") {
		t.Errorf("a last error without one:\n%s", got)
	}
}
