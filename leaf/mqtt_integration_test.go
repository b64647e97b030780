package leaf_test

import (
	"fmt"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/nats-io/nats.go"

	"github.com/canopy-iot/canopy/leaf"
)

// MQTT and NATS are one subject space: each side reaches the other, with
// wildcards both ways, and each subscriber gets a message once.
func TestMQTTBridgesToNATS(t *testing.T) {
	n, _, _ := runLeaf(t, leafWithMQTT(nil))
	addr := n.MQTT().Addr()
	nc := natsConn(t, n)
	sub := newCollector()
	subscriber := mqttClient(t, addr, "subscriber", func(o *paho.ClientOptions) { o.SetDefaultPublishHandler(sub.handler) })
	publisher := mqttClient(t, addr, "publisher", nil)

	t.Run("MQTT to NATS", func(t *testing.T) {
		exact, _ := nc.SubscribeSync("sensors.kitchen.temp")
		wild, _ := nc.SubscribeSync("sensors.*.temp")
		nc.Flush()
		publish(t, publisher, "sensors/kitchen/temp", 1, false, "21.5")
		for _, s := range []*nats.Subscription{exact, wild} {
			m, err := s.NextMsg(5 * time.Second)
			if err != nil {
				t.Fatalf("%s: %v", s.Subject, err)
			}
			if m.Subject != "sensors.kitchen.temp" || string(m.Data) != "21.5" || m.Header.Get("Nmqtt-Pub") != "1" {
				t.Fatalf("%s got %s %q %v", s.Subject, m.Subject, m.Data, m.Header)
			}
		}
	})

	t.Run("NATS to MQTT at the subscriber's QoS", func(t *testing.T) {
		for qos := byte(0); qos <= 2; qos++ {
			filter := fmt.Sprintf("cmd/q%d/+", qos)
			subscribe(t, subscriber, filter, qos, nil)
			nc.Publish(fmt.Sprintf("cmd.q%d.reboot", qos), []byte("now"))
			m := sub.next(t)
			if m.topic != fmt.Sprintf("cmd/q%d/reboot", qos) || m.payload != "now" || m.qos != qos {
				t.Fatalf("QoS %d subscriber got %+v", qos, m)
			}
		}
	})

	t.Run("MQTT to MQTT once, NATS too", func(t *testing.T) {
		natsSub, _ := nc.SubscribeSync("room.>")
		nc.Flush()
		subscribe(t, subscriber, "room/#", 1, nil)
		subscribe(t, subscriber, "room/+", 1, nil) // overlapping
		publish(t, publisher, "room/1", 1, false, "hello")
		if m := sub.next(t); m.topic != "room/1" || m.payload != "hello" {
			t.Fatalf("got %+v", m)
		}
		if m, err := natsSub.NextMsg(5 * time.Second); err != nil || m.Subject != "room.1" {
			t.Fatalf("NATS: %v %v", m, err)
		}
		// From NATS as well: once, through both filters.
		nc.Publish("room.2", []byte("from nats"))
		if m := sub.next(t); m.topic != "room/2" {
			t.Fatalf("got %+v", m)
		}
		// A marker after both: anything doubled would have come before it.
		subscribe(t, subscriber, "marker/#", 0, nil)
		nc.Publish("marker.2", nil)
		if m := sub.next(t); m.topic != "marker/2" {
			t.Fatalf("got %+v, want the marker", m)
		}
		sub.none(t)
		// nats.go echoes its own publishes: room.2 once, then nothing.
		if m, err := natsSub.NextMsg(5 * time.Second); err != nil || m.Subject != "room.2" {
			t.Fatalf("NATS: %v %v, want its own room.2", m, err)
		}
		nc.Publish("room.marker", nil)
		if m, err := natsSub.NextMsg(5 * time.Second); err != nil || m.Subject != "room.marker" {
			t.Fatalf("NATS subscriber got %v %v, want the marker", m, err)
		}
		if m := sub.next(t); m.topic != "room/marker" {
			t.Fatalf("got %+v, want room/marker", m)
		}
	})

	t.Run("a/# matches a", func(t *testing.T) {
		subscribe(t, subscriber, "parent/#", 0, nil)
		nc.Publish("parent", []byte("p"))
		nc.Publish("parent.child.grandchild", []byte("c"))
		for _, want := range []string{"parent", "parent/child/grandchild"} {
			if m := sub.next(t); m.topic != want {
				t.Fatalf("got %+v, want topic %s", m, want)
			}
		}
	})

	t.Run("an MQTT publisher's QoS caps delivery across NATS", func(t *testing.T) {
		subscribe(t, subscriber, "capped/#", 2, nil)
		m := nats.NewMsg("capped.x")
		m.Header.Set("Nmqtt-Pub", "0")
		m.Header.Set("unit", "celsius")
		nc.PublishMsg(m)
		if got := sub.next(t); got.qos != 0 {
			t.Fatalf("got QoS %d, want the publisher's 0", got.qos)
		}
	})
}

