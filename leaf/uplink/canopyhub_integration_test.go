package uplink_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/canopy-iot/canopy/hub"
	"github.com/canopy-iot/canopy/leaf/uplink"
)

// The two halves of Canopy together: a canopy-hub configured from its own
// Config (an account with the device's NKey), and a leaf linking up to it.
func TestIntegrationWithCanopyHub(t *testing.T) {
	dev := newDevice(t)
	h, err := hub.New(hub.Config{
		Listen: "127.0.0.1:0", HTTPListen: "127.0.0.1:0",
		LeafNodes: hub.LeafNodes{Listen: "127.0.0.1:0"},
		JetStream: hub.JetStream{StoreDir: t.TempDir(), Domain: "hub"},
		Accounts: map[string]hub.Account{"acme": {JetStream: true, Users: []hub.User{
			{NKey: dev.public, Publish: []string{"telemetry.>", "_INBOX.>", "$JS.hub.API.>", "$JS.ACK.>"}, Subscribe: []string{"cmd.>", "_INBOX.>"}},
			{User: "ops", Password: "ops-secret"},
		}}},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	select {
	case <-h.Ready():
	case err := <-done:
		t.Fatal(err)
	case <-time.After(30 * time.Second):
		t.Fatal("hub not ready")
	}

	leaf := startLeaf(t, uplink.Config{URLs: []string{h.LeafNodeURL()}, NKeySeedFile: dev.seedFile})
	leaf.waitConnected(t)
	if s := leaf.up.Stats(); !s.Connected {
		t.Fatal("not connected")
	}
	ops := connect(t, h.ClientURL(), nats.UserInfo("ops", "ops-secret"))
	local := connect(t, leaf.srv.ClientURL())
	up, _ := ops.SubscribeSync("telemetry.>")
	ops.Flush()
	deliverEventually(t, func() error { return local.Publish("telemetry.pi.temp", []byte("20")) }, up)
	down, _ := local.SubscribeSync("cmd.>")
	local.Flush()
	deliverEventually(t, func() error { return ops.Publish("cmd.pi.reboot", nil) }, down)
}
