package natsd_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/canopy-iot/canopy/internal/wait"
	"github.com/canopy-iot/canopy/leaf/natsd"
)

func TestStatsCountClientsAndMessages(t *testing.T) {
	s := startServer(t, natsd.Config{})
	pub := connect(t, s.ClientURL())
	sub := connect(t, s.ClientURL())
	got, err := sub.SubscribeSync("t.>")
	if err != nil {
		t.Fatal(err)
	}
	sub.Flush()
	// An internal client's traffic is not a network client's.
	in := s.NewInternal("test")
	defer in.Close()
	in.Publish([]byte("t.internal"), nil, nil, []byte("123"))

	m := nats.NewMsg("t.a")
	m.Header.Set("K", "v")
	m.Data = []byte("hello")
	if err := pub.PublishMsg(m); err != nil {
		t.Fatal(err)
	}
	pub.Publish("t.b", []byte("12345678"))
	pub.Publish("nobody.listens", []byte("x"))
	pub.Flush()
	for range 3 { // the internal one and two from pub
		if _, err := got.NextMsg(5 * time.Second); err != nil {
			t.Fatal(err)
		}
	}
	hdrLen := uint64(len("NATS/1.0\r\nK: v\r\n\r\n"))
	wait.For(t, 5*time.Second, func() error {
		st := s.Stats()
		want := st
		want.Clients, want.Connections, want.Subscriptions = 2, 2, 1
		want.MsgsIn, want.BytesIn = 3, hdrLen+5+8+1
		want.MsgsOut, want.BytesOut = 3, hdrLen+5+8+3
		if st != want {
			return fmt.Errorf("stats %+v, want %+v", st, want)
		}
		return nil
	})
	// Counters stay when their clients leave; the gauge follows.
	pub.Close()
	wait.For(t, 5*time.Second, func() error {
		if st := s.Stats(); st.Clients != 1 || st.Connections != 2 || st.MsgsIn != 3 {
			return fmt.Errorf("after a client left: %+v", st)
		}
		return nil
	})
}
