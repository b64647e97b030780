package leaf_test

import (
	"fmt"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// A sensor's messages land on the same NATS subjects whether it connects
// to canopy-leaf or to nats-server's own MQTT listener, awkward topics
// included; what nats-server cannot carry, the leaf refuses too.
func TestMQTTSubjectsMatchNATSServer(t *testing.T) {
	o := &server.Options{
		ServerName: "mqtt-ref", Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true,
		JetStream: true, StoreDir: t.TempDir(),
	}
	o.MQTT.Host, o.MQTT.Port = "127.0.0.1", -1
	ref, err := server.NewServer(o)
	if err != nil {
		t.Fatal(err)
	}
	go ref.Start()
	if !ref.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	t.Cleanup(ref.Shutdown)
	v, err := ref.Varz(nil)
	if err != nil {
		t.Fatal(err)
	}
	refMQTT := fmt.Sprintf("127.0.0.1:%d", v.MQTT.Port)

	n, _, _ := runLeaf(t, leafWithMQTT(nil))
	observe := func(natsURL, mqttAddr, topic string) string {
		t.Helper()
		nc, err := nats.Connect(natsURL)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		sub, _ := nc.SubscribeSync(">")
		nc.Flush()
		lost := make(chan struct{})
		c := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + mqttAddr).SetClientID("probe").
			SetAutoReconnect(false).SetConnectionLostHandler(func(paho.Client, error) { close(lost) }))
		if err := wait(c.Connect()); err != nil {
			t.Fatal(err)
		}
		defer c.Disconnect(0)
		// The marker follows the probe on the same connection: when it
		// arrives, the probe would have. A server that refuses the probe
		// by closing the connection never sends the marker.
		c.Publish(topic, 0, false, "x")
		c.Publish("compat/marker", 0, false, "m")
		msgs := make(chan *nats.Msg, 16)
		go func() {
			for {
				m, err := sub.NextMsg(10 * time.Second)
				if err != nil {
					close(msgs)
					return
				}
				msgs <- m
			}
		}()
		for {
			select {
			case m, ok := <-msgs:
				switch {
				case !ok:
					t.Fatalf("%s: nothing, not even the marker", topic)
				case m.Subject == "compat.marker":
					return "refused"
				case string(m.Data) == "x":
					return m.Subject
				}
			case <-lost:
				return "refused"
			}
		}
	}
	for _, topic := range []string{
		"a/b/c", "/a", "a/", "/a/", "a//b", "//", "/",
		"a.b/c", "a/b.c.d", "sensors/kitchen.temp", ".", "a/./b",
		"$foo/bar", "unicode/température", "a b/c", "a\tb",
	} {
		want := observe(ref.ClientURL(), refMQTT, topic)
		got := observe(n.NATSURL(), n.MQTT().Addr(), topic)
		if got != want {
			t.Errorf("topic %q: canopy-leaf gives %s, nats-server %s", topic, got, want)
		}
	}
}
