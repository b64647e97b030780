package natsd

import (
	"slices"
	"time"
)

// Batch collects the clients that got output while one goroutine handled
// a read, so each client's writer is woken once per read instead of once
// per message. A client's reader has one; so does the uplink's reader. A
// Batch belongs to one goroutine.
type Batch struct {
	touched []*client
	last    *client

	// A local publisher whose subscriber falls behind is slowed a little,
	// as nats-server does, so that a subscriber that can keep up at a
	// slightly slower pace is not cut off as a slow consumer. The uplink's
	// reader never waits (its Batch leaves stall false): it must not block
	// on a local client.
	stall  bool
	stalls []chan struct{}
}

// Stall limits, as nats-server's: a wait per backed-up subscriber, and a
// total per read.
const (
	stallWait  = 2 * time.Millisecond
	stallTotal = 10 * time.Millisecond
)

// touch records that t has new output to write.
func (b *Batch) touch(t *client) {
	if t == b.last {
		return
	}
	b.last = t
	for _, x := range b.touched {
		if x == t {
			return
		}
	}
	b.touched = append(b.touched, t)
}

// stallOn records that a subscriber's output is backed up; Flush waits
// for it to drain, briefly.
func (b *Batch) stallOn(drained chan struct{}) {
	if b.stall && drained != nil && !slices.Contains(b.stalls, drained) {
		b.stalls = append(b.stalls, drained)
	}
}

// Flush wakes the writer of every client touched since the last Flush,
// then gives backed-up subscribers a moment to drain.
func (b *Batch) Flush() {
	for i, t := range b.touched {
		t.signalFlush()
		b.touched[i] = nil
	}
	b.touched = b.touched[:0]
	b.last = nil
	if len(b.stalls) == 0 {
		return
	}
	deadline := time.Now().Add(stallTotal)
	for i, drained := range b.stalls {
		wait := min(stallWait, time.Until(deadline))
		if wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-drained:
			case <-t.C:
			}
			t.Stop()
		}
		b.stalls[i] = nil
	}
	b.stalls = b.stalls[:0]
}
