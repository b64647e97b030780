package uplink_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/canopy-iot/canopy/internal/wait"
	"github.com/canopy-iot/canopy/leaf/uplink"
)

// A queue group with members on the hub and on the leaf: each message
// goes to exactly one member, whoever publishes.
func TestIntegrationQueueGroupAcrossTheLink(t *testing.T) {
	dev := newDevice(t)
	hub := startHub(t, hubOpts(t, dev, nil))
	leaf := startLeaf(t, uplink.Config{URLs: []string{leafURL(hub)}, NKeySeedFile: dev.seedFile})
	leaf.waitConnected(t)
	hubClient := connect(t, hub.ClientURL(), nats.UserInfo("app", "pw"))
	local := connect(t, leaf.srv.ClientURL())

	var mu sync.Mutex
	seen := map[string]int{}
	var hubGot, leafGot atomic.Int64
	record := func(side *atomic.Int64) nats.MsgHandler {
		return func(m *nats.Msg) {
			mu.Lock()
			seen[string(m.Data)]++
			mu.Unlock()
			side.Add(1)
		}
	}
	hubMember, _ := hubClient.QueueSubscribe("work", "workers", record(&hubGot))
	leafMember, _ := local.QueueSubscribe("work", "workers", record(&leafGot))
	hubClient.Flush()
	local.Flush()
	// The hub must know of the leaf's member before the count starts: a
	// probe on a plain subject subscribed after it crosses the link after
	// it (interest is announced in order).
	probe, _ := hubClient.SubscribeSync("probe")
	hubClient.Flush()
	deliverEventually(t, func() error { return local.Publish("probe", nil) }, probe)
	marker, _ := local.SubscribeSync("marker")
	local.Flush()
	deliverEventually(t, func() error { return hubClient.Publish("marker", nil) }, marker)

	const each = 500
	for i := range each {
		hubClient.Publish("work", fmt.Appendf(nil, "h%d", i))
		local.Publish("work", fmt.Appendf(nil, "l%d", i))
	}
	hubClient.Flush()
	local.Flush()
	wait.For(t, 10*time.Second, func() error {
		if n := hubGot.Load() + leafGot.Load(); n != 2*each {
			return fmt.Errorf("group received %d of %d", n, 2*each)
		}
		return nil
	})
	mu.Lock()
	for k, n := range seen {
		if n != 1 {
			t.Fatalf("message %s delivered %d times", k, n)
		}
	}
	if len(seen) != 2*each {
		t.Fatalf("%d distinct messages, want %d", len(seen), 2*each)
	}
	mu.Unlock()
	// Each side prefers its own member, as nats-server does.
	t.Logf("hub member got %d, leaf member got %d", hubGot.Load(), leafGot.Load())

	// Without a member on its side, a publisher's messages cross the link
	// to the other side's member: the leaf names the queue group in LMSG,
	// and the hub's messages for the group reach the leaf's member.
	leafMember.Unsubscribe()
	local.Flush()
	before := hubGot.Load()
	wait.For(t, 10*time.Second, func() error {
		local.Publish("work", []byte("to-hub"))
		if hubGot.Load() == before {
			return errors.New("the leaf's publish did not reach the hub's member")
		}
		return nil
	})
	local.QueueSubscribe("work", "workers", record(&leafGot))
	local.Flush()
	hubMember.Unsubscribe()
	hubClient.Flush()
	before = leafGot.Load()
	wait.For(t, 10*time.Second, func() error {
		hubClient.Publish("work", []byte("to-leaf"))
		if leafGot.Load() == before {
			return errors.New("the hub's publish did not reach the leaf's member")
		}
		return nil
	})
}

