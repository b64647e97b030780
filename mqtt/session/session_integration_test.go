package session_test

import (
	"fmt"
	"log/slog"
	"maps"
	"path/filepath"
	"slices"
	"testing"

	"github.com/canopy-iot/canopy/internal/testlog"
	"github.com/canopy-iot/canopy/internal/wait"
	"github.com/canopy-iot/canopy/mqtt/session"
	"github.com/canopy-iot/canopy/store"
)

// Retained messages, and the clearing of one, survive a restart of the
// broker and its store.
func TestIntegrationRetainedSurvivesRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "store.db")
	b := startBroker(t, path, nil)
	pub := connect(t, b, "pub", true)
	pub.publish(t, "r/a", 1, true, "kept")
	pub.publish(t, "r/b", 1, true, "cleared later")
	pub.publish(t, "r/c", 0, true, "replaced")
	pub.publish(t, "r/c", 2, true, "replacement")
	pub.publish(t, "r/b", 1, true, "") // clears r/b
	// The inline client (the leaf's NATS bridge) retains too.
	if err := b.srv.Publish("r/inline", []byte("from NATS"), true, 0); err != nil {
		t.Fatal(err)
	}
	b.stop() // waits for every publish to be handled

	b = startBroker(t, path, nil)
	if got, want := b.keys("r/"), []string{"r/r/a", "r/r/c", "r/r/inline"}; !slices.Equal(got, want) {
		t.Errorf("retained keys after restart: %q, want %q", got, want)
	}
	sub := connect(t, b, "sub", true)
	// Subscribe to the marker's topic first: mochi refuses a SUBSCRIBE
	// whose packet id is that of a message it is sending (0x91).
	sub.subscribe(t, "end", 0)
	sub.subscribe(t, "r/#", 2)
	got := map[string]string{}
	sub.publish(t, "end", 0, false, "")
	for {
		m := sub.receive(t)
		if m.Topic() == "end" {
			break
		}
		if !m.Retained() {
			t.Errorf("%s: not flagged retained", m.Topic())
		}
		got[m.Topic()] = string(m.Payload())
	}
	want := map[string]string{"r/a": "kept", "r/c": "replacement", "r/inline": "from NATS"}
	if !maps.Equal(got, want) {
		t.Errorf("retained after restart: %q, want %q", got, want)
	}
}

// A persistent QoS 1/2 subscriber misses messages while it is offline and
// the broker restarts; when it comes back it gets each of them once.
func TestIntegrationOfflineMessagesSurviveRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "store.db")
	b := startBroker(t, path, nil)
	sub := connect(t, b, "sub", false)
	sub.subscribe(t, "t/#", 2)
	sub.disconnect(t, b)

	// A persistent publisher, so that the PUBREC state of its QoS 2
	// messages is stored (and deleted) too.
	pub := connect(t, b, "pub", false)
	var want []string
	for i := range 20 {
		qos := byte(1 + i%2)
		p := fmt.Sprintf("m%02d-qos%d", i, qos)
		pub.publish(t, "t/x", qos, false, p)
		want = append(want, p)
	}
	pub.disconnect(t, b)
	b.stop()

	b = startBroker(t, path, nil)
	if got := b.sessionKeys("sub"); got["c"] != 1 || got["s"] != 1 || got["i"] != 20 {
		t.Errorf("stored session of sub: %v, want a client record, 1 subscription, 20 inflight messages", got)
	}
	if got := b.sessionKeys("pub"); got["i"] != 0 {
		t.Errorf("publisher's inbound QoS 2 state left: %v", got)
	}
	sub = connect(t, b, "sub", false)
	if !sub.sessionPresent {
		t.Error("CONNACK after restart: no session present")
	}
	got := sub.drain(t, "t/end")
	if !slices.Equal(sorted(got), want) {
		t.Errorf("after restart received %d messages %q, want each of %q once", len(got), got, want)
	}
	// Acknowledged, they are deleted.
	wait.For(t, timeout, func() error {
		if n := b.sessionKeys("sub")["i"]; n != 0 {
			return fmt.Errorf("%d inflight messages stored", n)
		}
		return nil
	})
	sub.disconnect(t, b)
	b.stop()

	// And they stay delivered.
	b = startBroker(t, path, nil)
	sub = connect(t, b, "sub", false)
	if got := sub.drain(t, "t/end"); len(got) != 0 {
		t.Errorf("second restart redelivered %q", got)
	}
}

