package natsd

import (
	"math/rand/v2"

	"github.com/canopy-iot/canopy/leaf/natsproto"
	"github.com/canopy-iot/canopy/leaf/subject"
)

// deliver routes a message published by the local client from to every
// matching plain subscription and to one member of each matching queue
// group. It reports whether anyone received it, and appends to groups the
// queue names that got it (the uplink must not send those to the hub).
func (s *Server) deliver(from *client, subj, reply, hdr, payload []byte, groups []string) (bool, []string) {
	res := s.subs.MatchBytes(subj)
	delivered := false
	var once bridgesServed
	for _, sub := range res.Plain {
		if once.skip(sub.Client.c) {
			continue
		}
		if s.deliverTo(from, &from.batch, sub, subj, reply, hdr, payload) {
			delivered = true
			once.note(sub.Client.c)
		}
	}
	for i := range res.Groups {
		if s.deliverToGroup(from, &from.batch, &res.Groups[i], subj, reply, hdr, payload) {
			delivered = true
			groups = append(groups, res.Groups[i].Queue)
		}
	}
	return delivered, groups
}

// bridgesServed remembers the bridge clients that already got the message
// being delivered: a bridge gets it once, whichever of its subscriptions
// match (the MQTT broker behind it finds every MQTT subscriber itself).
// There is rarely more than one bridge, so a small array does.
type bridgesServed struct {
	n    int
	seen [2]*client
}

func (b *bridgesServed) skip(c *client) bool {
	if !c.bridge {
		return false
	}
	for _, s := range b.seen[:b.n] {
		if s == c {
			return true
		}
	}
	return false
}

func (b *bridgesServed) note(c *client) {
	if c.bridge && b.n < len(b.seen) {
		b.seen[b.n] = c
		b.n++
	}
}

// deliverToGroup gives the message to one member of g, starting from a
// random one and moving on past members that may not have it.
func (s *Server) deliverToGroup(from *client, b *Batch, g *subject.Group[*subscription], subj, reply, hdr, payload []byte) bool {
	n := len(g.Members)
	if n == 0 {
		return false
	}
	start := rand.IntN(n)
	for i := range n {
		if s.deliverTo(from, b, g.Members[(start+i)%n], subj, reply, hdr, payload) {
			return true
		}
	}
	return false
}

// deliverTo queues the message for one subscription, unless the
// subscriber is the publisher (from; nil for messages from the hub)
// without echo, may not receive the subject, or has reached its
// auto-unsubscribe count. The subscriber's writer is woken when b is
// flushed.
func (s *Server) deliverTo(from *client, b *Batch, sub *subject.Sub[*subscription], subj, reply, hdr, payload []byte) bool {
	st := sub.Client
	t := st.c
	if t == from && !t.echo.Load() && (sub.Queue == "" || !t.bridge) {
		return false
	}
	if u := t.user.Load(); u != nil {
		allowed := u.DeliverAllowed(subj)
		if sub.Queue != "" {
			allowed = u.DeliverQueueAllowed(subj, sub.Queue)
		}
		if !allowed {
			return false
		}
	}
	last := false
	if n := st.delivered.Add(1); st.max.Load() > 0 {
		max := st.max.Load()
		if n > max {
			return false
		}
		last = n == max
	}
	if st.fn != nil {
		st.fn(subj, reply, hdr, payload)
		if last {
			t.removeSub(sub)
		}
		return true
	}
	ok, drained := t.queueMsg(st.sid, subj, reply, hdr, payload)
	if !ok {
		return false
	}
	b.stallOn(drained)
	if reply != nil {
		if u := t.user.Load(); u != nil {
			u.NoteReply(reply)
		}
	}
	b.touch(t)
	if last {
		t.removeSub(sub)
	}
	return true
}

// queueMsg appends MSG (or HMSG, for a client that negotiated headers) to
// the client's output. A client whose output grows over max_pending is a
// slow consumer and is disconnected. Over three quarters of it, the
// returned channel closes once the backlog is written: the publisher may
// wait on it a little.
func (c *client) queueMsg(sid, subj, reply, hdr, payload []byte) (bool, chan struct{}) {
	c.outMu.Lock()
	if c.closed {
		c.outMu.Unlock()
		return false, nil
	}
	size := len(payload)
	if len(hdr) > 0 && c.headers.Load() {
		size += len(hdr)
		b := c.out.Tail(frameSize(subj, sid, reply, hdr, payload))
		c.out.Commit(natsproto.AppendHMsg(b, subj, sid, reply, hdr, payload))
	} else {
		// A client without headers gets the payload only, as from
		// nats-server.
		b := c.out.Tail(frameSize(subj, sid, reply, nil, payload))
		c.out.Commit(natsproto.AppendMsg(b, subj, sid, reply, payload))
	}
	over := c.out.Len() > int(c.srv.cfg.MaxPending)
	if !over {
		c.srv.stats.msgsOut.Add(1)
		c.srv.stats.bytesOut.Add(uint64(size))
	}
	var drained chan struct{}
	if c.out.Len() > c.stallMark() {
		if c.drained == nil {
			c.drained = make(chan struct{})
		}
		drained = c.drained
	}
	c.outMu.Unlock()
	if over {
		c.slowConsumer("pending bytes over max_pending")
		return false, nil
	}
	return true, drained
}

// stallMark is the backlog over which publishers are slowed.
func (c *client) stallMark() int { return int(c.srv.cfg.MaxPending) / 4 * 3 }

// sendNoResponders answers a request nobody received with a 503 status
// message on the requester's own subscription to the reply subject, so
// the request fails at once instead of timing out.
func (c *client) sendNoResponders(subj, reply []byte) {
	res := c.srv.subs.MatchBytes(reply)
	for _, sub := range res.Plain {
		if sub.Client.c == c {
			c.hdrScratch = natsproto.AppendNoRespondersHeader(c.hdrScratch[:0], subj)
			if ok, _ := c.queueMsg(sub.Client.sid, reply, nil, c.hdrScratch, nil); ok {
				c.batch.touch(c)
			}
			return
		}
	}
}

// frameSize bounds the bytes a MSG or HMSG frame takes on the wire: the
// arguments plus the op name, separators, two sizes of at most 10 digits
// and the CR LFs.
func frameSize(subj, sid, reply, hdr, payload []byte) int {
	return len(subj) + len(sid) + len(reply) + len(hdr) + len(payload) + 40
}
