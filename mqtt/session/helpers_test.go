package session_test

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/canopy-iot/canopy/mqtt/session"
	"github.com/canopy-iot/canopy/store"
)

const timeout = 10 * time.Second

// The leaf hands the hook a *store.Table.
var _ session.Table = (*store.Table)(nil)

// countingTable counts the writes that reach the table.
type countingTable struct {
	*store.Table
	writes atomic.Int64
}

func (c *countingTable) Put(key string, value []byte) error {
	c.writes.Add(1)
	return c.Table.Put(key, value)
}

func (c *countingTable) Delete(key string) error {
	c.writes.Add(1)
	return c.Table.Delete(key)
}

func (c *countingTable) DeletePrefix(prefix string) error {
	c.writes.Add(1)
	return c.Table.DeletePrefix(prefix)
}

// broker is a mochi broker with the session hook over a table in a store
// file, listening on 127.0.0.1.
type broker struct {
	tb     testing.TB
	srv    *mqtt.Server
	st     *store.Store
	table  *countingTable
	events *events
	addr   string
	once   sync.Once
}

// startBroker opens the store at path (a new file in a temporary
// directory when empty) and serves a broker over it. Cleanup stops both.
func startBroker(tb testing.TB, path string, log *slog.Logger) *broker {
	tb.Helper()
	return startBrokerWith(tb, path, log, nil)
}

