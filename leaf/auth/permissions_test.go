package auth

import (
	"fmt"
	"testing"
)

func TestCanPublish(t *testing.T) {
	tests := []struct {
		name  string
		perms Permissions
		allow []string
		deny  []string
	}{
		{
			name:  "no permissions",
			allow: []string{"a", "a.b.c", "$SYS.REQ.x", "_INBOX.x"},
		},
		{
			name:  "allow and deny",
			perms: Permissions{Publish: SubjectPermission{Allow: []string{"foo.>", "bar"}, Deny: []string{"foo.secret", "foo.*.x"}}},
			allow: []string{"foo.a", "foo.b.y", "foo.secret.more", "bar"},
			deny:  []string{"foo.secret", "foo.b.x", "foo", "bar.x", "baz", ""},
		},
		{
			name:  "deny only",
			perms: Permissions{Publish: SubjectPermission{Deny: []string{"admin.>"}}},
			allow: []string{"a", "admin", "administrator.x"},
			deny:  []string{"admin.x", "admin.x.y"},
		},
		{
			name:  "deny everything",
			perms: Permissions{Publish: SubjectPermission{Deny: []string{">"}}},
			deny:  []string{"a", "a.b"},
		},
		{
			name:  "subscribe permissions leave publishing open",
			perms: Permissions{Subscribe: SubjectPermission{Allow: []string{"x"}}},
			allow: []string{"a", "y"},
		},
		{
			// A published "*" token is a literal token that only a
			// wildcard in the same place matches (reference A.11).
			name:  "published wildcard token",
			perms: Permissions{Publish: SubjectPermission{Allow: []string{"foo.*", "bar.baz"}}},
			allow: []string{"foo.*", "foo.>"},
			deny:  []string{"bar.*", "foo.a.b"},
		},
		{
			// nats-server: allow_responses without an allow list turns the
			// blanket allow off.
			name:  "allow_responses alone",
			perms: Permissions{AllowResponses: true},
			deny:  []string{"a", "_INBOX.x"},
		},
		{
			name:  "allow_responses with allow list",
			perms: Permissions{AllowResponses: true, Publish: SubjectPermission{Allow: []string{"svc.>"}}},
			allow: []string{"svc.a"},
			deny:  []string{"a"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := userWith(t, tt.perms)
			for round := range 2 { // the second round answers from the cache
				for _, s := range tt.allow {
					if !u.CanPublish([]byte(s)) {
						t.Errorf("round %d: CanPublish(%q) = false, want true", round, s)
					}
				}
				for _, s := range tt.deny {
					if u.CanPublish([]byte(s)) {
						t.Errorf("round %d: CanPublish(%q) = true, want false", round, s)
					}
				}
			}
		})
	}
}

type sub struct{ subject, queue string }

func (s sub) String() string { return fmt.Sprintf("%q %q", s.subject, s.queue) }

