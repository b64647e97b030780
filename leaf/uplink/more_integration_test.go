package uplink_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/canopy-iot/canopy/internal/testcert"
	"github.com/canopy-iot/canopy/internal/wait"
	"github.com/canopy-iot/canopy/leaf/uplink"
)

// The hub requires TLS from a test CA: the leaf verifies the hub's
// certificate and connects; a leaf that trusts another CA is refused.
func TestIntegrationTLS(t *testing.T) {
	certs := testcert.Write(t, t.TempDir())
	dev := newDevice(t)
	o := hubOpts(t, dev, nil)
	tc, err := server.GenTLSConfig(&server.TLSConfigOpts{CertFile: certs.Cert, KeyFile: certs.Key})
	if err != nil {
		t.Fatal(err)
	}
	o.LeafNode.TLSConfig = tc
	hub := startHub(t, o)
	url := strings.Replace(leafURL(hub), "nats-leaf://", "tls://", 1)

	leaf := startLeaf(t, uplink.Config{URLs: []string{url}, NKeySeedFile: dev.seedFile, TLS: uplink.TLS{CAFile: certs.CA}})
	leaf.waitConnected(t)
	hubClient := connect(t, hub.ClientURL(), nats.UserInfo("app", "pw"))
	sub, _ := hubClient.SubscribeSync("telemetry.>")
	hubClient.Flush()
	local := connect(t, leaf.srv.ClientURL())
	deliverEventually(t, func() error { return local.Publish("telemetry.secure", nil) }, sub)
	lz, _ := hub.Leafz(nil)
	if len(lz.Leafs) != 1 {
		t.Fatalf("leafz: %+v", lz)
	}

	// The same hub reached as nats-leaf:// still gets TLS: the hub's INFO
	// asks for it.
	plainURL := leafURL(hub)
	leaf2 := startLeaf(t, uplink.Config{URLs: []string{plainURL}, Name: "second", NKeySeedFile: dev.seedFile, TLS: uplink.TLS{CAFile: certs.CA}})
	leaf2.waitConnected(t)

	other := testcert.Write(t, t.TempDir())
	bad := startLeaf(t, uplink.Config{URLs: []string{url}, Name: "bad", NKeySeedFile: dev.seedFile, TLS: uplink.TLS{CAFile: other.CA}})
	wait.For(t, 10*time.Second, func() error {
		if s := bad.up.Stats(); !strings.Contains(s.LastError, "certificate") {
			return fmt.Errorf("last error %q", s.LastError)
		}
		return nil
	})
	if bad.up.Stats().Connected {
		t.Fatal("a leaf trusting another CA connected")
	}
}

// 200 leaves in one process on one hub: all connect, and one broadcast
// from the hub reaches a subscriber on every leaf.
func TestIntegrationTwoHundredLeaves(t *testing.T) {
	if testing.Short() {
		t.Skip("starts 200 leaves")
	}
	const n = 200
	dev := newDevice(t)
	hub := startHub(t, hubOpts(t, dev, nil))
	var got atomic.Int64
	received := make([]atomic.Bool, n)
	for i := range n {
		leaf := startLeaf(t, uplink.Config{URLs: []string{leafURL(hub)}, Name: fmt.Sprintf("dev-%03d", i), NKeySeedFile: dev.seedFile})
		nc := connect(t, leaf.srv.ClientURL())
		nc.Subscribe("fleet.broadcast", func(*nats.Msg) {
			if !received[i].Swap(true) {
				got.Add(1)
			}
		})
	}
	wait.For(t, 60*time.Second, func() error {
		lz, err := hub.Leafz(nil)
		if err != nil {
			return err
		}
		if len(lz.Leafs) != n {
			return fmt.Errorf("%d of %d leaves connected", len(lz.Leafs), n)
		}
		return nil
	})
	hubClient := connect(t, hub.ClientURL(), nats.UserInfo("app", "pw"))
	wait.For(t, 60*time.Second, func() error {
		hubClient.Publish("fleet.broadcast", []byte("hello fleet"))
		hubClient.Flush()
		if g := got.Load(); g != n {
			return fmt.Errorf("broadcast reached %d of %d leaves", g, n)
		}
		return nil
	})
}

// Debian's nats-server 2.9 as the hub: the leafnode protocol of an older
// hub works too.
func TestIntegrationDebianNATSServerHub(t *testing.T) {
	bin, err := exec.LookPath("nats-server")
	if err != nil {
		bin = "/usr/sbin/nats-server"
	}
	if _, err := os.Stat(bin); err != nil {
		t.Skip("Debian's nats-server is not installed (apt-get install nats-server; .ci/run does it)")
	}
	dev := newDevice(t)
	ports := reserveAddrs(t, 2)
	conf := fmt.Sprintf(`
listen: %q
leafnodes { listen: %q }
accounts {
  ACME { users: [ {nkey: %q}, {user: app, password: pw} ] }
}
`, ports[0], ports[1], dev.public)
	file := filepath.Join(t.TempDir(), "hub.conf")
	if err := os.WriteFile(file, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-c", file)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	var hubClient *nats.Conn
	wait.For(t, 10*time.Second, func() error {
		nc, err := nats.Connect("nats://"+ports[0], nats.UserInfo("app", "pw"))
		hubClient = nc
		return err
	})
	t.Cleanup(hubClient.Close)
	t.Logf("hub is nats-server %s", hubClient.ConnectedServerVersion())

	leaf := startLeaf(t, uplink.Config{URLs: []string{"nats-leaf://" + ports[1]}, NKeySeedFile: dev.seedFile})
	leaf.waitConnected(t)
	local := connect(t, leaf.srv.ClientURL())
	up, _ := hubClient.SubscribeSync("telemetry.>")
	hubClient.Flush()
	deliverEventually(t, func() error { return local.Publish("telemetry.old-hub", []byte("x")) }, up)
	down, _ := local.SubscribeSync("cmd.>")
	local.Flush()
	deliverEventually(t, func() error { return hubClient.Publish("cmd.go", []byte("y")) }, down)
	local.Subscribe("svc.leaf", func(m *nats.Msg) { m.Respond([]byte("from leaf")) })
	local.Flush()
	wait.For(t, 10*time.Second, func() error {
		_, err := hubClient.Request("svc.leaf", nil, 500*time.Millisecond)
		return err
	})
}
