package natsd

import (
	"iter"

	"github.com/canopy-iot/canopy/leaf/subject"
)

// Uplink is the link to the hub, as the local server sees it (leaf/uplink
// implements it). The server tells it about local interest and offers it
// every local publish; messages from the hub come back through Deliver.
type Uplink interface {
	// Interest reports the new number of local subscriptions on (subject,
	// queue) after each change; 0 means the last one went. Calls come in
	// the order of the changes, before the client's next operation is
	// handled, so an interest is announced before a message whose reply
	// it covers.
	Interest(subject, queue string, count int)
	// Forward offers a message published by a local client. localGroups
	// lists the queue groups that already got it locally: the hub must
	// not pick a member of those. It reports whether the message was sent
	// to the hub (a request sent there is not answered with "no
	// responders"), and, when the link's queue is backed up, a channel
	// closed once it drained: the publisher is slowed on it a little, as
	// for a backed-up local subscriber. The slices are valid only during
	// the call.
	Forward(subject, reply, hdr, payload []byte, localGroups []string) (sent bool, drained chan struct{})
}

// SetUplink connects the server to the hub link. Call it before Run.
func (s *Server) SetUplink(u Uplink) { s.uplink = u }

// Ingest takes local publishes into durable streams (leaf/stream
// implements it).
type Ingest interface {
	// Ingest is offered every message a network client publishes, after
	// its delivery; it reports whether a stream took it (a request a
	// stream took is answered by the stream, not with "no responders").
	// The slices are valid only during the call.
	Ingest(subject, reply, hdr, payload []byte) bool
}

// SetIngest connects the server to the streams. Call it before Run.
func (s *Server) SetIngest(i Ingest) { s.ingest = i }

// LockedInterest calls fn once with every (subject, queue) that has local
// subscriptions and its count, while no count can change: an uplink that
// just (re)connected marks itself ready and announces them all inside fn,
// so no change slips between the snapshot and the announcement. fn must
// not call back into the server.
func (s *Server) LockedInterest(fn func(keys iter.Seq2[subject.Key, int])) {
	s.interestMu.Lock()
	defer s.interestMu.Unlock()
	fn(s.interest.All())
}

// noteInterest counts a subscription in (delta 1) or out (delta -1) and
// tells the uplink.
func (s *Server) noteInterest(sub *subject.Sub[*subscription], delta int) {
	s.interestMu.Lock()
	defer s.interestMu.Unlock()
	var n int
	if delta > 0 {
		n = s.interest.Add(sub.Subject, sub.Queue)
	} else {
		var err error
		if n, err = s.interest.Remove(sub.Subject, sub.Queue); err != nil {
			return
		}
	}
	if s.uplink != nil {
		s.uplink.Interest(sub.Subject, sub.Queue, n)
	}
}

// Deliver hands a message from the hub to local subscribers: every
// subscription matching route, plain ones all, and one member of each
// queue group in queues (the groups the hub chose this leaf for; a message
// naming none reaches no local queue group). Clients receive it with subj
// as its subject, which differs from route only for JetStream deliveries.
// Writers are woken when b is flushed, once per read from the hub. It
// reports whether anyone received it.
func (s *Server) Deliver(b *Batch, route, subj, reply, hdr, payload []byte, queues [][]byte) bool {
	res := s.subs.MatchBytes(route)
	delivered := false
	var once bridgesServed
	for _, sub := range res.Plain {
		if once.skip(sub.Client.c) {
			continue
		}
		if s.deliverTo(nil, b, sub, subj, reply, hdr, payload) {
			delivered = true
			once.note(sub.Client.c)
		}
	}
	for _, q := range queues {
		for i := range res.Groups {
			g := &res.Groups[i]
			if g.Queue == string(q) && s.deliverToGroup(nil, b, g, subj, reply, hdr, payload) {
				delivered = true
			}
		}
	}
	return delivered
}
