package uplink_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/canopy-iot/canopy/internal/wait"
	"github.com/canopy-iot/canopy/leaf/uplink"
)

func TestIntegrationMessagesBothWays(t *testing.T) {
	dev := newDevice(t)
	hub := startHub(t, hubOpts(t, dev, nil))
	leaf := startLeaf(t, uplink.Config{URLs: []string{leafURL(hub)}, NKeySeedFile: dev.seedFile})
	leaf.waitConnected(t)

	var leafz server.Leafz
	if lz, err := hub.Leafz(nil); err != nil || len(lz.Leafs) != 1 {
		t.Fatalf("/leafz: %v %+v", err, lz)
	} else {
		leafz = *lz
	}
	if l := leafz.Leafs[0]; l.Account != "ACME" || l.Name != "leaf-under-test" {
		t.Fatalf("hub sees leaf %+v, want account ACME, name leaf-under-test", l)
	}

	hubClient := connect(t, hub.ClientURL(), nats.UserInfo("app", "pw"))
	local := connect(t, leaf.srv.ClientURL())

	// leaf → hub, with a wildcard subscriber on the hub.
	up, _ := hubClient.SubscribeSync("telemetry.>")
	hubClient.Flush()
	m := deliverEventually(t, func() error { return local.Publish("telemetry.kitchen.temp", []byte("21.5")) }, up)
	if m.Subject != "telemetry.kitchen.temp" || string(m.Data) != "21.5" {
		t.Fatalf("hub got %s %q", m.Subject, m.Data)
	}

	// hub → leaf, with a wildcard subscriber on the leaf.
	down, _ := local.SubscribeSync("cmd.*")
	local.Flush()
	m = deliverEventually(t, func() error { return hubClient.Publish("cmd.reboot", []byte("now")) }, down)
	if m.Subject != "cmd.reboot" || string(m.Data) != "now" {
		t.Fatalf("leaf got %s %q", m.Subject, m.Data)
	}

	// Headers survive both directions.
	drain(up)
	msg := nats.NewMsg("telemetry.h")
	msg.Header.Add("Unit", "C")
	msg.Header.Add("Unit", "K")
	msg.Data = []byte("x")
	if err := local.PublishMsg(msg); err != nil {
		t.Fatal(err)
	}
	if m, err := up.NextMsg(5 * time.Second); err != nil || len(m.Header.Values("Unit")) != 2 || string(m.Data) != "x" {
		t.Fatalf("headers leaf→hub: %v %v", m, err)
	}
	drain(down)
	msg = nats.NewMsg("cmd.h")
	msg.Header.Set("Trace", "abc")
	hubClient.PublishMsg(msg)
	if m, err := down.NextMsg(5 * time.Second); err != nil || m.Header.Get("Trace") != "abc" {
		t.Fatalf("headers hub→leaf: %v %v", m, err)
	}

	// Request/reply: a leaf client calls a hub service, and a hub client a
	// leaf service.
	hubClient.Subscribe("svc.hub", func(m *nats.Msg) { m.Respond(append([]byte("hub:"), m.Data...)) })
	local.Subscribe("svc.leaf", func(m *nats.Msg) { m.Respond(append([]byte("leaf:"), m.Data...)) })
	hubClient.Flush()
	local.Flush()
	wait.For(t, 10*time.Second, func() error {
		r, err := local.Request("svc.hub", []byte("a"), 500*time.Millisecond)
		if err != nil {
			return err
		}
		if string(r.Data) != "hub:a" {
			return fmt.Errorf("reply %q", r.Data)
		}
		return nil
	})
	wait.For(t, 10*time.Second, func() error {
		r, err := hubClient.Request("svc.leaf", []byte("b"), 500*time.Millisecond)
		if err != nil {
			return err
		}
		if string(r.Data) != "leaf:b" {
			return fmt.Errorf("reply %q", r.Data)
		}
		return nil
	})

	// A local request nobody answers, here or at the hub, still fails at
	// once with no responders.
	if _, err := local.Request("nobody.anywhere", nil, 2*time.Second); err != nats.ErrNoResponders {
		t.Fatalf("request to nobody: %v", err)
	}

	s := leaf.up.Stats()
	if s.MsgsOut == 0 || s.MsgsIn == 0 || s.BytesIn == 0 || s.BytesOut == 0 || s.Since.IsZero() {
		t.Fatalf("stats not counting: %+v", s)
	}
}

// Canopy's own parts talk to the hub through an internal client of the
// local server, routed like any local client.
func TestIntegrationInternalClientAcrossTheLink(t *testing.T) {
	dev := newDevice(t)
	hub := startHub(t, hubOpts(t, dev, nil))
	leaf := startLeaf(t, uplink.Config{URLs: []string{leafURL(hub)}, NKeySeedFile: dev.seedFile})
	leaf.waitConnected(t)
	hubClient := connect(t, hub.ClientURL(), nats.UserInfo("app", "pw"))
	in := leaf.srv.NewInternal("test")
	defer in.Close()

	up, _ := hubClient.SubscribeSync("telemetry.internal")
	hubClient.Flush()
	deliverEventually(t, func() error {
		in.Publish([]byte("telemetry.internal"), nil, nil, []byte("x"))
		return nil
	}, up)

	got := make(chan struct{}, 100)
	if _, err := in.Subscribe("cmd.internal", "", func(_, _, _, _ []byte) { got <- struct{}{} }); err != nil {
		t.Fatal(err)
	}
	wait.For(t, 10*time.Second, func() error {
		hubClient.Publish("cmd.internal", nil)
		select {
		case <-got:
			return nil
		case <-time.After(100 * time.Millisecond):
			return fmt.Errorf("internal subscription not reached from the hub")
		}
	})
}
