package natsd_test

import (
	"testing"
	"time"

	"github.com/canopy-iot/canopy/leaf/natsd"
)

func TestInternalClient(t *testing.T) {
	s := startServer(t, natsd.Config{})
	in := s.NewInternal("test")
	defer in.Close()
	got := make(chan string, 10)
	unsub, err := in.Subscribe("sensors.>", "", func(subj, reply, hdr, payload []byte) {
		got <- string(subj) + " " + string(reply) + " " + string(payload)
	})
	if err != nil {
		t.Fatal(err)
	}
	nc := connect(t, s.ClientURL())
	nc.PublishRequest("sensors.a", "my.reply", []byte("1"))
	nc.Flush()
	select {
	case m := <-got:
		if m != "sensors.a my.reply 1" {
			t.Fatalf("internal subscriber got %q", m)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("internal subscriber got nothing")
	}

	sub, _ := nc.SubscribeSync("sensors.b")
	nc.Flush()
	if !in.Publish([]byte("sensors.b"), nil, nil, []byte("2")) {
		t.Fatal("publish reached no one")
	}
	if m, err := sub.NextMsg(5 * time.Second); err != nil || string(m.Data) != "2" {
		t.Fatalf("network subscriber: %v %v", m, err)
	}
	select {
	case m := <-got:
		t.Fatalf("the internal client received its own message %q", m)
	default:
	}

	unsub()
	if n := s.NumSubscriptions(); n != 1 {
		t.Fatalf("%d subscriptions after unsubscribe, want the network client's 1", n)
	}
	if in.Publish([]byte("nobody"), nil, nil, nil) {
		t.Fatal("a publish nobody listens to reported delivery")
	}
}

// A bridge client gets a message once however many of its subscriptions
// match, and its queue subscriptions take part in its own publishes while
// its plain ones do not.
func TestBridgeClient(t *testing.T) {
	s := startServer(t, natsd.Config{})
	br := s.NewBridge("mqtt")
	defer br.Close()
	plain := make(chan string, 10)
	for _, f := range []string{"a.>", "a.*", "a.b"} {
		if _, err := br.Subscribe(f, "", func(subj, _, _, _ []byte) { plain <- string(subj) }); err != nil {
			t.Fatal(err)
		}
	}
	queued := make(chan string, 10)
	if _, err := br.Subscribe("q.*", "workers", func(subj, _, _, _ []byte) { queued <- string(subj) }); err != nil {
		t.Fatal(err)
	}
	nc := connect(t, s.ClientURL())
	nc.Publish("a.b", []byte("x"))
	nc.Flush()
	if got := <-plain; got != "a.b" {
		t.Fatalf("bridge got %q", got)
	}

	// Its own publish: not to its plain subscriptions, but to its queue
	// member, which is the only member of "workers".
	br.Publish([]byte("a.b"), nil, nil, nil)
	br.Publish([]byte("q.1"), nil, nil, nil)
	if got := <-queued; got != "q.1" {
		t.Fatalf("queue member got %q", got)
	}
	// Everything is delivered synchronously: a second copy would be there.
	select {
	case m := <-plain:
		t.Fatalf("bridge got %q a second time or from itself", m)
	default:
	}

	// Hub deliveries (Deliver) are deduplicated the same way.
	var b natsd.Batch
	if !s.Deliver(&b, []byte("a.c"), []byte("a.c"), nil, nil, nil, nil) {
		t.Fatal("Deliver reached no one")
	}
	b.Flush()
	if got := <-plain; got != "a.c" {
		t.Fatalf("bridge got %q", got)
	}
	select {
	case m := <-plain:
		t.Fatalf("bridge got %q twice from the hub", m)
	default:
	}
}
