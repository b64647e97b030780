package leaf_test

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	waitfor "github.com/canopy-iot/canopy/internal/wait"
	"github.com/canopy-iot/canopy/leaf"
	"github.com/canopy-iot/canopy/leaf/uplink"
)

func TestCommandsQueuedWhileOfflineArriveOnceInOrder(t *testing.T) {
	h, keys, _ := operatorHub(t)
	creds := deviceCreds(t, keys, "t1", "pi-001")
	dataDir := t.TempDir()
	cfg := leafWithMQTT(func(c *leaf.Config) {
		c.ServerName = ""
		c.DataDir = dataDir
		c.Uplink = uplink.Config{URLs: []string{h.LeafNodeURL()}, Credentials: creds}
	})
	js, err := jetstream.New(tenantConn(t, h, keys, "t1"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	send := func(subj, payload string) {
		t.Helper()
		if _, err := js.Publish(ctx, subj, []byte(payload)); err != nil {
			t.Fatalf("command %s: %v", subj, err)
		}
	}

	// Online: a command reaches a NATS and an MQTT subscriber on the device.
	n, _, stop := runLeaf(t, cfg)
	local := natsConn(t, n)
	sub, _ := local.SubscribeSync("cmd.pi-001.>")
	local.Flush()
	listener := mqttClient(t, n.MQTT().Addr(), "listener", nil)
	got := newCollector()
	subscribe(t, listener, "cmd/pi-001/#", 1, got)
	send("cmd.pi-001.hello", "0")
	if m, err := sub.NextMsg(10 * time.Second); err != nil || m.Subject != "cmd.pi-001.hello" {
		t.Fatalf("online command: %v (err %v)", m, err)
	}
	if m := got.next(t); m.topic != "cmd/pi-001/hello" {
		t.Fatalf("MQTT got %+v", m)
	}
	stop()

	// Offline: commands wait in the hub's stream.
	const offline = 100
	for i := 1; i <= offline; i++ {
		send("cmd.pi-001.set", strconv.Itoa(i))
	}

	// Back: every command, in order, once, then whatever comes next.
	n2, _, _ := runLeaf(t, cfg)
	local2 := natsConn(t, n2)
	sub2, _ := local2.SubscribeSync("cmd.pi-001.>")
	local2.Flush()
	for i := 1; i <= offline; i++ {
		m, err := sub2.NextMsg(15 * time.Second)
		if err != nil {
			t.Fatalf("command %d after reconnect: %v", i, err)
		}
		if string(m.Data) != strconv.Itoa(i) {
			t.Fatalf("command %d: got %q on %s", i, m.Data, m.Subject)
		}
	}
	send("cmd.pi-001.last", "last")
	if m, err := sub2.NextMsg(10 * time.Second); err != nil || string(m.Data) != "last" {
		t.Fatalf("after the backlog: %v (err %v), want only the new command", m, err)
	}
	// The hub knows every command was taken.
	waitfor.For(t, 10*time.Second, func() error {
		c, err := js.Consumer(ctx, "COMMANDS", "pi-001")
		if err != nil {
			return err
		}
		info, err := c.Info(ctx)
		if err != nil {
			return err
		}
		if info.NumAckPending != 0 || info.NumPending != 0 {
			return fmt.Errorf("consumer has %d unacknowledged, %d pending", info.NumAckPending, info.NumPending)
		}
		return nil
	})
}
