package hub

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// rolloutLease decides which hub node runs a tenant's rollouts when
// several do: the holder of key "lease" in the tenant's "fw-rollouts"
// bucket. The holder rewrites the key every ttl/4; another node takes
// it over once the key's revision has not changed for ttl by its own
// clock (so clocks need not agree, only run at about the same rate), and
// a node that stops cleanly deletes its lease so that another takes over
// at once. Holders are named by server name, so a restarted node takes
// its own lease back without waiting.
//
// A holder that cannot renew stops acting after ttl/2, well before any
// other node may take over. Even if two nodes acted at once (a paused
// process, say), every rollout change is written with the revision it
// was computed from, so one of them fails and re-reads instead of
// overwriting the other; the Desired documents both wrote are the same.
type rolloutLease struct {
	kv     jetstream.KeyValue
	holder string
	ttl    time.Duration

	held    bool
	rev     uint64    // last revision of the key seen or written
	seen    time.Time // when rev was first seen (another's lease)
	renewed time.Time // when this node last wrote the key
}

// leaseDoc is the lease key's value: for people reading the bucket, and
// so that a restarted node recognises its own lease.
type leaseDoc struct {
	Holder  string    `json:"holder"`
	Renewed time.Time `json:"renewed"`
}

func newRolloutLease(kv jetstream.KeyValue, holder string, ttl time.Duration) *rolloutLease {
	return &rolloutLease{kv: kv, holder: holder, ttl: ttl}
}

// Held reports whether this node may act at now.
func (l *rolloutLease) Held(now time.Time) bool {
	return l.held && now.Sub(l.renewed) < l.ttl/2
}

// Renew is the interval at which tick must be called.
func (l *rolloutLease) Renew() time.Duration { return l.ttl / 4 }

// tick takes, renews or watches the lease; it returns Held(now). An error
// is a failure to talk to the bucket (a lost race is not one).
func (l *rolloutLease) tick(ctx context.Context, now time.Time) (bool, error) {
	doc, err := json.Marshal(leaseDoc{Holder: l.holder, Renewed: now.UTC()})
	if err != nil {
		return false, err
	}
	e, err := l.kv.Get(ctx, rolloutLeaseKey)
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
		rev, err := l.kv.Create(ctx, rolloutLeaseKey, doc)
		if errors.Is(err, jetstream.ErrKeyExists) {
			l.held = false
			return false, nil
		}
		if err != nil {
			return l.Held(now), fmt.Errorf("take rollout lease: %w", err)
		}
		l.took(rev, now)
		return true, nil
	case err != nil:
		return l.Held(now), fmt.Errorf("read rollout lease: %w", err)
	}
	var cur leaseDoc
	if json.Unmarshal(e.Value(), &cur) != nil {
		cur = leaseDoc{} // unreadable: treated as another's, taken over when stale
	}
	if cur.Holder != l.holder {
		if e.Revision() != l.rev {
			l.held, l.rev, l.seen = false, e.Revision(), now
			return false, nil
		}
		if now.Sub(l.seen) < l.ttl {
			return false, nil
		}
	}
	rev, err := l.kv.Update(ctx, rolloutLeaseKey, doc, e.Revision())
	if errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		l.held = false
		return false, nil
	}
	if err != nil {
		return l.Held(now), fmt.Errorf("renew rollout lease: %w", err)
	}
	l.took(rev, now)
	return true, nil
}

func (l *rolloutLease) took(rev uint64, now time.Time) {
	l.held, l.rev, l.renewed = true, rev, now
}

// release deletes the lease if this node still holds it, so that
// another node takes over at once.
func (l *rolloutLease) release(ctx context.Context) error {
	if !l.held {
		return nil
	}
	l.held = false
	err := l.kv.Delete(ctx, rolloutLeaseKey, jetstream.LastRevision(l.rev))
	if err != nil && !errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return fmt.Errorf("release rollout lease: %w", err)
	}
	return nil
}
