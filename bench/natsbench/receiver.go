package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
)

// seqBytes is the size of the big-endian sequence number that starts every
// payload; it is also the smallest payload natsbench sends.
const seqBytes = 8

// group is the set of receivers of one run (independent subscribers, or the
// members of one queue group) and what they must receive between them.
type group struct {
	msgs    int   // messages published, with sequence numbers 0…msgs-1
	size    int   // payload size of each
	queue   bool  // members share a queue group: each message goes to one
	expect  int64 // messages the whole group must receive
	members []*receiver

	total atomic.Int64
	done  chan struct{} // closed by the handler that receives message number expect
	last  time.Time     // when done was closed; read only after <-done

	probed    chan struct{} // closed when any member has received a probe
	probeOnce sync.Once
}

// receiver is one subscribing connection that accounts for every message
// nats.go hands it.
//
// nats.go calls a subscription's handler from one goroutine, but verify and
// progress read the accounting from another, possibly while a misbehaving
// server still delivers messages, so it is kept under a lock. Taking an
// uncontended lock costs the same for every server.
type receiver struct {
	name string
	g    *group
	nc   *nats.Conn
	sub  *nats.Subscription

	mu        sync.Mutex
	count     int64     // messages received
	seen      bitset    // sequence numbers received
	dups      int64     // sequence numbers this receiver had already seen
	malformed int64     // wrong payload size or sequence number out of range
	first     time.Time // when the first message arrived

	probed    chan struct{} // closed when this receiver has received a probe
	probeOnce sync.Once
}

// newGroup connects n receivers to subject (as one queue group if queue is
// not empty) and returns once the server has registered every
// subscription, so that nothing published afterwards can miss them.
func newGroup(url, subject, queue string, n, msgs, size int, f failures) (*group, error) {
	g := &group{
		msgs:   msgs,
		size:   size,
		queue:  queue != "",
		expect: int64(msgs),
		done:   make(chan struct{}),
		probed: make(chan struct{}),
	}
	if !g.queue {
		g.expect = int64(n) * int64(msgs)
	}
	for i := range n {
		r := &receiver{name: fmt.Sprintf("receiver %d", i+1), g: g, seen: newBitset(msgs), probed: make(chan struct{})}
		g.members = append(g.members, r)
		nc, err := connect(url, r.name, f)
		if err != nil {
			g.close()
			return nil, err
		}
		r.nc = nc
		if g.queue {
			r.sub, err = nc.QueueSubscribe(subject, queue, r.handle)
		} else {
			r.sub, err = nc.Subscribe(subject, r.handle)
		}
		if err != nil {
			g.close()
			return nil, fmt.Errorf("%s: subscribe: %w", r.name, err)
		}
		// No client-side limit: see the package doc.
		if err := r.sub.SetPendingLimits(-1, -1); err != nil {
			g.close()
			return nil, fmt.Errorf("%s: pending limits: %w", r.name, err)
		}
		// The PONG comes back after the server has processed the SUB.
		if err := nc.FlushTimeout(flushTimeout); err != nil {
			g.close()
			return nil, fmt.Errorf("%s: flush after subscribe: %w", r.name, err)
		}
	}
	return g, nil
}

func (g *group) close() {
	for _, r := range g.members {
		if r.nc != nil {
			r.nc.Close()
		}
	}
}

// handle is the subscription handler. It does as little as it can: the
// receiver's speed is part of what is measured, identically for every
// server.
func (r *receiver) handle(m *nats.Msg) {
	if len(m.Data) == 0 {
		r.probe()
		return
	}
	r.mu.Lock()
	r.count++
	if r.count == 1 {
		r.first = time.Now()
	}
	if len(m.Data) != r.g.size {
		r.malformed++
	} else if seq := binary.BigEndian.Uint64(m.Data); seq >= uint64(r.g.msgs) {
		r.malformed++
	} else if r.seen.testAndSet(seq) {
		r.dups++
	}
	r.mu.Unlock()
	if r.g.total.Add(1) == r.g.expect {
		r.g.last = time.Now()
		close(r.g.done)
	}
}

// probe notes a probe: an empty message, which no run counts (every
// counted message carries at least its sequence number).
func (r *receiver) probe() {
	r.probeOnce.Do(func() { close(r.probed) })
	r.g.probeOnce.Do(func() { close(r.g.probed) })
}

// probeEvery is how often awaitProbe publishes another probe while none
// has arrived.
const probeEvery = 20 * time.Millisecond

// probeTimeout is how long a run waits, by default, for a probe to cross:
// a leafnode link that is not up by then is not going to come up.
const probeTimeout = 30 * time.Second

// awaitProbe publishes empty messages on subject from pub until every
// member (one member, for a queue group) has received one, and returns
// how many it published. Once a probe has arrived, the receivers'
// interest has reached pub's server, and every message pub publishes
// afterwards is delivered behind it in order. Probes still on their way
// are ignored by the receivers.
func (g *group) awaitProbe(ctx context.Context, pub *nats.Conn, subject string, timeout time.Duration, f failures) (int, error) {
	waitFor := []<-chan struct{}{g.probed}
	if !g.queue {
		waitFor = waitFor[:0]
		for _, r := range g.members {
			waitFor = append(waitFor, r.probed)
		}
	}
	tick := time.NewTicker(probeEvery)
	defer tick.Stop()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	sent := 0
	send := func() error {
		sent++
		if err := pub.Publish(subject, nil); err != nil {
			return fmt.Errorf("publisher: probe: %w", err)
		}
		return pub.FlushTimeout(flushTimeout)
	}
	if err := send(); err != nil {
		return sent, err
	}
	for _, probed := range waitFor {
		for arrived := false; !arrived; {
			select {
			case <-probed:
				arrived = true
			case <-tick.C:
				if err := send(); err != nil {
					return sent, err
				}
			case err := <-f:
				return sent, err
			case <-ctx.Done():
				return sent, fmt.Errorf("waiting for a probe to reach the receivers: %w", ctx.Err())
			case <-deadline.C:
				return sent, fmt.Errorf("none of %d probes published every %v reached the receivers within %v: "+
					"the receivers' interest did not reach the publisher's server", sent, probeEvery, timeout)
			}
		}
	}
	return sent, nil
}