// When a connection takes over a live persistent session, mochi drops the
// old connection's inflight messages (reporting them dropped) after
// handing them to the new one: they must stay stored.
func TestIntegrationTakeoverKeepsInflight(t *testing.T) {
	path := filepath.Join(t.TempDir(), "store.db")
	b := startBroker(t, path, nil)
	first := connect(t, b, "k", false, noAck)
	first.subscribe(t, "k/#", 1)
	pub := connect(t, b, "pub", true)
	want := []string{"k0", "k1", "k2"}
	for _, p := range want {
		pub.publish(t, "k/x", 1, false, p)
	}
	for range want {
		first.receive(t) // and never acknowledged
	}
	second := connect(t, b, "k", false, noAck)
	if !second.sessionPresent {
		t.Fatal("takeover: no session present")
	}
	var got []string
	for range want {
		m := second.receive(t) // resent once the session is taken over
		if !m.Duplicate() {
			t.Errorf("resent %q without DUP", m.Payload())
		}
		got = append(got, string(m.Payload()))
	}
	if !slices.Equal(sorted(got), want) {
		t.Errorf("resent to the new connection: %q, want %q", got, want)
	}
	if got := b.sessionKeys("k"); got["c"] != 1 || got["s"] != 1 || got["i"] != 3 {
		t.Errorf("stored session after takeover: %v", got)
	}
	b.stop()

	b = startBroker(t, path, nil)
	third := connect(t, b, "k", false)
	if got := third.drain(t, "k/end"); !slices.Equal(sorted(got), want) {
		t.Errorf("after restart: %q, want %q", got, want)
	}
}

// A clean session costs no write, whatever its traffic.
func TestIntegrationCleanSessionWritesNothing(t *testing.T) {
	b := startBroker(t, "", nil)
	before := b.table.writes.Load()
	c := connect(t, b, "clean", true)
	c.subscribe(t, "c/#", 2)
	other := connect(t, b, "other", true)
	for qos := range byte(3) {
		other.publish(t, "c/x", qos, false, fmt.Sprint(qos))
		c.publish(t, "c/self", qos, false, fmt.Sprint(qos))
	}
	for range 6 {
		c.receive(t)
	}
	waitToken(t, c.Unsubscribe("c/#"), "unsubscribe")
	c.disconnect(t, b)
	other.disconnect(t, b)
	if n := b.table.writes.Load() - before; n != 0 {
		t.Errorf("clean sessions made %d table writes", n)
	}
	// The counter does count: a persistent session writes.
	p := connect(t, b, "persistent", false)
	p.subscribe(t, "p", 1)
	if n := b.table.writes.Load() - before; n < 2 {
		t.Errorf("a persistent session made %d table writes", n)
	}
}

// A session ends, and its keys go, when its client reconnects with a
// clean session.
func TestIntegrationCleanReconnectRemovesSession(t *testing.T) {
	path := filepath.Join(t.TempDir(), "store.db")
	b := startBroker(t, path, nil)
	s := connect(t, b, "dev/1", false)
	s.subscribe(t, "a/#", 1)
	s.disconnect(t, b)
	// A client whose id has the first one's as a prefix keeps its session.
	other := connect(t, b, "dev/1/x", false)
	other.subscribe(t, "a/#", 1)
	other.disconnect(t, b)
	connect(t, b, "pub", true).publish(t, "a/x", 1, false, "offline")
	wait.For(t, timeout, func() error {
		for _, id := range []string{"dev/1", "dev/1/x"} {
			if got := b.sessionKeys(id); got["c"] != 1 || got["s"] != 1 || got["i"] != 1 {
				return fmt.Errorf("stored session of %s: %v", id, got)
			}
		}
		return nil
	})

	s = connect(t, b, "dev/1", true)
	// The session ended before the CONNACK.
	if got := b.sessionKeys("dev/1"); len(got) != 0 {
		t.Errorf("keys left after a clean reconnect: %v", got)
	}
	if got := b.sessionKeys("dev/1/x"); got["c"] != 1 || got["s"] != 1 || got["i"] != 1 {
		t.Errorf("the other session lost keys: %v", got)
	}
	s.disconnect(t, b)
	b.stop()

	b = startBroker(t, path, nil)
	if s := connect(t, b, "dev/1", false); s.sessionPresent {
		t.Error("the ended session came back after a restart")
	}
	if s := connect(t, b, "dev/1/x", false); !s.sessionPresent {
		t.Error("the other session did not come back after a restart")
	}
}

