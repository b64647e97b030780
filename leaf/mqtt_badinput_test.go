package leaf_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/nats-io/nats.go"

	"github.com/canopy-iot/canopy/leaf"
	"github.com/canopy-iot/canopy/leaf/stream"
)

// Bad input from one client is refused clearly and the broker keeps
// serving everyone else.
func TestMQTTBadInput(t *testing.T) {
	n, logs, _ := runLeaf(t, leafWithMQTT(func(c *leaf.Config) { c.MQTT.MaxPacketSize = 1024 }))
	addr := n.MQTT().Addr()
	bystander := newCollector()
	subscribe(t, mqttClient(t, addr, "bystander", nil), "ok/#", 0, bystander)
	pub := mqttClient(t, addr, "good", nil)
	stillServed := func(t *testing.T, i int) {
		t.Helper()
		publish(t, pub, fmt.Sprintf("ok/%d", i), 1, false, "fine")
		if m := bystander.next(t); m.topic != fmt.Sprintf("ok/%d", i) {
			t.Fatalf("bystander got %+v", m)
		}
	}

	t.Run("unmappable topic, MQTT 3.1.1: disconnected", func(t *testing.T) {
		conn := dialRaw(t, addr)
		conn.Write(connectPacket("spacey", "", "", 30))
		readPacket(t, conn) // CONNACK
		body := append(mqttString("a b/c"), 0, 1)
		conn.Write(mqttPacket(0x32, append(body, "x"...))) // QoS 1
		if _, _, err := readPacketErr(conn); err == nil {
			t.Fatal("got an answer; want the connection closed")
		}
		if err := logs.Contains(`refused MQTT publish`); err != nil {
			t.Fatal(err)
		}
		stillServed(t, 1)
	})

	t.Run("unmappable subscription: refused in SUBACK", func(t *testing.T) {
		conn := dialRaw(t, addr)
		conn.Write(connectPacket("subber", "", "", 30))
		readPacket(t, conn)
		body := append([]byte{0, 7}, mqttString("tab\there")...)
		conn.Write(mqttPacket(0x82, append(body, 1)))
		kind, ack := readPacket(t, conn)
		if kind != 0x90 || ack[len(ack)-1] != 0x80 {
			t.Fatalf("SUBACK %#x %v, want failure 0x80", kind, ack)
		}
		stillServed(t, 2)
	})

	t.Run("oversized packet", func(t *testing.T) {
		conn := dialRaw(t, addr)
		conn.Write(connectPacket("big", "", "", 30))
		readPacket(t, conn)
		conn.Write(mqttPacket(0x30, append(mqttString("ok/big"), bytes.Repeat([]byte("x"), 2000)...)))
		if _, _, err := readPacketErr(conn); err == nil {
			t.Fatal("got an answer; want the connection closed")
		}
		stillServed(t, 3)
	})

	t.Run("malformed packets", func(t *testing.T) {
		for i, junk := range [][]byte{
			[]byte("GET / HTTP/1.1\r\n\r\n"),
			{0x10, 0xff, 0xff, 0xff, 0xff, 0x7f},            // remaining length over 4 bytes
			{0x10, 0x04, 0, 2, 'X', 'Y'},                    // not MQTT
			mqttPacket(0x10, append(mqttString("MQTT"), 9)), // unknown protocol level, truncated
		} {
			conn := dialRaw(t, addr)
			conn.Write(junk)
			// Whatever the broker answers, it ends the connection.
			for {
				if _, _, err := readPacketErr(conn); err != nil {
					if !errors.Is(err, io.EOF) && !strings.Contains(err.Error(), "reset") {
						t.Fatalf("junk %d: %v, want the connection closed", i, err)
					}
					break
				}
			}
		}
		stillServed(t, 4)
	})
}

