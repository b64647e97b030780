package auth

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

// fakeClock is a settable time source for reply expiry.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func TestAllowResponses(t *testing.T) {
	const reply = "_INBOX.abc.1"
	tests := []struct {
		name  string
		perms Permissions
		steps func(t *testing.T, u *User, clock *fakeClock)
	}{
		{
			name:  "one response per request",
			perms: Permissions{AllowResponses: true},
			steps: func(t *testing.T, u *User, _ *fakeClock) {
				want(t, u, reply, false)
				u.NoteReply([]byte(reply))
				want(t, u, "_INBOX.abc.2", false)
				want(t, u, reply, true)
				want(t, u, reply, false)
				u.NoteReply([]byte(reply)) // a second request with the same reply
				want(t, u, reply, true)
			},
		},
		{
			name:  "expires after ResponseTTL",
			perms: Permissions{AllowResponses: true},
			steps: func(t *testing.T, u *User, clock *fakeClock) {
				u.NoteReply([]byte(reply))
				u.NoteReply([]byte("_INBOX.late"))
				clock.advance(ResponseTTL)
				want(t, u, reply, true)
				clock.advance(time.Nanosecond)
				want(t, u, "_INBOX.late", false)
			},
		},
		{
			name:  "not without allow_responses",
			perms: Permissions{Publish: SubjectPermission{Allow: []string{"svc.>"}}},
			steps: func(t *testing.T, u *User, _ *fakeClock) {
				u.NoteReply([]byte(reply))
				want(t, u, reply, false)
				if len(u.replies) != 0 {
					t.Errorf("%d replies remembered", len(u.replies))
				}
			},
		},
		{
			name:  "replies the user may publish to anyway are not tracked",
			perms: Permissions{AllowResponses: true, Publish: SubjectPermission{Allow: []string{"_INBOX.>"}}},
			steps: func(t *testing.T, u *User, _ *fakeClock) {
				u.NoteReply([]byte(reply))
				if len(u.replies) != 0 {
					t.Errorf("%d replies remembered", len(u.replies))
				}
				want(t, u, reply, true)
				want(t, u, reply, true)
			},
		},
		{
			// As in nats-server, a tracked reply is allowed even when the
			// deny list names it.
			name:  "response beats deny",
			perms: Permissions{AllowResponses: true, Publish: SubjectPermission{Allow: []string{">"}, Deny: []string{"_INBOX.>"}}},
			steps: func(t *testing.T, u *User, _ *fakeClock) {
				want(t, u, reply, false)
				u.NoteReply([]byte(reply))
				want(t, u, reply, true)
				want(t, u, reply, false)
			},
		},
		{
			name:  "empty reply ignored",
			perms: Permissions{AllowResponses: true},
			steps: func(t *testing.T, u *User, _ *fakeClock) {
				u.NoteReply(nil)
				want(t, u, "", false)
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := &fakeClock{t: time.Unix(1_700_000_000, 0)}
			u := userWith(t, tt.perms)
			u.now = clock.now
			tt.steps(t, u, clock)
		})
	}
}

func want(t *testing.T, u *User, subj string, allowed bool) {
	t.Helper()
	if got := u.CanPublish([]byte(subj)); got != allowed {
		t.Errorf("CanPublish(%q) = %v, want %v", subj, got, allowed)
	}
}

func TestRepliesBounded(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	u := userWith(t, Permissions{AllowResponses: true})
	u.now = clock.now
	for i := range maxReplies {
		u.NoteReply(fmt.Appendf(nil, "_INBOX.old.%d", i))
	}
	clock.advance(ResponseTTL + time.Second)
	for i := range maxReplies + 100 {
		u.NoteReply(fmt.Appendf(nil, "_INBOX.new.%d", i))
		if len(u.replies) > maxReplies {
			t.Fatalf("%d replies remembered, limit %d", len(u.replies), maxReplies)
		}
	}
	// Expired ones went first.
	for r := range u.replies {
		if r[:10] == "_INBOX.old" {
			t.Fatalf("expired reply %q kept", r)
		}
	}
	// The latest request can be answered.
	want(t, u, fmt.Sprintf("_INBOX.new.%d", maxReplies+99), true)
}

func TestPublishCacheBounded(t *testing.T) {
	u := userWith(t, Permissions{Publish: SubjectPermission{Allow: []string{"ok.>"}}})
	for i := range 10 * pubCacheMax {
		ok := i%2 == 0
		s := fmt.Sprintf("no.%d", i)
		if ok {
			s = fmt.Sprintf("ok.%d", i)
		}
		if got := u.CanPublish([]byte(s)); got != ok {
			t.Fatalf("CanPublish(%q) = %v", s, got)
		}
		if len(u.pcache) > pubCacheMax {
			t.Fatalf("publish cache holds %d entries, limit %d", len(u.pcache), pubCacheMax)
		}
	}
}

