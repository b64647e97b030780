package hub

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// leaseBucket is a fresh "fw-rollouts" bucket on a JetStream server of
// its own.
func leaseBucket(t *testing.T) jetstream.KeyValue {
	t.Helper()
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	ns.Start()
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("server not ready")
	}
	nc, err := nats.Connect("", nats.InProcessServer(ns))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	kv, err := js.CreateKeyValue(context.Background(), jetstream.KeyValueConfig{Bucket: RolloutsBucket})
	if err != nil {
		t.Fatal(err)
	}
	return kv
}

func TestRolloutLease(t *testing.T) {
	kv := leaseBucket(t)
	ctx := context.Background()
	const ttl = 12 * time.Second
	a, b := newRolloutLease(kv, "node-a", ttl), newRolloutLease(kv, "node-b", ttl)
	now := time.Unix(1_700_000_000, 0)
	tick := func(l *rolloutLease, at time.Time, want bool) {
		t.Helper()
		got, err := l.tick(ctx, at)
		if err != nil {
			t.Fatalf("%s at +%s: %v", l.holder, at.Sub(now), err)
		}
		if got != want {
			t.Fatalf("%s at +%s: held %v, want %v", l.holder, at.Sub(now), got, want)
		}
	}

	tick(a, now, true) // nobody held it
	tick(b, now, false)
	// As long as a renews, b never takes over, however long it waits.
	for i := 1; i <= 8; i++ {
		at := now.Add(time.Duration(i) * ttl / 4)
		tick(a, at, true)
		tick(b, at, false)
	}
	// a stops renewing: it stops acting after ttl/2 by itself, and b
	// takes over once the lease has not changed for ttl by b's clock.
	last := now.Add(2 * ttl)
	if !a.Held(last.Add(ttl/2-time.Millisecond)) || a.Held(last.Add(ttl/2)) {
		t.Error("a holder that cannot renew must stop acting after ttl/2")
	}
	tick(b, last.Add(ttl-time.Second), false)
	tick(b, last.Add(ttl), true)
	tick(a, last.Add(ttl+time.Second), false) // a comes back: the lease is b's now
	// b stops cleanly: a takes over at once.
	if err := b.release(ctx); err != nil {
		t.Fatal(err)
	}
	tick(a, last.Add(ttl+2*time.Second), true)
	// A restarted a (same server name, no memory) takes its lease back at
	// once; server names are unique in a cluster, so the old a is gone.
	a2 := newRolloutLease(kv, "node-a", ttl)
	tick(a2, last.Add(ttl+3*time.Second), true)
	tick(b, last.Add(ttl+4*time.Second), false)
}
