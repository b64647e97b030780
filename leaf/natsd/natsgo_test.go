package natsd_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/canopy-iot/canopy/internal/wait"
	"github.com/canopy-iot/canopy/leaf/natsd"
)

func TestNATSGoPubSub(t *testing.T) {
	s := startServer(t, natsd.Config{})
	nc := connect(t, s.ClientURL())
	sub, err := nc.SubscribeSync("greet.world")
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Publish("greet.world", []byte("hello")); err != nil {
		t.Fatal(err)
	}
	msg, err := sub.NextMsg(5 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if msg.Subject != "greet.world" || string(msg.Data) != "hello" {
		t.Fatalf("got %s %q", msg.Subject, msg.Data)
	}
	if nc.ConnectedServerName() != "test-leaf" || nc.MaxPayload() != 1<<20 || !nc.HeadersSupported() {
		t.Fatalf("INFO: name %q, max payload %d, headers %v", nc.ConnectedServerName(), nc.MaxPayload(), nc.HeadersSupported())
	}
	if id, err := nc.GetClientID(); err != nil || id == 0 {
		t.Fatalf("client id %d, %v", id, err)
	}
}

func TestNATSGoWildcards(t *testing.T) {
	s := startServer(t, natsd.Config{})
	nc := connect(t, s.ClientURL())
	cases := map[string][]string{
		"sensors.*.temp": {"sensors.kitchen.temp", "sensors.hall.temp"},
		"sensors.>":      {"sensors.kitchen.temp", "sensors.hall.temp", "sensors.hall.humidity", "sensors.x.y.z"},
		"*.hall.*":       {"sensors.hall.temp", "sensors.hall.humidity"},
	}
	subs := map[string]*nats.Subscription{}
	for filter := range cases {
		sub, err := nc.SubscribeSync(filter)
		if err != nil {
			t.Fatal(err)
		}
		subs[filter] = sub
	}
	for _, subj := range []string{"sensors.kitchen.temp", "sensors.hall.temp", "sensors.hall.humidity", "sensors.x.y.z", "sensors", "other.hall"} {
		nc.Publish(subj, nil)
	}
	nc.Flush()
	for filter, want := range cases {
		var got []string
		for {
			msg, err := subs[filter].NextMsg(100 * time.Millisecond)
			if err != nil {
				break
			}
			got = append(got, msg.Subject)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s received %v, want %v", filter, got, want)
		}
	}
}

func TestNATSGoQueueGroupDeliversToExactlyOne(t *testing.T) {
	s := startServer(t, natsd.Config{})
	const total = 3000
	var received atomic.Int64
	counts := make([]atomic.Int64, 3)
	seen := sync.Map{}
	for i := range counts {
		nc := connect(t, s.ClientURL())
		_, err := nc.QueueSubscribe("jobs", "workers", func(m *nats.Msg) {
			if _, dup := seen.LoadOrStore(string(m.Data), i); dup {
				t.Errorf("message %s delivered twice", m.Data)
			}
			counts[i].Add(1)
			received.Add(1)
		})
		if err != nil {
			t.Fatal(err)
		}
		nc.Flush()
	}
	pub := connect(t, s.ClientURL())
	for i := range total {
		pub.Publish("jobs", fmt.Appendf(nil, "%d", i))
	}
	pub.Flush()
	wait.For(t, 10*time.Second, func() error {
		if n := received.Load(); n != total {
			return fmt.Errorf("received %d of %d", n, total)
		}
		return nil
	})
	for i := range counts {
		if counts[i].Load() == 0 {
			t.Errorf("member %d received nothing: no load balancing", i)
		}
	}
}

func TestNATSGoRequestReply(t *testing.T) {
	s := startServer(t, natsd.Config{})
	svc := connect(t, s.ClientURL())
	svc.Subscribe("math.double", func(m *nats.Msg) {
		var n int
		fmt.Sscan(string(m.Data), &n)
		m.Respond(fmt.Appendf(nil, "%d", 2*n))
	})
	svc.Flush()
	nc := connect(t, s.ClientURL())
	for i := range 20 {
		resp, err := nc.Request("math.double", fmt.Appendf(nil, "%d", i), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if string(resp.Data) != fmt.Sprint(2*i) {
			t.Fatalf("double(%d) = %s", i, resp.Data)
		}
	}
	// The old request style (a fresh inbox per request) works too.
	old := connect(t, s.ClientURL(), nats.UseOldRequestStyle())
	resp, err := old.Request("math.double", []byte("21"), 5*time.Second)
	if err != nil || string(resp.Data) != "42" {
		t.Fatalf("old-style request: %v %v", resp, err)
	}
}

func TestNATSGoNoResponders(t *testing.T) {
	s := startServer(t, natsd.Config{})
	nc := connect(t, s.ClientURL())
	start := time.Now()
	_, err := nc.Request("nobody.listens", []byte("?"), 5*time.Second)
	if !errors.Is(err, nats.ErrNoResponders) {
		t.Fatalf("request = %v, want ErrNoResponders", err)
	}
	if time.Since(start) > 2*time.Second {
		t.Fatal("no-responders came as a timeout, not at once")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := nc.RequestWithContext(ctx, "nobody.listens", nil); !errors.Is(err, nats.ErrNoResponders) {
		t.Fatalf("request with context = %v", err)
	}
}

func TestNATSGoHeadersRoundTrip(t *testing.T) {
	s := startServer(t, natsd.Config{})
	nc := connect(t, s.ClientURL())
	sub, _ := nc.SubscribeSync("h")
	msg := nats.NewMsg("h")
	msg.Header.Add("Trace-Id", "abc")
	msg.Header.Add("Tag", "one")
	msg.Header.Add("Tag", "two")
	msg.Header.Add("Tag", "three")
	msg.Data = []byte("payload")
	if err := nc.PublishMsg(msg); err != nil {
		t.Fatal(err)
	}
	got, err := sub.NextMsg(5 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if got.Header.Get("Trace-Id") != "abc" || !reflect.DeepEqual(got.Header.Values("Tag"), []string{"one", "two", "three"}) || string(got.Data) != "payload" {
		t.Fatalf("got header %v data %q", got.Header, got.Data)
	}

	// A client that did not negotiate headers gets the payload alone.
	raw := dialRaw(t, s.Addr().String())
	raw.handshake()
	raw.send("CONNECT {\"verbose\":false,\"headers\":false}\r\nSUB h 1\r\nPING\r\n")
	raw.expect("PONG\r\n")
	if err := nc.PublishMsg(msg); err != nil {
		t.Fatal(err)
	}
	raw.expect("MSG h 1 7\r\npayload\r\n")
}

func TestNATSGoUnsubscribeAndAutoUnsubscribe(t *testing.T) {
	s := startServer(t, natsd.Config{})
	nc := connect(t, s.ClientURL())
	gone, _ := nc.SubscribeSync("u")
	auto, _ := nc.SubscribeSync("u")
	if err := auto.AutoUnsubscribe(3); err != nil {
		t.Fatal(err)
	}
	if err := gone.Unsubscribe(); err != nil {
		t.Fatal(err)
	}
	nc.Flush()
	before := s.NumSubscriptions()
	for i := range 10 {
		nc.Publish("u", fmt.Appendf(nil, "%d", i))
	}
	nc.Flush()
	for i := range 3 {
		m, err := auto.NextMsg(5 * time.Second)
		if err != nil || string(m.Data) != fmt.Sprint(i) {
			t.Fatalf("auto message %d: %v %v", i, m, err)
		}
	}
	if _, err := auto.NextMsg(100 * time.Millisecond); err == nil {
		t.Fatal("a fourth message arrived after AutoUnsubscribe(3)")
	}
	if before != 1 {
		t.Fatalf("server had %d subscriptions after Unsubscribe, want 1", before)
	}
	wait.For(t, 5*time.Second, func() error {
		if n := s.NumSubscriptions(); n != 0 {
			return fmt.Errorf("server still has %d subscriptions after the auto-unsubscribe count", n)
		}
		return nil
	})
}

func TestNATSGoDrainAndFlush(t *testing.T) {
	s := startServer(t, natsd.Config{})
	nc := connect(t, s.ClientURL())
	var got atomic.Int64
	_, err := nc.Subscribe("d", func(*nats.Msg) {
		time.Sleep(time.Millisecond) // a slow handler: messages queue in the client
		got.Add(1)
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.FlushTimeout(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	pub := connect(t, s.ClientURL())
	for range 200 {
		pub.Publish("d", nil)
	}
	if err := pub.Flush(); err != nil {
		t.Fatal(err)
	}
	// Everything published before the flush has reached nc's socket once a
	// round trip through nc completes.
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	closed := make(chan struct{})
	nc.SetClosedHandler(func(*nats.Conn) { close(closed) })
	if err := nc.Drain(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("drain did not finish")
	}
	if got.Load() != 200 {
		t.Fatalf("drain delivered %d of 200 messages", got.Load())
	}
}

func TestNATSGoPayloadLimit(t *testing.T) {
	s := startServer(t, natsd.Config{MaxPayload: 4096})
	nc := connect(t, s.ClientURL())
	if nc.MaxPayload() != 4096 {
		t.Fatalf("advertised max payload %d", nc.MaxPayload())
	}
	sub, _ := nc.SubscribeSync("big")
	at := bytes.Repeat([]byte("x"), 4096)
	if err := nc.Publish("big", at); err != nil {
		t.Fatal(err)
	}
	if m, err := sub.NextMsg(5 * time.Second); err != nil || len(m.Data) != 4096 {
		t.Fatalf("payload at the limit: %v", err)
	}
	if err := nc.Publish("big", append(at, 'y')); !errors.Is(err, nats.ErrMaxPayload) {
		t.Fatalf("payload over the limit: %v, want ErrMaxPayload", err)
	}

	// A client that ignores the advertised limit is cut off with
	// nats-server's error.
	r := dialRaw(t, s.Addr().String())
	r.handshake()
	r.send("CONNECT {\"verbose\":false}\r\nPUB big 4097\r\n")
	r.expect("-ERR 'Maximum Payload Violation'\r\n")
	r.expectClosed()
}

func TestNATSGoReconnectAfterRestart(t *testing.T) {
	s := startServer(t, natsd.Config{})
	addr := s.Addr().String()
	reconnected := make(chan struct{}, 1)
	nc := connect(t, s.ClientURL(), nats.MaxReconnects(-1), nats.ReconnectWait(20*time.Millisecond),
		nats.ReconnectHandler(func(*nats.Conn) { reconnected <- struct{}{} }))
	sub, _ := nc.SubscribeSync("after.restart")
	nc.Flush()
	s.stop(t)

	s2 := startServer(t, natsd.Config{Listen: addr})
	select {
	case <-reconnected:
	case <-time.After(10 * time.Second):
		t.Fatal("client did not reconnect")
	}
	// nats.go re-sends its subscriptions after reconnecting.
	wait.For(t, 5*time.Second, func() error {
		if s2.NumSubscriptions() != 1 {
			return errors.New("subscription not restored")
		}
		return nil
	})
	nc.Publish("after.restart", []byte("back"))
	if m, err := sub.NextMsg(5 * time.Second); err != nil || string(m.Data) != "back" {
		t.Fatalf("after restart: %v %v", m, err)
	}
}

func TestNATSGoEchoOff(t *testing.T) {
	s := startServer(t, natsd.Config{})
	nc := connect(t, s.ClientURL(), nats.NoEcho())
	other := connect(t, s.ClientURL())
	mine, _ := nc.SubscribeSync("e")
	theirs, _ := other.SubscribeSync("e")
	nc.Flush()
	other.Flush()
	nc.Publish("e", []byte("x"))
	nc.Flush()
	if _, err := theirs.NextMsg(5 * time.Second); err != nil {
		t.Fatal("another client did not get the message")
	}
	if _, err := mine.NextMsg(100 * time.Millisecond); err == nil {
		t.Fatal("a no-echo client received its own message")
	}
}