// Many MQTT clients publishing at once: every message reaches the NATS
// subscriber.
func TestMQTTThousandClients(t *testing.T) {
	if testing.Short() {
		t.Skip("1,000 MQTT connections")
	}
	n, _, _ := runLeaf(t, leafWithMQTT(nil))
	addr := n.MQTT().Addr()
	nc := natsConn(t, n)
	var received atomic.Int64
	done := make(chan struct{})
	const clients, each = 1000, 20
	nc.Subscribe("swarm.>", func(*nats.Msg) {
		if received.Add(1) == clients*each {
			close(done)
		}
	})
	nc.Flush()

	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			o := paho.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(fmt.Sprintf("swarm-%d", i)).
				SetAutoReconnect(false).SetConnectTimeout(30 * time.Second)
			c := paho.NewClient(o)
			if err := wait(c.Connect()); err != nil {
				errs <- fmt.Errorf("client %d connect: %w", i, err)
				return
			}
			defer c.Disconnect(250)
			var last paho.Token
			for j := range each {
				last = c.Publish(fmt.Sprintf("swarm/%d", i), 0, false, fmt.Sprint(j))
			}
			if err := wait(last); err != nil {
				errs <- fmt.Errorf("client %d publish: %w", i, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatalf("received %d of %d messages", received.Load(), clients*each)
	}
}

// Debian's mosquitto clients, an independent MQTT implementation, talk to
// the leaf: mosquitto_pub reaches a NATS subscriber, a NATS publish reaches
// mosquitto_sub.
func TestMQTTWithMosquittoClients(t *testing.T) {
	if _, err := exec.LookPath("mosquitto_sub"); err != nil {
		t.Skip("mosquitto-clients not installed (apt-get install mosquitto-clients)")
	}
	n, _, _ := runLeaf(t, leafWithMQTT(nil))
	host, port := splitAddr(t, n.MQTT().Addr())
	nc := natsConn(t, n)
	natsSub, _ := nc.SubscribeSync("plant.>")
	nc.Flush()
	out, err := exec.Command("mosquitto_pub", "-h", host, "-p", port, "-V", "mqttv5", "-q", "1",
		"-t", "plant/pump/state", "-m", "on", "-D", "publish", "user-property", "source", "mosquitto").CombinedOutput()
	if err != nil {
		t.Fatalf("mosquitto_pub: %v\n%s", err, out)
	}
	m, err := natsSub.NextMsg(5 * time.Second)
	if err != nil || m.Subject != "plant.pump.state" || string(m.Data) != "on" || m.Header.Get("source") != "mosquitto" {
		t.Fatalf("NATS got %+v %v", m, err)
	}

	sub := exec.Command("mosquitto_sub", "-h", host, "-p", port, "-q", "1", "-t", "plant/#", "-C", "1", "-v", "-W", "10")
	stdout, _ := sub.StdoutPipe()
	sub.Stderr = sub.Stdout
	if err := sub.Start(); err != nil {
		t.Fatal(err)
	}
	// mosquitto_sub prints nothing once subscribed: publish until it
	// has a message or gives up (-W 10).
	got := make(chan string, 1)
	go func() { b, _ := io.ReadAll(stdout); got <- string(b) }()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case line := <-got:
			sub.Wait()
			if strings.TrimSpace(line) != "plant/valve open" {
				t.Fatalf("mosquitto_sub printed %q", line)
			}
			return
		case <-tick.C:
			nc.Publish("plant.valve", []byte("open"))
		}
	}
}

func splitAddr(t *testing.T, addr string) (string, string) {
	t.Helper()
	i := strings.LastIndexByte(addr, ':')
	return addr[:i], addr[i+1:]
}

// An MQTT 3.1.1 publisher cannot be told that a full stream refused its
// message: it gets no PUBACK (its library resends later), the log says
// why, and the connection stays open.
func TestMQTT311FullStreamGetsNoAck(t *testing.T) {
	n, logs, _ := runLeaf(t, leafWithMQTT(func(c *leaf.Config) {
		c.Streams = []stream.Config{{Name: "tiny", Subjects: []string{"tiny.>"}, MaxMsgs: 1, Discard: "new"}}
	}))
	conn := dialRaw(t, n.MQTT().Addr())
	conn.Write(connectPacket("v3-sensor", "", "", 30))
	readPacket(t, conn) // CONNACK
	publishQoS1 := func(id byte, topic string) {
		body := append(mqttString(topic), 0, id)
		conn.Write(mqttPacket(0x32, append(body, "x"...)))
	}
	publishQoS1(1, "tiny/1")
	if kind, body := readPacket(t, conn); kind != 0x40 || body[1] != 1 {
		t.Fatalf("first publish: packet %#x %v, want PUBACK 1", kind, body)
	}
	publishQoS1(2, "tiny/2")
	conn.Write([]byte{0xc0, 0}) // PINGREQ: its answer comes after any PUBACK for 2
	if kind, body := readPacket(t, conn); kind != 0xd0 {
		t.Fatalf("got packet %#x %v, want PINGRESP and no PUBACK for the refused message", kind, body)
	}
	if err := logs.Contains(`refused MQTT publish`); err != nil {
		t.Fatal(err)
	}
	if got := n.StreamStats("tiny").Msgs; got != 1 {
		t.Fatalf("stream holds %d messages, want 1", got)
	}
}