func TestCanSubscribe(t *testing.T) {
	tests := []struct {
		name  string
		perms Permissions
		allow []sub
		deny  []sub
	}{
		{
			name:  "no permissions",
			allow: []sub{{"a", ""}, {">", ""}, {"a.*", "q"}},
			deny:  []sub{{"a", "_sys_"}},
		},
		{
			name:  "allow and deny",
			perms: Permissions{Subscribe: SubjectPermission{Allow: []string{"foo.>", "bar"}, Deny: []string{"foo.secret"}}},
			allow: []sub{
				{"foo.a", ""}, {"foo.a.b", ""}, {"bar", ""}, {"bar", "q"},
				// Broader than the deny: accepted, filtered at delivery.
				{"foo.>", ""}, {"foo.*", ""}, {"foo.*", "q"},
			},
			deny: []sub{{"foo.secret", ""}, {"foo.secret", "q"}, {">", ""}, {"foo", ""}, {"bar.x", ""}, {"bar", "_sys_"}},
		},
		{
			// Allow entries are matched with the subscription's wildcards
			// taken as literal tokens, as nats-server's Sublist.Match does.
			name:  "wildcard allow entries",
			perms: Permissions{Subscribe: SubjectPermission{Allow: []string{"foo.*"}}},
			allow: []sub{{"foo.a", ""}, {"foo.*", ""}, {"foo.>", ""}},
			deny:  []sub{{"foo.a.b", ""}, {">", ""}, {"*.a", ""}},
		},
		{
			name:  "deny entry covering the wildcard",
			perms: Permissions{Subscribe: SubjectPermission{Deny: []string{"foo.*", "bar.>"}}},
			allow: []sub{{"foo", ""}, {"foo.a.b", ""}, {">", ""}, {"bar", ""}},
			deny:  []sub{{"foo.a", ""}, {"foo.*", ""}, {"foo.>", ""}, {"bar.a", ""}, {"bar.*.b", ""}, {"bar.>", ""}},
		},
		// The three cases of nats-server's processSubEx comment.
		{
			name:  "plain allow permits any queue",
			perms: Permissions{Subscribe: SubjectPermission{Allow: []string{"foo"}}},
			allow: []sub{{"foo", ""}, {"foo", "v1"}, {"foo", "v2"}},
		},
		{
			name:  "queue allow permits that queue only",
			perms: Permissions{Subscribe: SubjectPermission{Allow: []string{"foo v1"}}},
			allow: []sub{{"foo", "v1"}},
			deny:  []sub{{"foo", ""}, {"foo", "v2"}},
		},
		{
			name:  "plain and queue allow",
			perms: Permissions{Subscribe: SubjectPermission{Allow: []string{"foo", "foo v1"}}},
			allow: []sub{{"foo", ""}, {"foo", "v1"}},
			deny:  []sub{{"foo", "v2"}},
		},
		{
			name:  "queue pattern",
			perms: Permissions{Subscribe: SubjectPermission{Allow: []string{"jobs.> workers.*"}}},
			allow: []sub{{"jobs.a", "workers.eu"}, {"jobs.a", "workers.*"}, {"jobs.>", "workers.us"}},
			deny:  []sub{{"jobs.a", "workers"}, {"jobs.a", "workers.eu.1"}, {"jobs.a", ""}, {"other", "workers.eu"}},
		},
		{
			name:  "literal queue name with a star",
			perms: Permissions{Subscribe: SubjectPermission{Allow: []string{"foo v1*"}}},
			allow: []sub{{"foo", "v1*"}},
			deny:  []sub{{"foo", "v1"}, {"foo", "v1x"}},
		},
		{
			name:  "queue deny",
			perms: Permissions{Subscribe: SubjectPermission{Deny: []string{"foo v1", "bar.* q.>"}}},
			allow: []sub{{"foo", ""}, {"foo", "v2"}, {"bar.a", ""}, {"bar.a", "q"}, {"bar.a", "r.x"}},
			deny:  []sub{{"foo", "v1"}, {"bar.a", "q.x"}, {"bar.*", "q.x.y"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := userWith(t, tt.perms)
			for _, s := range tt.allow {
				if !u.CanSubscribe(s.subject, s.queue) {
					t.Errorf("CanSubscribe(%v) = false, want true", s)
				}
			}
			for _, s := range tt.deny {
				if u.CanSubscribe(s.subject, s.queue) {
					t.Errorf("CanSubscribe(%v) = true, want false", s)
				}
			}
		})
	}
}

func TestCanSubscribeSysQueueWithoutAuth(t *testing.T) {
	u, err := mustNew(t, Config{}).Authenticate(Credentials{}, "")
	if err != nil {
		t.Fatal(err)
	}
	if u.CanSubscribe("foo", "_sys_") {
		t.Error(`queue "_sys_" accepted`)
	}
	if !u.CanSubscribe("foo", "_sys") || !u.CanSubscribe(">", "") {
		t.Error("ordinary subscriptions refused")
	}
}

func TestDeliverAllowed(t *testing.T) {
	type delivery struct {
		subject, queue string
		want           bool
	}
	tests := []struct {
		name       string
		deny       []string
		subs       []sub // accepted subscriptions, in order
		filtering  bool  // whether deliveries are checked afterwards
		deliveries []delivery
	}{
		{
			name:       "literal subscriptions need no filter",
			deny:       []string{"foo.secret"},
			subs:       []sub{{"foo.a", ""}, {"bar", ""}},
			deliveries: []delivery{{"foo.a", "", true}, {"bar", "", true}},
		},
		{
			name:       "wildcard apart from the deny list",
			deny:       []string{"foo.secret"},
			subs:       []sub{{"bar.*", ""}, {"foo.a.>", ""}},
			deliveries: []delivery{{"bar.a", "", true}},
		},
		{
			name:      "wildcard over a deny entry",
			deny:      []string{"foo.secret", "foo.*.private"},
			subs:      []sub{{"foo.>", ""}},
			filtering: true,
			deliveries: []delivery{
				{"foo.secret", "", false},
				{"foo.a.private", "", false},
				{"foo.public", "", true},
				{"foo.secret.x", "", true},
				{"foo.secret", "", false}, // cached
			},
		},
		{
			name:      "full wildcard",
			deny:      []string{"$SYS.>"},
			subs:      []sub{{">", ""}},
			filtering: true,
			deliveries: []delivery{
				{"$SYS.ACCOUNT.x", "", false},
				{"$SYSTEM", "", true},
				{"a", "", true},
			},
		},
		{
			name:      "queue deny entries",
			deny:      []string{"jobs.x q1", "jobs.y q.>"},
			subs:      []sub{{"jobs.*", "q1"}},
			filtering: true,
			deliveries: []delivery{
				{"jobs.x", "q1", false},
				{"jobs.x", "q2", true},
				{"jobs.x", "", true},
				{"jobs.y", "q.eu", false},
				{"jobs.y", "q", true},
				{"jobs.z", "q1", true},
			},
		},
		{
			name:       "literal queue subscription overlapping a queue deny",
			deny:       []string{"jobs.x q1"},
			subs:       []sub{{"jobs.x", "q2"}},
			filtering:  true,
			deliveries: []delivery{{"jobs.x", "q2", true}, {"jobs.x", "q1", false}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := userWith(t, Permissions{Subscribe: SubjectPermission{Deny: tt.deny}})
			for _, s := range tt.subs {
				if !u.CanSubscribe(s.subject, s.queue) {
					t.Fatalf("CanSubscribe(%v) refused", s)
				}
			}
			if got := u.filter.Load(); got != tt.filtering {
				t.Errorf("filtering = %v, want %v", got, tt.filtering)
			}
			for _, d := range tt.deliveries {
				var got bool
				if d.queue == "" {
					got = u.DeliverAllowed([]byte(d.subject))
				} else {
					got = u.DeliverQueueAllowed([]byte(d.subject), d.queue)
				}
				if got != d.want {
					t.Errorf("deliver %q to queue %q = %v, want %v", d.subject, d.queue, got, d.want)
				}
			}
		})
	}
}

func TestCollide(t *testing.T) {
	tests := []struct {
		a, b string
		want bool
	}{
		{"foo", "foo", true},
		{"foo", "bar", false},
		{"foo.*", "foo.bar", true},
		{"foo.*", "foo", false},
		{"foo.*", "foo.bar.baz", false},
		{"foo.>", "foo", false},
		{"foo.>", "foo.bar.baz", true},
		{">", "a", true},
		{">", "a.b.c", true},
		{"*.b", "a.*", true},
		{"*.b", "a.c", false},
		{"a.*.c", "a.b.>", true},
		{"a.*.c", "a.b", false},
		{"*", "a.b", false},
		{"*.>", "a", false},
		{"*.>", "a.b", true},
	}
	for _, tt := range tests {
		if got := collide(tt.a, tt.b); got != tt.want {
			t.Errorf("collide(%q, %q) = %v, want %v", tt.a, tt.b, got, tt.want)
		}
		if got := collide(tt.b, tt.a); got != tt.want {
			t.Errorf("collide(%q, %q) = %v, want %v", tt.b, tt.a, got, tt.want)
		}
	}
}