// A client on the leaf uses the hub's JetStream through the link: stream
// publish, a pull consumer with acks, and KV put/get/watch.
func TestIntegrationJetStreamThroughTheLink(t *testing.T) {
	dev := newDevice(t)
	hub := startHub(t, hubOpts(t, dev, nil))
	leaf := startLeaf(t, uplink.Config{URLs: []string{leafURL(hub)}, NKeySeedFile: dev.seedFile})
	leaf.waitConnected(t)
	local := connect(t, leaf.srv.ClientURL())
	js, err := jetstream.NewWithDomain(local, "hub")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	var stream jetstream.Stream
	wait.For(t, 10*time.Second, func() error {
		var err error
		stream, err = js.CreateStream(ctx, jetstream.StreamConfig{Name: "ORDERS", Subjects: []string{"orders.>"}})
		return err
	})
	for i := range 5 {
		ack, err := js.Publish(ctx, "orders.new", fmt.Appendf(nil, "o%d", i))
		if err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
		if ack.Sequence != uint64(i+1) {
			t.Fatalf("ack %+v", ack)
		}
	}
	cons, err := stream.CreateConsumer(ctx, jetstream.ConsumerConfig{Durable: "proc", AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		t.Fatal(err)
	}
	batch, err := cons.Fetch(5, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for m := range batch.Messages() {
		// The subject is the stream subject, not the consumer's inbox:
		// the leaf undid the hub's "@" rewrite.
		if m.Subject() != "orders.new" || string(m.Data()) != fmt.Sprintf("o%d", n) {
			t.Fatalf("message %d: %s %q", n, m.Subject(), m.Data())
		}
		if err := m.DoubleAck(ctx); err != nil {
			t.Fatalf("ack %d: %v", n, err)
		}
		n++
	}
	if n != 5 {
		t.Fatalf("fetched %d of 5 (%v)", n, batch.Error())
	}
	info, err := cons.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.NumAckPending != 0 || info.AckFloor.Consumer != 5 {
		t.Fatalf("acks did not reach the hub: %+v", info)
	}

	kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "settings"})
	if err != nil {
		t.Fatal(err)
	}
	watch, err := kv.Watch(ctx, "led.*")
	if err != nil {
		t.Fatal(err)
	}
	defer watch.Stop()
	if e := <-watch.Updates(); e != nil {
		t.Fatalf("watch should start with the end-of-initial marker, got %v", e)
	}
	if _, err := kv.Put(ctx, "led.color", []byte("green")); err != nil {
		t.Fatal(err)
	}
	e, err := kv.Get(ctx, "led.color")
	if err != nil || string(e.Value()) != "green" {
		t.Fatalf("get: %v %v", e, err)
	}
	select {
	case u := <-watch.Updates():
		if u == nil || u.Key() != "led.color" || string(u.Value()) != "green" {
			t.Fatalf("watch update %v", u)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no watch update")
	}
}

// The leaf's traffic stays in its account, and what the device may not
// publish is kept local (and logged) without losing the link.
func TestIntegrationAccountScopingAndPermissions(t *testing.T) {
	dev := newDevice(t)
	perms := &server.Permissions{
		Publish:   &server.SubjectPermission{Allow: []string{"telemetry.>", "_INBOX.>"}},
		Subscribe: &server.SubjectPermission{Allow: []string{"cmd.>", "_INBOX.>"}},
	}
	hub := startHub(t, hubOpts(t, dev, perms))
	leaf := startLeaf(t, uplink.Config{URLs: []string{leafURL(hub)}, NKeySeedFile: dev.seedFile})
	leaf.waitConnected(t)
	hubClient := connect(t, hub.ClientURL(), nats.UserInfo("app", "pw"))
	otherTenant := connect(t, hub.ClientURL(), nats.UserInfo("other", "pw"))
	local := connect(t, leaf.srv.ClientURL())

	spy, _ := otherTenant.SubscribeSync(">")
	all, _ := hubClient.SubscribeSync(">")
	otherTenant.Flush()
	hubClient.Flush()

	m := deliverEventually(t, func() error { return local.Publish("telemetry.t", []byte("ok")) }, all)
	if m.Subject != "telemetry.t" {
		t.Fatalf("got %s", m.Subject)
	}
	// Not allowed to publish config.x: kept local, link stays up.
	for range 3 {
		local.Publish("config.x", []byte("no"))
	}
	local.Publish("telemetry.after", []byte("still up"))
	local.Flush()
	for {
		m, err := all.NextMsg(5 * time.Second)
		if err != nil {
			t.Fatal("nothing after the denied publish: the link went down")
		}
		if m.Subject == "config.x" {
			t.Fatal("a subject the device may not publish reached the hub")
		}
		if m.Subject == "telemetry.after" {
			break
		}
	}
	wait.For(t, 5*time.Second, func() error {
		if n := leaf.logs.Count(`not permitted on the uplink`); n == 0 {
			return errors.New("denied publish not logged")
		}
		return nil
	})
	if n := leaf.logs.Count(`subject=config.x`); n != 1 {
		t.Fatalf("denied subject logged %d times, want once", n)
	}
	if s := leaf.up.Stats(); s.Reconnects != 0 || !s.Connected {
		t.Fatalf("link was lost: %+v", s)
	}
	// A local subscription the device may not have is not announced (a
	// literal one would make the hub close the link).
	local.SubscribeSync("secret.stuff")
	local.Flush()
	hubClient.Publish("secret.stuff", nil)
	if s := leaf.up.Stats(); s.Reconnects != 0 {
		t.Fatalf("link lost after a denied subscription: %+v", s)
	}
	if m, err := spy.NextMsg(200 * time.Millisecond); err == nil {
		t.Fatalf("another tenant saw %s from ACME's leaf", m.Subject)
	}
}

// Wrong credentials are refused with one clear log line and retried with
// a growing wait.
func TestIntegrationWrongCredentials(t *testing.T) {
	dev := newDevice(t)
	stranger := newDevice(t)
	hub := startHub(t, hubOpts(t, dev, nil))
	leaf := startLeaf(t, uplink.Config{URLs: []string{leafURL(hub)}, NKeySeedFile: stranger.seedFile})
	wait.For(t, 10*time.Second, func() error {
		if n := leaf.logs.Count("uplink connect failed again"); n < 3 {
			return fmt.Errorf("%d retries so far", n)
		}
		return nil
	})
	if n := leaf.logs.Count(`msg="hub refused the device's credentials"`); n != 1 {
		t.Fatalf("credential failure logged %d times at error level, want once:\n%s", n, leaf.logs)
	}
	if s := leaf.up.Stats(); s.Connected || !strings.Contains(s.LastError, "Authorization Violation") {
		t.Fatalf("stats %+v", s)
	}
	// Local clients are served while the link is down.
	local := connect(t, leaf.srv.ClientURL())
	sub, _ := local.SubscribeSync("x")
	local.Publish("x", nil)
	if _, err := sub.NextMsg(time.Second); err != nil {
		t.Fatal("local delivery while the link is down")
	}
}

// The configured up and down lists narrow what crosses the link below
// what the credentials allow.
func TestIntegrationUpAndDownFilters(t *testing.T) {
	dev := newDevice(t)
	hub := startHub(t, hubOpts(t, dev, nil))
	leaf := startLeaf(t, uplink.Config{URLs: []string{leafURL(hub)}, NKeySeedFile: dev.seedFile,
		Up: []string{"telemetry.>"}, Down: []string{"cmd.>"}})
	leaf.waitConnected(t)
	hubClient := connect(t, hub.ClientURL(), nats.UserInfo("app", "pw"))
	local := connect(t, leaf.srv.ClientURL())

	all, _ := hubClient.SubscribeSync(">")
	hubClient.Flush()
	local.Publish("status.x", nil) // not in up: stays local
	m := deliverEventually(t, func() error { return local.Publish("telemetry.x", nil) }, all)
	for ; m != nil; m, _ = all.NextMsg(100 * time.Millisecond) {
		if m.Subject == "status.x" {
			t.Fatal("a subject outside up reached the hub")
		}
	}

	other, _ := local.SubscribeSync("config.x") // not in down: not announced
	cmds, _ := local.SubscribeSync("cmd.x")
	local.Flush()
	deliverEventually(t, func() error { return hubClient.Publish("cmd.x", nil) }, cmds)
	hubClient.Publish("config.x", nil)
	hubClient.Publish("cmd.x", nil)
	hubClient.Flush()
	if _, err := cmds.NextMsg(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	if m, err := other.NextMsg(100 * time.Millisecond); err == nil {
		t.Fatalf("a subject outside down came down: %s", m.Subject)
	}
}
