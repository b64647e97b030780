package subject

import (
	"fmt"
	"iter"
)

// Key is a (subject, queue) pair as the hub keys leaf interest: one LS+
// per key. Queue is "" for plain interest.
type Key struct {
	Subject string
	Queue   string
}

// Interest counts local subscriptions per Key, because the hub does not:
// a second LS+ for a key does nothing and one LS- removes it. The uplink
// sends LS+ when Add returns 1 and LS- when Remove returns 0; for a queue
// key it also re-sends LS+ with the new count as the weight whenever the
// count changes.
//
// The zero value is ready to use. Interest is not safe for concurrent use:
// the LS+/LS- it triggers must reach the hub in the order of the counts,
// so the caller guards it with the lock that orders those writes.
type Interest struct {
	n map[Key]int
}

// Add counts one more subscription on (subject, queue) and returns the new
// count.
func (in *Interest) Add(subject, queue string) int {
	if in.n == nil {
		in.n = make(map[Key]int)
	}
	k := Key{subject, queue}
	in.n[k]++
	return in.n[k]
}

// Remove counts one subscription less on (subject, queue) and returns the
// new count, or fails with ErrNotFound if the count is already zero.
func (in *Interest) Remove(subject, queue string) (int, error) {
	k := Key{subject, queue}
	c, ok := in.n[k]
	if !ok {
		return 0, fmt.Errorf("interest %q queue %q: %w", subject, queue, ErrNotFound)
	}
	if c == 1 {
		delete(in.n, k)
		return 0, nil
	}
	in.n[k] = c - 1
	return c - 1, nil
}

// Count returns the count for (subject, queue).
func (in *Interest) Count(subject, queue string) int { return in.n[Key{subject, queue}] }

// Len returns the number of keys with a non-zero count.
func (in *Interest) Len() int { return len(in.n) }

// All yields every key with its count, in no particular order: what the
// uplink announces again after a reconnect.
func (in *Interest) All() iter.Seq2[Key, int] {
	return func(yield func(Key, int) bool) {
		for k, c := range in.n {
			if !yield(k, c) {
				return
			}
		}
	}
}
