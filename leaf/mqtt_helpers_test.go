package leaf_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/nats-io/nats.go"

	"github.com/canopy-iot/canopy/internal/testlog"
	"github.com/canopy-iot/canopy/leaf"
	"github.com/canopy-iot/canopy/leaf/natsd"
	"github.com/canopy-iot/canopy/mqtt"
)

// leafWithMQTT is a leaf with NATS and MQTT on kernel-chosen ports, in a
// fresh data directory unless mut sets one.
func leafWithMQTT(mut func(*leaf.Config)) leaf.Config {
	cfg := leaf.Config{
		ServerName: "pi-001",
		NATS:       natsd.Config{Listen: "127.0.0.1:0"},
		MQTT:       mqtt.Config{Listen: "127.0.0.1:0"},
	}
	if mut != nil {
		mut(&cfg)
	}
	return cfg
}

// runLeaf runs a leaf until stop is called or the test ends.
func runLeaf(t *testing.T, cfg leaf.Config) (n *leaf.Node, logs *testlog.Buffer, stop func()) {
	t.Helper()
	if cfg.DataDir == "" {
		cfg.DataDir = t.TempDir()
	}
	logs, log := testlog.New(-4)
	n, err := leaf.New(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("leaf run: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	select {
	case <-n.Ready():
	case err := <-done:
		t.Fatal(err)
	}
	return n, logs, stop
}

// natsConn connects a nats.go client to the leaf.
func natsConn(t *testing.T, n *leaf.Node) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(n.NATSURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// mqttClient connects a paho (MQTT 3.1.1) client to addr (host:port for
// plain TCP, or a tls:// or ws:// URL); mut adjusts the options.
func mqttClient(t *testing.T, addr, id string, mut func(*paho.ClientOptions)) paho.Client {
	t.Helper()
	if !strings.Contains(addr, "://") {
		addr = "tcp://" + addr
	}
	o := paho.NewClientOptions().AddBroker(addr).SetClientID(id).
		SetAutoReconnect(false).SetConnectRetry(false).SetCleanSession(true).
		SetConnectTimeout(5 * time.Second)
	if mut != nil {
		mut(o)
	}
	c := paho.NewClient(o)
	if err := wait(c.Connect()); err != nil {
		t.Fatalf("mqtt connect %s: %v", id, err)
	}
	t.Cleanup(func() { c.Disconnect(0) })
	return c
}

// wait waits for a paho token.
func wait(tok paho.Token) error {
	if !tok.WaitTimeout(10 * time.Second) {
		return fmt.Errorf("timed out")
	}
	return tok.Error()
}

// msg is a message as a subscriber saw it.
type msg struct {
	topic   string
	payload string
	qos     byte
	retain  bool
}

// collector gathers MQTT messages.
type collector struct {
	ch chan msg
}

func newCollector() *collector { return &collector{ch: make(chan msg, 10000)} }

func (c *collector) handler(_ paho.Client, m paho.Message) {
	c.ch <- msg{m.Topic(), string(m.Payload()), m.Qos(), m.Retained()}
}

// next returns the next message, failing the test after a timeout.
func (c *collector) next(t *testing.T) msg {
	t.Helper()
	select {
	case m := <-c.ch:
		return m
	case <-time.After(10 * time.Second):
		t.Fatal("no MQTT message within 10s")
		return msg{}
	}
}

// none checks that nothing (more) arrived. Callers make sure anything that
// could arrive would have: they send a marker after it on the same path
// and receive that first.
func (c *collector) none(t *testing.T) {
	t.Helper()
	select {
	case m := <-c.ch:
		t.Fatalf("unexpected MQTT message %+v", m)
	default:
	}
}

// subscribe subscribes c to filter. With a nil collector, messages go to
// the client's default handler: paho calls each matching subscription's
// handler, so overlapping subscriptions with handlers would see a message
// the broker sent once several times.
func subscribe(t *testing.T, c paho.Client, filter string, qos byte, col *collector) {
	t.Helper()
	var h paho.MessageHandler
	if col != nil {
		h = col.handler
	}
	if err := wait(c.Subscribe(filter, qos, h)); err != nil {
		t.Fatalf("subscribe %s: %v", filter, err)
	}
}

func publish(t *testing.T, c paho.Client, topic string, qos byte, retain bool, payload string) {
	t.Helper()
	if err := wait(c.Publish(topic, qos, retain, payload)); err != nil {
		t.Fatalf("publish %s: %v", topic, err)
	}
}

// dialRaw opens a plain TCP connection to the broker, for tests that
// write MQTT bytes themselves.
func dialRaw(t *testing.T, addr string) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	return conn
}

// mqttString is an MQTT length-prefixed string.
func mqttString(s string) []byte {
	return append([]byte{byte(len(s) >> 8), byte(len(s))}, s...)
}

// mqttPacket frames a packet: fixed header byte, remaining length, body.
func mqttPacket(first byte, body []byte) []byte {
	out := []byte{first}
	n := len(body)
	for {
		b := byte(n % 128)
		n /= 128
		if n > 0 {
			b |= 0x80
		}
		out = append(out, b)
		if n == 0 {
			break
		}
	}
	return append(out, body...)
}

// connectPacket is an MQTT 3.1.1 CONNECT with a clean session and, when
// willTopic is set, a QoS 1 will.
func connectPacket(id, willTopic, will string, keepalive uint16) []byte {
	flags := byte(0x02)
	if willTopic != "" {
		flags |= 0x04 | 1<<3
	}
	body := append(mqttString("MQTT"), 4, flags, byte(keepalive>>8), byte(keepalive))
	body = append(body, mqttString(id)...)
	if willTopic != "" {
		body = append(body, mqttString(willTopic)...)
		body = append(body, mqttString(will)...)
	}
	return mqttPacket(0x10, body)
}

// readPacket reads one packet and returns its first byte and body; it
// fails the test on a read error.
func readPacket(t *testing.T, conn net.Conn) (byte, []byte) {
	t.Helper()
	first, body, err := readPacketErr(conn)
	if err != nil {
		t.Fatalf("read MQTT packet: %v", err)
	}
	return first, body
}

func readPacketErr(conn net.Conn) (byte, []byte, error) {
	// Unbuffered, so that nothing of the next packet is consumed.
	var one [1]byte
	readByte := func() (byte, error) {
		_, err := io.ReadFull(conn, one[:])
		return one[0], err
	}
	first, err := readByte()
	if err != nil {
		return 0, nil, err
	}
	n, mult := 0, 1
	for {
		b, err := readByte()
		if err != nil {
			return 0, nil, err
		}
		n += int(b&0x7f) * mult
		mult *= 128
		if b&0x80 == 0 {
			break
		}
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(conn, body); err != nil {
		return 0, nil, err
	}
	return first, body, nil
}
