package leaf_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/canopy-iot/canopy/firmware/agent"
	"github.com/canopy-iot/canopy/hub"
	"github.com/canopy-iot/canopy/hub/fleet"
	"github.com/canopy-iot/canopy/internal/hubtest"
	waitfor "github.com/canopy-iot/canopy/internal/wait"
	"github.com/canopy-iot/canopy/leaf"
	"github.com/canopy-iot/canopy/leaf/stream"
	"github.com/canopy-iot/canopy/leaf/uplink"
)

// operatorHub runs a hub in operator mode with tenants t1 and t2, and
// returns it with its keys and an admin connection.
func operatorHub(t *testing.T) (*hub.Hub, *fleet.Keys, *hub.Admin) {
	return hubtest.Operator(t, "t1", "t2")
}

// deviceCreds writes a new device's credentials to a file.
func deviceCreds(t *testing.T, keys *fleet.Keys, tenant, device string) string {
	t.Helper()
	creds, err := keys.AddDevice(tenant, device)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), device+".creds")
	if err := os.WriteFile(path, creds, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// tenantConn connects to the hub as a tenant's administrator.
func tenantConn(t *testing.T, h *hub.Hub, keys *fleet.Keys, tenant string) *nats.Conn {
	t.Helper()
	creds, err := keys.AdminCreds(tenant, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), tenant+"-admin.creds")
	os.WriteFile(path, creds, 0o600)
	nc, err := nats.Connect(h.ClientURL(), nats.UserCredentials(path))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// linkedLeaf runs a leaf with MQTT whose uplink authenticates with creds,
// and waits until the link is up.
func linkedLeaf(t *testing.T, h *hub.Hub, creds string) *leaf.Node {
	t.Helper()
	n, _, _ := runLeaf(t, leafWithMQTT(func(c *leaf.Config) {
		c.ServerName = ""
		c.Uplink = uplink.Config{URLs: []string{h.LeafNodeURL()}, Credentials: creds}
	}))
	waitLinked(t, n)
	return n
}

// waitLinked waits until the leaf's link to the hub is up.
func waitLinked(t *testing.T, n *leaf.Node) {
	t.Helper()
	waitfor.For(t, 10*time.Second, func() error {
		if s := n.Uplink().Stats(); !s.Connected {
			return errorString("uplink not connected: " + s.LastError)
		}
		return nil
	})
}

type errorString string

func (e errorString) Error() string { return string(e) }

func TestFleetIsolationFromTheDevice(t *testing.T) {
	h, keys, _ := operatorHub(t)
	n := linkedLeaf(t, h, deviceCreds(t, keys, "t1", "dev-a"))
	deviceCreds(t, keys, "t1", "dev-b")
	t1, t2 := tenantConn(t, h, keys, "t1"), tenantConn(t, h, keys, "t2")
	seen1, _ := t1.SubscribeSync("telemetry.>")
	seen2, _ := t2.SubscribeSync(">")
	t1.Flush()
	t2.Flush()

	// Up: publishes from A's leaf (NATS and MQTT) into B's subjects and
	// into subjects outside A's never reach the hub. A marker A may send
	// follows them on the same link, so when it arrives, they would have.
	local := natsConn(t, n)
	sensor := mqttClient(t, n.MQTT().Addr(), "sensor-a", nil)
	// sendMarker repeats a marker of A's own until the hub has it: until
	// the hub's interest reached the leaf, it may stay local. Anything
	// else from A arriving first fails the test.
	sendMarker := func(subj string) {
		waitfor.For(t, 10*time.Second, func() error {
			local.Publish(subj, nil)
			for {
				m, err := seen1.NextMsg(200 * time.Millisecond)
				if err != nil {
					return err
				}
				switch {
				case m.Subject == subj:
					return nil
				case !strings.HasPrefix(m.Subject, "telemetry.dev-a.marker"):
					t.Fatalf("the hub got %s from device A", m.Subject)
				}
			}
		})
	}
	sendMarker("telemetry.dev-a.marker1")
	for _, subj := range []string{"telemetry.dev-b.temp", "cmd.dev-b.x", "other.subject"} {
		local.Publish(subj, []byte("nats"))
		publish(t, sensor, strings.ReplaceAll(subj, ".", "/"), 1, false, "mqtt")
	}
	local.Flush()
	sendMarker("telemetry.dev-a.marker2")

	// Down: subscriptions on A's leaf to B's commands and to tenant-wide
	// subjects get nothing; A's own commands arrive, after anything the
	// hub would have sent them first.
	mine, theirs := newCollector(), newCollector()
	listener := mqttClient(t, n.MQTT().Addr(), "listener-a", nil)
	subscribe(t, listener, "cmd/dev-b/#", 1, theirs)
	subscribe(t, listener, "telemetry/#", 1, theirs)
	subscribe(t, listener, "cmd/dev-a/#", 1, mine)
	natsTheirs, _ := local.SubscribeSync("cmd.dev-b.>")
	local.Flush()
	waitfor.For(t, 10*time.Second, func() error {
		t1.Publish("cmd.dev-a.ping", nil)
		select {
		case <-mine.ch:
			return nil
		case <-time.After(200 * time.Millisecond):
			return errorString("device A's own command did not arrive")
		}
	})
	t1.Publish("cmd.dev-b.reboot", []byte("for B"))
	t1.Publish("telemetry.dev-b.temp", []byte("B's data"))
	t1.Publish("cmd.dev-a.last", nil)
	for m := mine.next(t); m.topic != "cmd/dev-a/last"; m = mine.next(t) {
	}
	theirs.none(t)
	if m, err := natsTheirs.NextMsg(0); err == nil {
		t.Fatalf("NATS client on A's leaf got %s", m.Subject)
	}
	// And tenant t2 saw nothing of t1 at all.
	t2.Publish("t2.marker", nil)
	if m, err := seen2.NextMsg(10 * time.Second); err != nil || m.Subject != "t2.marker" {
		t.Fatalf("tenant t2 saw %v (err %v) before its own marker", m, err)
	}
}

func TestFleetRevokedLeafIsCutOffAndStaysOut(t *testing.T) {
	h, keys, admin := operatorHub(t)
	n := linkedLeaf(t, h, deviceCreds(t, keys, "t1", "pi-001"))
	generation := n.Uplink().Generation()

	accountJWT, err := keys.RevokeDevice("t1", "pi-001")
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, err := admin.PushAccount(accountJWT); err != nil {
		t.Fatal(err)
	}
	waitfor.For(t, 5*time.Second, func() error {
		if n.Uplink().Up() {
			return errorString("leaf still linked")
		}
		return nil
	})
	t.Logf("revoked leaf cut off %v after the push", time.Since(start).Round(time.Millisecond))
	// It keeps trying and the hub keeps refusing: after several failed
	// attempts it has never linked again.
	waitfor.For(t, 15*time.Second, func() error {
		if s := n.Uplink().Stats(); !strings.Contains(strings.ToLower(s.LastError), "authorization") {
			return errorString("last error: " + s.LastError)
		}
		return nil
	})
	if g := n.Uplink().Generation(); g != generation {
		t.Fatalf("revoked leaf linked again (%d links, was %d)", g, generation)
	}
}

func TestHeartbeatReachesTheHub(t *testing.T) {
	h, keys, admin := operatorHub(t)
	linkedLeaf(t, h, deviceCreds(t, keys, "t1", "pi-001"))
	waitfor.For(t, 10*time.Second, func() error {
		beats, err := admin.Heartbeats(context.Background(), "t1")
		if err != nil {
			return err
		}
		b, ok := beats["pi-001"]
		switch {
		case !ok:
			return errorString("no heartbeat from pi-001 yet")
		case !b.Online(time.Now()) || b.Link.URL == "" || b.Version == "" || b.Interval <= 0:
			t.Fatalf("heartbeat %+v: want online, with its link and version", b)
		}
		return nil
	})
	// Tenant t2 sees nothing of it.
	if beats, err := admin.Heartbeats(context.Background(), "t2"); err != nil || len(beats) != 0 {
		t.Fatalf("tenant t2 sees %v (err %v)", beats, err)
	}
}

// The device's own services (the stream replay API, firmware served on
// the LAN) are local: their subscriptions are not announced to the hub,
// which would refuse them under the device's permissions.
func TestDeviceServicesStayOffTheUplink(t *testing.T) {
	h, keys, _ := operatorHub(t)
	creds := deviceCreds(t, keys, "t1", "pi-007")
	tenant, err := keys.Tenant("t1")
	if err != nil {
		t.Fatal(err)
	}
	on := true
	n, logs, _ := runLeaf(t, leafWithMQTT(func(c *leaf.Config) {
		c.ServerName = ""
		c.Uplink = uplink.Config{URLs: []string{h.LeafNodeURL()}, Credentials: creds}
		c.Streams = []stream.Config{{Name: "sensors", Subjects: []string{"sensors.>"}}}
		c.Firmware = agent.Config{
			Enabled:     &on,
			TrustedKeys: []string{tenant.FirmwareKey},
			Installers:  map[string]agent.InstallerConfig{"sensor-fw": {Path: filepath.Join(t.TempDir(), "fw.bin"), ServeLocal: true}},
		}
	}))
	waitLinked(t, n)
	// A message through the hub: the link announces the leaf's interest
	// (or refuses it, and logs so) before it carries anything.
	hubSide := tenantConn(t, h, keys, "t1")
	sub, err := hubSide.SubscribeSync("telemetry.pi-007.ping")
	if err != nil {
		t.Fatal(err)
	}
	hubSide.Flush()
	nc, err := nats.Connect(n.NATSURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	waitfor.For(t, 10*time.Second, func() error {
		nc.Publish("telemetry.pi-007.ping", nil)
		if _, err := sub.NextMsg(200 * time.Millisecond); err != nil {
			return errorString("no message through the hub yet")
		}
		return nil
	})
	if _, err := nc.Request("$CANOPY.STREAM.sensors.INFO", nil, 5*time.Second); err != nil {
		t.Fatalf("replay API: %v", err)
	}
	for _, local := range []string{"$CANOPY", "firmware.sensor-fw.get"} {
		if got := logs.Count(local); got != 0 {
			t.Fatalf("the leaf offered %s to the hub (%d log lines):\n%s", local, got, logs)
		}
	}
}