// startBrokerWith is startBroker with the hook's table wrapped by wrap.
func startBrokerWith(tb testing.TB, path string, log *slog.Logger, wrap func(session.Table) session.Table) *broker {
	tb.Helper()
	if path == "" {
		path = filepath.Join(tb.TempDir(), "store.db")
	}
	if log == nil {
		log = slog.New(slog.NewTextHandler(tb.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	st, err := store.Open(path, store.Options{Logger: log})
	if err != nil {
		tb.Fatal(err)
	}
	t, err := st.Table("mqtt")
	if err != nil {
		tb.Fatal(err)
	}
	b := &broker{tb: tb, st: st, table: &countingTable{Table: t}, events: newEvents()}
	var table session.Table = b.table
	if wrap != nil {
		table = wrap(table)
	}
	b.srv = mqtt.New(&mqtt.Options{Logger: log, InlineClient: true})
	for _, h := range []mqtt.Hook{new(allowAll), session.NewHook(table, log), b.events} {
		if err := b.srv.AddHook(h, nil); err != nil {
			tb.Fatal(err)
		}
	}
	l := listeners.NewTCP(listeners.Config{ID: "tcp", Address: "127.0.0.1:0"})
	if err := b.srv.AddListener(l); err != nil {
		tb.Fatal(err)
	}
	if err := b.srv.Serve(); err != nil {
		tb.Fatal(err)
	}
	b.addr = l.Address()
	tb.Cleanup(b.stop)
	return b
}

// stop closes the broker, which waits for its clients' goroutines, so
// that every hook has run, then the store.
func (b *broker) stop() {
	b.once.Do(func() {
		if err := b.srv.Close(); err != nil {
			b.tb.Errorf("close broker: %v", err)
		}
		if err := b.st.Close(); err != nil {
			b.tb.Errorf("close store: %v", err)
		}
	})
}

// keys returns the table's keys under prefix.
func (b *broker) keys(prefix string) []string {
	b.tb.Helper()
	var keys []string
	err := b.table.Range(prefix, func(k string, _ []byte) error {
		keys = append(keys, k)
		return nil
	})
	if err != nil {
		b.tb.Fatal(err)
	}
	return keys
}

// sessionKeys returns the keys of client id's session, by kind: "c",
// "s" (subscriptions), "i" (inflight messages).
func (b *broker) sessionKeys(id string) map[string]int {
	b.tb.Helper()
	prefix := fmt.Sprintf("s/%d:%s/", len(id), id)
	out := make(map[string]int)
	for _, k := range b.keys(prefix) {
		kind, _, _ := strings.Cut(strings.TrimPrefix(k, prefix), "/")
		out[kind]++
	}
	return out
}

// allowAll lets every client in: mochi refuses everyone without an
// authentication hook.
type allowAll struct{ mqtt.HookBase }

func (*allowAll) ID() string { return "allow-all" }
func (*allowAll) Provides(b byte) bool {
	return b == mqtt.OnConnectAuthenticate || b == mqtt.OnACLCheck
}
func (*allowAll) OnConnectAuthenticate(*mqtt.Client, packets.Packet) bool { return true }
func (*allowAll) OnACLCheck(*mqtt.Client, string, bool) bool              { return true }

// events lets a test wait for a client's disconnection as the broker
// sees it.
type events struct {
	mqtt.HookBase
	mu      sync.Mutex
	waiters map[string][]chan struct{}
}

func newEvents() *events { return &events{waiters: make(map[string][]chan struct{})} }

func (*events) ID() string           { return "test-events" }
func (*events) Provides(b byte) bool { return b == mqtt.OnDisconnect }
func (e *events) OnDisconnect(cl *mqtt.Client, _ error, _ bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, c := range e.waiters[cl.ID] {
		close(c)
	}
	delete(e.waiters, cl.ID)
}

// disconnected returns a channel closed at the next OnDisconnect of id,
// after every hook added before the events hook has handled it.
func (e *events) disconnected(id string) <-chan struct{} {
	e.mu.Lock()
	defer e.mu.Unlock()
	c := make(chan struct{})
	e.waiters[id] = append(e.waiters[id], c)
	return c
}

func await(tb testing.TB, c <-chan struct{}, what string) {
	tb.Helper()
	select {
	case <-c:
	case <-time.After(timeout):
		tb.Fatalf("timed out waiting for %s", what)
	}
}

// client is a paho MQTT 3.1.1 client whose received messages (through
// any subscription, including one restored from its session) go to msgs.
type client struct {
	paho.Client
	id   string
	msgs chan paho.Message
	// sessionPresent is what the broker's CONNACK said.
	sessionPresent bool
}

// connect connects a client; opts adjust its options.
func connect(tb testing.TB, b *broker, id string, clean bool, opts ...func(*paho.ClientOptions)) *client {
	tb.Helper()
	c := &client{id: id, msgs: make(chan paho.Message, 1000)}
	po := paho.NewClientOptions().
		AddBroker("tcp://" + b.addr).
		SetClientID(id).
		SetCleanSession(clean).
		SetAutoReconnect(false).
		SetConnectTimeout(timeout).
		SetDefaultPublishHandler(func(_ paho.Client, m paho.Message) { c.msgs <- m })
	for _, o := range opts {
		o(po)
	}
	c.Client = paho.NewClient(po)
	tok := c.Connect()
	if !tok.WaitTimeout(timeout) || tok.Error() != nil {
		tb.Fatalf("connect %s: %v", id, tok.Error())
	}
	c.sessionPresent = tok.(*paho.ConnectToken).SessionPresent()
	tb.Cleanup(func() { c.Disconnect(0) })
	return c
}

func waitToken(tb testing.TB, tok paho.Token, what string) {
	tb.Helper()
	if !tok.WaitTimeout(timeout) {
		tb.Fatalf("%s: timed out", what)
	}
	if err := tok.Error(); err != nil {
		tb.Fatalf("%s: %v", what, err)
	}
}

func (c *client) subscribe(tb testing.TB, filter string, qos byte) {
	tb.Helper()
	waitToken(tb, c.Subscribe(filter, qos, nil), "subscribe "+filter)
}

func (c *client) publish(tb testing.TB, topic string, qos byte, retained bool, payload string) {
	tb.Helper()
	waitToken(tb, c.Publish(topic, qos, retained, payload), "publish "+topic)
}

// noAck keeps a client from acknowledging what it receives.
func noAck(o *paho.ClientOptions) { o.SetAutoAckDisabled(true) }

// disconnect disconnects cleanly and waits until the broker has handled it.
func (c *client) disconnect(tb testing.TB, b *broker) {
	tb.Helper()
	done := b.events.disconnected(c.id)
	c.Disconnect(250)
	await(tb, done, c.id+" disconnected")
}

// receive returns the next message, failing the test after the timeout.
func (c *client) receive(tb testing.TB) paho.Message {
	tb.Helper()
	select {
	case m := <-c.msgs:
		return m
	case <-time.After(timeout):
		tb.Fatalf("%s: no message within %v", c.id, timeout)
		return nil
	}
}

// drain returns the payloads of the messages the broker queued for c
// before now. c must be subscribed to end: it publishes a marker there and
// collects what arrives before the marker. The broker reads c's PUBLISH
// only after it has handled c's earlier packets and resent c's session's
// messages, and queues deliveries in order, so the wait needs no sleep.
// The marker goes at QoS 0: mochi 2.7.9 keeps inbound and outbound packet
// ids in one map, and a QoS 1 marker whose id is that of a message being
// delivered to c would delete that delivery.
func (c *client) drain(tb testing.TB, end string) []string {
	tb.Helper()
	c.publish(tb, end, 0, false, "")
	var got []string
	for {
		m := c.receive(tb)
		if m.Topic() == end {
			return got
		}
		got = append(got, string(m.Payload()))
	}
}

// rawV5 is an MQTT 5 client written with mochi's packet encoder, for
// session expiry, which paho.mqtt.golang (3.1.1 only) cannot ask for.
type rawV5 struct {
	net.Conn
	r *bufio.Reader
}

func dialV5(tb testing.TB, b *broker, id string, cleanStart bool, expiry uint32) (*rawV5, bool) {
	tb.Helper()
	conn, err := net.DialTimeout("tcp", b.addr, timeout)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { conn.Close() })
	if err := conn.SetDeadline(time.Now().Add(timeout)); err != nil {
		tb.Fatal(err)
	}
	c := &rawV5{Conn: conn, r: bufio.NewReader(conn)}
	c.send(tb, packets.Packet{
		FixedHeader:     packets.FixedHeader{Type: packets.Connect},
		ProtocolVersion: 5,
		Connect: packets.ConnectParams{
			ProtocolName:     []byte("MQTT"),
			Clean:            cleanStart,
			Keepalive:        60,
			ClientIdentifier: id,
		},
		Properties: packets.Properties{SessionExpiryInterval: expiry, SessionExpiryIntervalFlag: true},
	})
	typ, body := c.read(tb)
	if typ != packets.Connack || len(body) < 2 || body[1] != 0 {
		tb.Fatalf("CONNACK: type %d, %x", typ, body)
	}
	return c, body[0]&1 == 1
}

func (c *rawV5) send(tb testing.TB, pk packets.Packet) {
	tb.Helper()
	var (
		buf bytes.Buffer
		err error
	)
	switch pk.FixedHeader.Type {
	case packets.Connect:
		err = pk.ConnectEncode(&buf)
	case packets.Subscribe:
		err = pk.SubscribeEncode(&buf)
	case packets.Disconnect:
		err = pk.DisconnectEncode(&buf)
	default:
		tb.Fatalf("cannot send packet type %d", pk.FixedHeader.Type)
	}
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := c.Write(buf.Bytes()); err != nil {
		tb.Fatal(err)
	}
}

// read returns the next packet's type and body.
func (c *rawV5) read(tb testing.TB) (byte, []byte) {
	tb.Helper()
	h, err := c.r.ReadByte()
	if err != nil {
		tb.Fatal(err)
	}
	var n, shift int
	for {
		b, err := c.r.ReadByte()
		if err != nil {
			tb.Fatal(err)
		}
		n |= int(b&0x7f) << shift
		if b&0x80 == 0 {
			break
		}
		shift += 7
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(c.r, body); err != nil {
		tb.Fatal(err)
	}
	return h >> 4, body
}

func (c *rawV5) subscribe(tb testing.TB, filter string, qos byte) {
	tb.Helper()
	c.send(tb, packets.Packet{
		FixedHeader:     packets.FixedHeader{Type: packets.Subscribe, Qos: 1},
		ProtocolVersion: 5,
		PacketID:        1,
		Filters:         packets.Subscriptions{{Filter: filter, Qos: qos}},
	})
	if typ, body := c.read(tb); typ != packets.Suback || body[len(body)-1] != qos {
		tb.Fatalf("SUBACK: type %d, %x", typ, body)
	}
}

// disconnectExpiry0 is an MQTT 5 DISCONNECT that sets the session expiry
// to 0, ending the session.
func disconnectExpiry0() packets.Packet {
	return packets.Packet{
		FixedHeader:     packets.FixedHeader{Type: packets.Disconnect},
		ProtocolVersion: 5,
		Properties:      packets.Properties{SessionExpiryInterval: 0, SessionExpiryIntervalFlag: true},
	}
}

func sorted(s []string) []string { return slices.Sorted(slices.Values(s)) }
