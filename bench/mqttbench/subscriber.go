package main

import (
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// subscriber is one subscribing connection and its accounting of every
// message it received.
//
// Paho calls handle from one goroutine (OrderMatters true), but the run
// reads the accounting from another, possibly while a misbehaving broker
// still delivers, so it is kept under a lock. An uncontended lock costs
// the same for every broker.
type subscriber struct {
	name     string
	cl       mqtt.Client
	size     int           // payload size of every data message
	latency  bool          // record each message's latency
	warmup   uint64        // … from this sequence number on
	progress *atomic.Int64 // shared by the run: messages of any kind received
	ended    *atomic.Int64 // shared by the run: first end marker of each publisher received
	hook     func()        // tests only: called before each message is handled

	mu        sync.Mutex
	streams   []stream // one per publisher
	dups      uint64   // messages (data or end markers) received again
	reordered uint64   // data messages received after a later one of their publisher, or after its end marker
	malformed uint64   // messages with no valid header, an unknown publisher or a wrong size
	first     time.Time
	last      time.Time // of the last new data message
	latencies []time.Duration
}

// stream is what one subscriber received from one publisher.
type stream struct {
	seen     bitset
	received uint64 // distinct sequence numbers
	next     uint64 // one past the highest sequence number received
	ended    bool   // its end marker arrived
}

func newSubscriber(name string, pubs, size int, progress, ended *atomic.Int64) *subscriber {
	return &subscriber{name: name, size: size, progress: progress, ended: ended, streams: make([]stream, pubs)}
}

// handle is the Paho message handler. It does as little as it can: the
// subscriber's speed is part of what is measured, identically for every
// broker.
func (s *subscriber) handle(_ mqtt.Client, m mqtt.Message) {
	if s.hook != nil {
		s.hook()
	}
	now := time.Now()
	payload := m.Payload()
	h, ok := readHeader(payload)
	s.mu.Lock()
	switch {
	case !ok || int(h.pub) >= len(s.streams):
		s.malformed++
	case h.kind == kindEnd:
		st := &s.streams[h.pub]
		if st.ended {
			s.dups++
			break
		}
		st.ended = true
		s.ended.Add(1)
	case len(payload) != s.size:
		s.malformed++
	default:
		st := &s.streams[h.pub]
		if st.seen.testAndSet(h.seq) {
			s.dups++
			break
		}
		st.received++
		if h.seq < st.next || st.ended {
			s.reordered++
		}
		st.next = max(st.next, h.seq+1)
		if s.first.IsZero() {
			s.first = now
		}
		s.last = now
		if s.latency && h.seq >= s.warmup {
			s.latencies = append(s.latencies, now.Sub(epoch)-h.sent)
		}
	}
	s.mu.Unlock()
	s.progress.Add(1)
}

// subResult is one subscriber's accounting against what was sent.
type subResult struct {
	received   uint64 // distinct data messages that were sent
	lost       uint64 // sent but not received
	unexpected uint64 // received but not sent (not acknowledged to the publisher)
	dups       uint64
	reordered  uint64
	malformed  uint64
	unended    int // publishers whose end marker never arrived
	first      time.Time
	last       time.Time
	latencies  []time.Duration
}

// result accounts for what the subscriber received, given how many
// messages each publisher sent.
func (s *subscriber) result(sent []uint64) subResult {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := subResult{
		dups:      s.dups,
		reordered: s.reordered,
		malformed: s.malformed,
		first:     s.first,
		last:      s.last,
		latencies: s.latencies,
	}
	for p, st := range s.streams {
		in := st.seen.countBelow(sent[p])
		r.received += in
		r.lost += sent[p] - in
		r.unexpected += st.received - in
		if !st.ended {
			r.unended++
		}
	}
	return r
}

// rate is messages per second as received: distinct data messages over
// the time from the first to the last.
func (r subResult) rate() float64 {
	if d := r.last.Sub(r.first); d > 0 && r.received > 1 {
		return float64(r.received) / d.Seconds()
	}
	return 0
}