// A retained message survives a leaf restart, and a persistent session
// gets, after reconnecting across a restart, the QoS 1 messages it missed.
func TestMQTTStateSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	cfg := leafWithMQTT(func(c *leaf.Config) { c.DataDir = dir })
	n, _, stop := runLeaf(t, cfg)
	addr := n.MQTT().Addr()
	persistent := func(o *paho.ClientOptions) { o.SetCleanSession(false) }

	offline := mqttClient(t, addr, "offline-sensor-reader", persistent)
	subscribe(t, offline, "alerts/#", 1, newCollector())
	offline.Disconnect(100)

	pub := mqttClient(t, addr, "pub", nil)
	publish(t, pub, "config/interval", 1, true, "30s")
	nc := natsConn(t, n)
	for i := range 5 {
		publish(t, pub, "alerts/fire", 1, false, fmt.Sprintf("mqtt %d", i))
		nc.Publish("alerts.flood", []byte(fmt.Sprintf("nats %d", i)))
	}
	nc.Flush()
	pub.Disconnect(100)
	nc.Close()
	stop()

	// Same data directory, new ports.
	n2, _, _ := runLeaf(t, cfg)
	addr = n2.MQTT().Addr()
	retained := newCollector()
	fresh := mqttClient(t, addr, "fresh", nil)
	subscribe(t, fresh, "config/+", 1, retained)
	if m := retained.next(t); m.topic != "config/interval" || m.payload != "30s" || !m.retain {
		t.Fatalf("retained after restart: %+v", m)
	}

	missed := newCollector()
	mqttClient(t, addr, "offline-sensor-reader", func(o *paho.ClientOptions) {
		persistent(o)
		o.SetDefaultPublishHandler(missed.handler)
	})
	got := map[string]int{}
	for range 10 {
		m := missed.next(t)
		got[m.payload]++
	}
	for i := range 5 {
		for _, p := range []string{fmt.Sprintf("mqtt %d", i), fmt.Sprintf("nats %d", i)} {
			if got[p] != 1 {
				t.Errorf("%q received %d times, want once (all: %v)", p, got[p], got)
			}
		}
	}
	// The session's subscription came back too: live messages flow.
	nc2 := natsConn(t, n2)
	nc2.Publish("alerts.live", []byte("live"))
	if m := missed.next(t); m.payload != "live" {
		t.Fatalf("after reconnect got %+v", m)
	}
}

// A client that vanishes without DISCONNECT has its will published, to
// MQTT and NATS subscribers alike.
func TestMQTTWillOnAbruptDisconnect(t *testing.T) {
	n, _, _ := runLeaf(t, leafWithMQTT(nil))
	addr := n.MQTT().Addr()
	nc := natsConn(t, n)
	natsSub, _ := nc.SubscribeSync("status.sensor-7")
	nc.Flush()
	watcher := newCollector()
	subscribe(t, mqttClient(t, addr, "watcher", nil), "status/+", 1, watcher)

	conn := dialRaw(t, addr)
	conn.Write(connectPacket("sensor-7", "status/sensor-7", "gone", 30))
	readPacket(t, conn) // CONNACK
	conn.Close()        // no DISCONNECT: the will goes out

	if m := watcher.next(t); m.topic != "status/sensor-7" || m.payload != "gone" {
		t.Fatalf("MQTT watcher got %+v", m)
	}
	if m, err := natsSub.NextMsg(5 * time.Second); err != nil || string(m.Data) != "gone" {
		t.Fatalf("NATS watcher: %v %v", m, err)
	}
}