// MQTT 5: a session expiry interval makes a session persistent; DISCONNECT
// with expiry 0 ends it, and so does its expiry.
func TestIntegrationV5SessionExpiry(t *testing.T) {
	path := filepath.Join(t.TempDir(), "store.db")
	b := startBroker(t, path, nil)
	c, _ := dialV5(t, b, "v5", true, 3600)
	c.subscribe(t, "v/#", 1)
	done := b.events.disconnected("v5")
	c.Close() // no DISCONNECT: the session stays
	await(t, done, "v5 disconnected")
	if got := b.sessionKeys("v5"); got["c"] != 1 || got["s"] != 1 {
		t.Errorf("stored session: %v", got)
	}
	// Clean Start with an expiry starts a new persistent session.
	n, _ := dialV5(t, b, "v5-new", true, 3600)
	n.subscribe(t, "v/#", 1)
	done = b.events.disconnected("v5-new")
	n.Close()
	await(t, done, "v5-new disconnected")
	n, present := dialV5(t, b, "v5-new", true, 3600)
	if got := b.sessionKeys("v5-new"); present || got["c"] != 1 || got["s"] != 0 {
		t.Errorf("after Clean Start: session present %t, stored %v; want a new session without subscriptions", present, got)
	}
	n.Close()
	// Expiry 0 is not a persistent session.
	z, _ := dialV5(t, b, "v5-zero", true, 0)
	z.subscribe(t, "v/#", 1)
	if got := b.sessionKeys("v5-zero"); len(got) != 0 {
		t.Errorf("session with expiry 0 stored: %v", got)
	}
	b.stop()

	b = startBroker(t, path, nil)
	c, present = dialV5(t, b, "v5", false, 3600)
	if !present {
		t.Error("CONNACK after restart: no session present")
	}
	done = b.events.disconnected("v5")
	c.send(t, disconnectExpiry0())
	await(t, done, "v5 disconnected")
	if got := b.sessionKeys("v5"); len(got) != 0 {
		t.Errorf("keys left after DISCONNECT with expiry 0: %v", got)
	}

	// A session of one second expires (mochi checks every second).
	e, _ := dialV5(t, b, "v5-short", true, 1)
	e.subscribe(t, "v/#", 1)
	if got := b.sessionKeys("v5-short"); got["c"] != 1 {
		t.Errorf("stored session: %v", got)
	}
	e.Close()
	wait.For(t, timeout, func() error {
		if got := b.sessionKeys("v5-short"); len(got) != 0 {
			return fmt.Errorf("keys of an expired session: %v", got)
		}
		return nil
	})
}

// failingTable fails every Put, as a full disk does.
type failingTable struct{ session.Table }

func (failingTable) Put(string, []byte) error { return fmt.Errorf("put: %w", store.ErrDiskFull) }

// A write that fails is logged with the client id; the client is served
// from memory all the same.
func TestIntegrationWriteFailureLogged(t *testing.T) {
	logs, log := testlog.New(slog.LevelWarn)
	b := startBrokerWith(t, "", log, func(t session.Table) session.Table { return failingTable{t} })
	c := connect(t, b, "failing", false)
	c.subscribe(t, "f/#", 1)
	c.publish(t, "f/x", 1, true, "still delivered")
	if m := c.receive(t); string(m.Payload()) != "still delivered" {
		t.Errorf("received %q", m.Payload())
	}
	wait.For(t, timeout, func() error { return logs.Contains("client_id=failing") })
	if err := logs.Contains("disk full"); err != nil {
		t.Error(err)
	}
	if n := len(b.keys("")); n != 0 {
		t.Errorf("%d keys stored through a failing table", n)
	}
}
