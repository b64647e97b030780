package stream_test

import (
	"fmt"
	"strconv"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/nats-io/nats.go"

	"github.com/canopy-iot/canopy/internal/faultproxy"
	"github.com/canopy-iot/canopy/internal/wait"
)

// An MQTT sensor publishing at QoS 1 into a leaf stream while the link to
// the hub is cut and restored: every message the leaf acknowledged reaches
// the hub's JetStream exactly once, in order.
func TestIntegrationMQTTIntoStreamAcrossLinkCuts(t *testing.T) {
	hub, seedFile, hubStream := startHub(t)
	proxy := faultproxy.New(t, leafPort(t, hub))
	n, _ := startLeaf(t, proxy.Addr(), seedFile, nil)
	c := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + n.MQTT().Addr()).
		SetClientID("sensor").SetAutoReconnect(false).SetConnectTimeout(5 * time.Second))
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("MQTT connect: %v", tok.Error())
	}
	defer c.Disconnect(0)

	const total, cuts = 2000, 10
	done := cutRepeatedly(t, proxy, n, cuts, 32<<10)
	// A window of QoS 1 publishes in flight, as a sensor library keeps.
	var window []paho.Token
	for i := range total {
		window = append(window, c.Publish("sensors/temp", 1, false, strconv.Itoa(i)))
		if len(window) == 64 || i == total-1 {
			for _, tok := range window {
				if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
					t.Fatalf("PUBACK for message %d: %v", i, tok.Error())
				}
			}
			window = window[:0]
		}
	}
	<-done
	checkHubStream(t, hubStream, total)
}

// MQTT subscriptions are interest at the hub like NATS ones: a command
// published at the hub reaches an MQTT subscriber on the device at its
// QoS, and an MQTT publish reaches a subscriber at the hub.
func TestIntegrationMQTTThroughTheHub(t *testing.T) {
	hub, seedFile, _ := startHub(t)
	n, _ := startLeaf(t, leafPort(t, hub), seedFile, nil)
	got := make(chan paho.Message, 10)
	c := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + n.MQTT().Addr()).
		SetClientID("actuator").SetAutoReconnect(false).
		SetDefaultPublishHandler(func(_ paho.Client, m paho.Message) { got <- m }))
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("MQTT connect: %v", tok.Error())
	}
	defer c.Disconnect(0)
	if tok := c.Subscribe("cmd/pi-001/#", 2, nil); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("MQTT subscribe: %v", tok.Error())
	}
	acc, err := hub.LookupAccount("ACME")
	if err != nil {
		t.Fatal(err)
	}
	wait.For(t, 10*time.Second, func() error {
		if !acc.SubscriptionInterest("cmd.pi-001.reboot") {
			return fmt.Errorf("the hub has no interest in cmd.pi-001.reboot yet")
		}
		return nil
	})
	hc, err := nats.Connect(hub.ClientURL(), nats.UserInfo("app", "pw"))
	if err != nil {
		t.Fatal(err)
	}
	defer hc.Close()
	hc.Publish("cmd.pi-001.reboot", []byte("now"))
	select {
	case m := <-got:
		if m.Topic() != "cmd/pi-001/reboot" || string(m.Payload()) != "now" || m.Qos() != 2 {
			t.Fatalf("got %s %q QoS %d", m.Topic(), m.Payload(), m.Qos())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the hub's command did not reach the MQTT subscriber")
	}

	hubSub, _ := hc.SubscribeSync("alarms.>")
	hc.Flush()
	wait.For(t, 10*time.Second, func() error {
		if !n.Uplink().Up() {
			return fmt.Errorf("uplink down")
		}
		return nil
	})
	// The hub's interest reaches the leaf asynchronously: publish until it
	// arrives (each publish is a fresh attempt, none is counted twice).
	deadline := time.Now().Add(10 * time.Second)
	for {
		if tok := c.Publish("alarms/smoke", 1, false, "kitchen"); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatalf("MQTT publish: %v", tok.Error())
		}
		if m, err := hubSub.NextMsg(200 * time.Millisecond); err == nil {
			if m.Subject != "alarms.smoke" || string(m.Data) != "kitchen" {
				t.Fatalf("hub got %s %q", m.Subject, m.Data)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the MQTT publish never reached the hub")
		}
	}
}