// wait returns when the group has received as many messages as expected.
// It is called once the publisher has flushed, so every message is in the
// server: if no message arrives for stall, the rest are taken as lost.
func (g *group) wait(ctx context.Context, f failures, stall time.Duration) error {
	tick := time.NewTicker(stall / 20)
	defer tick.Stop()
	seen, since := g.total.Load(), time.Now()
	for {
		select {
		case <-g.done:
			return nil
		case err := <-f:
			return err
		case <-ctx.Done():
			return fmt.Errorf("waiting for receivers: %w; %s", ctx.Err(), g.progress())
		case <-tick.C:
			if n := g.total.Load(); n != seen {
				seen, since = n, time.Now()
			} else if time.Since(since) >= stall {
				return fmt.Errorf("no message for %v after the publisher flushed: %s", stall, g.progress())
			}
		}
	}
}

// settle makes sure that nothing more is on its way to any receiver, so
// that verify sees duplicates or extra messages that the server sent after
// the expected count was reached. A flush round trip puts everything the
// server sent before its PONG into the subscription's queue; a barrier
// then runs after the handler has returned for all of it.
func (g *group) settle(ctx context.Context, f failures) error {
	for _, r := range g.members {
		if err := r.nc.FlushTimeout(flushTimeout); err != nil {
			return fmt.Errorf("%s: flush: %w", r.name, err)
		}
		passed := make(chan struct{})
		if err := r.nc.Barrier(func() { close(passed) }); err != nil {
			return fmt.Errorf("%s: barrier: %w", r.name, err)
		}
		select {
		case <-passed:
		case err := <-f:
			return err
		case <-ctx.Done():
			return fmt.Errorf("%s: draining its queue: %w", r.name, ctx.Err())
		}
	}
	// A failure reported while settling still spoils the run.
	select {
	case err := <-f:
		return err
	default:
		return nil
	}
}

// verify checks, after settle, that every message was received exactly
// once by every subscriber, or exactly once across a queue group. All
// problems are reported together.
func (g *group) verify() error {
	for _, r := range g.members {
		r.mu.Lock()
		defer r.mu.Unlock()
	}
	var errs []error
	for _, r := range g.members {
		if r.dups > 0 {
			errs = append(errs, fmt.Errorf("%s: %d duplicate messages", r.name, r.dups))
		}
		if r.malformed > 0 {
			errs = append(errs, fmt.Errorf("%s: %d messages with a wrong size or sequence number", r.name, r.malformed))
		}
		if !g.queue && r.count != int64(g.msgs) {
			errs = append(errs, fmt.Errorf("%s: received %d messages, want exactly %d", r.name, r.count, g.msgs))
		}
	}
	if g.queue {
		union := newBitset(g.msgs)
		overlap := 0
		for _, r := range g.members {
			for i, w := range r.seen {
				overlap += bits.OnesCount64(union[i] & w)
				union[i] |= w
			}
		}
		if overlap > 0 {
			errs = append(errs, fmt.Errorf("queue group: %d messages delivered to more than one member", overlap))
		}
		if missing := g.msgs - union.count(); missing > 0 {
			errs = append(errs, fmt.Errorf("queue group: %d of %d messages never delivered", missing, g.msgs))
		}
		var n int64
		for _, r := range g.members {
			n += r.count
		}
		if n != int64(g.msgs) {
			errs = append(errs, fmt.Errorf("queue group: received %d messages in all, want exactly %d", n, g.msgs))
		}
	}
	return errors.Join(errs...)
}

// elapsed is the time from the first message received by any member to the
// last one the group expected. Call it after wait.
func (g *group) elapsed() time.Duration {
	first := g.last
	for _, r := range g.members {
		r.mu.Lock()
		if !r.first.IsZero() && r.first.Before(first) {
			first = r.first
		}
		r.mu.Unlock()
	}
	return g.last.Sub(first)
}

// counts returns the messages each member received.
func (g *group) counts() []int64 {
	var c []int64
	for _, r := range g.members {
		r.mu.Lock()
		c = append(c, r.count)
		r.mu.Unlock()
	}
	return c
}

// progress describes how far the receivers got, for errors.
func (g *group) progress() string {
	var b strings.Builder
	fmt.Fprintf(&b, "received %d of %d messages (", g.total.Load(), g.expect)
	for i, r := range g.members {
		if i > 0 {
			b.WriteString(", ")
		}
		r.mu.Lock()
		fmt.Fprintf(&b, "%s: %d", r.name, r.count)
		r.mu.Unlock()
	}
	b.WriteString(")")
	return b.String()
}

// bitset is a set of sequence numbers.
type bitset []uint64

func newBitset(n int) bitset { return make(bitset, (n+63)/64) }

// testAndSet adds i and reports whether it was already there.
func (b bitset) testAndSet(i uint64) bool {
	w, m := i/64, uint64(1)<<(i%64)
	had := b[w]&m != 0
	b[w] |= m
	return had
}

func (b bitset) count() int {
	n := 0
	for _, w := range b {
		n += bits.OnesCount64(w)
	}
	return n
}