func TestDeliverCacheBounded(t *testing.T) {
	u := userWith(t, Permissions{Subscribe: SubjectPermission{Deny: []string{"a.secret"}}})
	if !u.CanSubscribe("a.*", "") {
		t.Fatal("refused")
	}
	for i := range 10 * deliverCacheMax {
		if !u.DeliverAllowed(fmt.Appendf(nil, "a.%d", i)) {
			t.Fatal("denied")
		}
		if len(u.dcache) > deliverCacheMax {
			t.Fatalf("delivery cache holds %d entries", len(u.dcache))
		}
	}
	if u.DeliverAllowed([]byte("a.secret")) {
		t.Fatal("a.secret delivered")
	}
}

// TestHotPathsDoNotAllocate: a PUB checked against a cached decision, and
// a delivery checked against a cached one, allocate nothing.
func TestHotPathsDoNotAllocate(t *testing.T) {
	u := userWith(t, Permissions{
		Publish:        SubjectPermission{Allow: []string{"telemetry.>"}, Deny: []string{"telemetry.secret"}},
		Subscribe:      SubjectPermission{Deny: []string{"cmd.secret"}},
		AllowResponses: true,
	})
	if !u.CanSubscribe("cmd.>", "") || !u.CanSubscribe("cmd.*", "q") {
		t.Fatal("refused")
	}
	allowed := []byte("telemetry.device-1.temperature")
	denied := []byte("telemetry.secret")
	reply := []byte("_INBOX.never-delivered")
	dsub := []byte("cmd.reboot")
	// Warm up the caches.
	u.CanPublish(allowed)
	u.CanPublish(denied)
	u.CanPublish(reply)
	u.DeliverAllowed(dsub)
	u.DeliverQueueAllowed(dsub, "q")

	tests := []struct {
		name string
		fn   func() bool
		want bool
	}{
		{"CanPublish allowed", func() bool { return u.CanPublish(allowed) }, true},
		{"CanPublish denied", func() bool { return u.CanPublish(denied) }, false},
		{"CanPublish denied, reply lookup", func() bool { return u.CanPublish(reply) }, false},
		{"DeliverAllowed", func() bool { return u.DeliverAllowed(dsub) }, true},
		{"DeliverQueueAllowed", func() bool { return u.DeliverQueueAllowed(dsub, "q") }, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got bool
			allocs := testing.AllocsPerRun(1000, func() { got = tt.fn() })
			if got != tt.want {
				t.Fatalf("result %v, want %v", got, tt.want)
			}
			if allocs != 0 {
				t.Errorf("%v allocations per call, want 0", allocs)
			}
		})
	}

	open := userWith(t, Permissions{})
	if n := testing.AllocsPerRun(1000, func() { open.CanPublish(allowed) }); n != 0 {
		t.Errorf("unrestricted CanPublish: %v allocations", n)
	}
}

// TestUserConcurrency runs the reader goroutine's calls against delivery
// calls from other goroutines; run with -race.
func TestUserConcurrency(t *testing.T) {
	u := userWith(t, Permissions{
		Publish:        SubjectPermission{Allow: []string{"svc.>"}},
		Subscribe:      SubjectPermission{Deny: []string{"req.secret", "req.x q"}},
		AllowResponses: true,
	})
	const n = 2000
	var wg sync.WaitGroup
	wg.Go(func() { // the connection's reader
		for i := range n {
			u.CanPublish(fmt.Appendf(nil, "_INBOX.%d", i%300))
			u.CanPublish([]byte("svc.a"))
			u.CanSubscribe("req.*", "q")
			u.CanSubscribe(">", "")
		}
	})
	for g := range 4 { // publishers delivering to this connection
		wg.Go(func() {
			for i := range n {
				u.NoteReply(fmt.Appendf(nil, "_INBOX.%d", (i+g)%300))
				u.DeliverAllowed([]byte("req.secret"))
				u.DeliverQueueAllowed([]byte("req.x"), "q")
				_ = u.Name()
			}
		})
	}
	wg.Wait()
	if u.DeliverAllowed([]byte("req.secret")) || u.DeliverQueueAllowed([]byte("req.x"), "q") {
		t.Error("denied subject delivered")
	}
}
