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
