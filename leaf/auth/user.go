package auth

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/canopy-iot/canopy/leaf/subject"
)

// User is the authenticated identity of one connection and its permission
// state. Authenticate returns a new User per connection: the decision
// caches and the reply subjects it may answer belong to that connection.
//
// Concurrency: CanPublish and CanSubscribe are called by the connection's
// own reader goroutine only (they handle its PUB and SUB); CanPublish's
// cache is not locked. DeliverAllowed, DeliverQueueAllowed and NoteReply
// run where messages are delivered to this connection, i.e. on any
// publisher's goroutine, and are safe for concurrent use. Name may be
// called from anywhere.
//
// The zero User has every permission.
type User struct {
	name  string
	perms *permissions // nil: everything allowed
	now   func() time.Time

	// pcache holds static publish decisions by subject, like nats-server's
	// pcache, so a repeated PUB costs one map lookup and no allocation.
	// Reader goroutine only.
	pcache map[string]bool

	// filter is set once a subscription overlaps a deny entry; from then on
	// deliveries are checked (nats-server: loadMsgDenyFilterIfNeeded). Until
	// then DeliverAllowed is one atomic load. Checking every delivery from
	// the start would decide the same, since a subscription that passed
	// CanSubscribe without overlapping a deny entry never receives a denied
	// subject; the flag only saves the lock.
	filter atomic.Bool
	dmu    sync.Mutex
	dcache map[deliverKey]bool // delivery denied, by subject and queue

	rmu     sync.Mutex
	replies map[string]time.Time // reply subject → when delivered
}

type deliverKey struct {
	subject, queue string
}

// Name is the user name, the public key of an NKey user, or "" for a
// client that authenticated with the token or needed no authentication.
func (u *User) Name() string { return u.name }

// CanPublish reports whether the user may publish to subj. When it returns
// false the server sends PubViolation(subj) and drops the message; the
// connection stays open.
//
// A decision found in the cache does not allocate. A subject denied by
// the lists is still allowed once if it is the reply subject of a request
// recently delivered to this connection and the user has allow_responses.
func (u *User) CanPublish(subj []byte) bool {
	p := u.perms
	if p == nil || !p.pubChecked {
		return true
	}
	allowed, ok := u.pcache[string(subj)]
	if !ok {
		s := string(subj)
		allowed = p.pubAllowed(s)
		u.cachePub(s, allowed)
	}
	if !allowed && p.responses {
		return u.useReply(subj)
	}
	return allowed
}

func (u *User) cachePub(s string, allowed bool) {
	if u.pcache == nil {
		u.pcache = make(map[string]bool, pubCacheMax)
	}
	if len(u.pcache) >= pubCacheMax {
		// Drop some entries, picked by map order (random enough), as
		// nats-server's prunePubPermsCache does.
		n := 0
		for k := range u.pcache {
			delete(u.pcache, k)
			if n++; n >= cachePrune {
				break
			}
		}
	}
	u.pcache[s] = allowed
}

// CanSubscribe reports whether the user may subscribe to subj, in queue
// group queue ("" for a plain subscription). When it returns false the
// server sends SubViolation(subj, queue) and does not subscribe; the
// connection stays open. The queue group "_sys_" is refused to everybody,
// as nats-server reserves it.
//
// As in nats-server, a deny entry narrower than a wildcard subscription
// does not refuse it: SUB "telemetry.>" is accepted with a deny of
// "telemetry.secret", and DeliverAllowed then keeps messages on
// "telemetry.secret" from this connection.
func (u *User) CanSubscribe(subj, queue string) bool {
	if queue == subject.SysQueue {
		return false
	}
	p := u.perms
	if p == nil {
		return true
	}
	if !p.subAllowed(subj, queue) {
		return false
	}
	if !u.filter.Load() && (queue != "" || subject.HasWildcard(subj)) && p.overlapsDeny(subj) {
		u.filter.Store(true)
	}
	return true
}

// DeliverAllowed reports whether a message on subj may be delivered to a
// plain subscription of this connection. It is false only for a subject
// the user's subscribe deny list names that reached it through a broader
// wildcard subscription; the server then skips this subscription silently,
// as nats-server does.
func (u *User) DeliverAllowed(subj []byte) bool { return u.deliverAllowed(subj, "") }

// DeliverQueueAllowed is DeliverAllowed for a subscription in queue group
// queue: deny entries naming a queue pattern apply too. When it is false
// the server should pick another member of the group, if any.
func (u *User) DeliverQueueAllowed(subj []byte, queue string) bool {
	return u.deliverAllowed(subj, queue)
}

func (u *User) deliverAllowed(subj []byte, queue string) bool {
	if !u.filter.Load() {
		return true
	}
	u.dmu.Lock()
	defer u.dmu.Unlock()
	if denied, ok := u.dcache[deliverKey{string(subj), queue}]; ok {
		return !denied
	}
	k := deliverKey{string(subj), queue}
	denied := u.perms.deliveryDenied(k.subject, queue)
	if u.dcache == nil {
		u.dcache = make(map[deliverKey]bool)
	}
	if len(u.dcache) >= deliverCacheMax {
		n := 0
		for k := range u.dcache {
			delete(u.dcache, k)
			if n++; n >= cachePrune {
				break
			}
		}
	}
	u.dcache[k] = denied
	return !denied
}

// NoteReply records reply, the reply subject of a message being delivered
// to this connection, so that a user with allow_responses may publish one
// response to it within ResponseTTL. It does nothing for other users, for
// an empty reply, and for a reply the user may publish to anyway. The
// server calls it for every delivered message that has a reply subject.
//
// At most maxReplies subjects are remembered per connection: past that,
// expired ones are dropped, then arbitrary ones, so a flood of requests
// that are never answered cannot grow memory.
func (u *User) NoteReply(reply []byte) {
	p := u.perms
	if p == nil || !p.responses || len(reply) == 0 {
		return
	}
	r := string(reply)
	if p.pubAllowed(r) {
		return
	}
	now := u.now()
	u.rmu.Lock()
	defer u.rmu.Unlock()
	if u.replies == nil {
		u.replies = make(map[string]time.Time)
	}
	if len(u.replies) >= maxReplies {
		u.pruneReplies(now)
	}
	u.replies[r] = now
}

// pruneReplies drops expired reply subjects, then arbitrary ones until an
// eighth of the room is free, so pruning happens rarely. rmu is held.
func (u *User) pruneReplies(now time.Time) {
	for r, t := range u.replies {
		if now.Sub(t) > ResponseTTL {
			delete(u.replies, r)
		}
	}
	for r := range u.replies {
		if len(u.replies) < maxReplies-maxReplies/8 {
			break
		}
		delete(u.replies, r)
	}
}

// useReply reports whether subj is a reply subject this connection may
// answer now, and uses it up: one response per request.
func (u *User) useReply(subj []byte) bool {
	u.rmu.Lock()
	defer u.rmu.Unlock()
	t, ok := u.replies[string(subj)]
	if !ok {
		return false
	}
	delete(u.replies, string(subj))
	return u.now().Sub(t) <= ResponseTTL
}
