package natsd

import (
	"strconv"
	"sync"

	"github.com/canopy-iot/canopy/leaf/subject"
)

// MsgHandler receives a message for an internal subscription. It runs on
// the publisher's goroutine: it must not block, and the slices are valid
// only during the call.
type MsgHandler func(subject, reply, hdr, payload []byte)

// Internal is an in-process client of the local server, for Canopy's own
// parts (stream sync, the MQTT bridge): its subscriptions and publishes
// are routed exactly like a network client's, including to and from the
// hub through the uplink, without a socket. It does not receive its own
// messages. It is safe for concurrent use.
type Internal struct {
	mu      sync.Mutex // serializes publishes: they share the client's scratch state
	c       *client
	nextSID uint64
}

// NewInternal returns an internal client named name (for logs).
func (s *Server) NewInternal(name string) *Internal { return s.newInternal(name, false) }

// NewBridge returns the internal client of a protocol bridge (the MQTT
// broker), which differs from NewInternal's in two ways. A message reaches
// it once, through the first of its plain subscriptions that matches: the
// broker behind it fans it out to its own subscribers. And its queue
// subscriptions compete for its own publishes (its plain ones never see
// them): an MQTT shared subscription is a member of a NATS queue group, so
// an MQTT publish must be able to land on it.
func (s *Server) NewBridge(name string) *Internal { return s.newInternal(name, true) }

func (s *Server) newInternal(name string, bridge bool) *Internal {
	s.mu.Lock()
	s.nextID++
	id := s.nextID
	s.mu.Unlock()
	c := &client{srv: s, id: id, remote: "internal:" + name, bridge: bridge}
	c.subs = map[string]*subject.Sub[*subscription]{}
	c.connected.Store(true)
	return &Internal{c: c}
}

// Subscribe delivers messages on subject (a filter; queue "" for a plain
// subscription) to fn until the returned function is called.
func (in *Internal) Subscribe(subject, queue string, fn MsgHandler) (unsubscribe func(), err error) {
	in.mu.Lock()
	in.nextSID++
	sid := strconv.FormatUint(in.nextSID, 10)
	in.mu.Unlock()
	if err := in.c.addSub(subject, queue, sid, fn); err != nil {
		return nil, err
	}
	return func() {
		in.c.subsMu.Lock()
		sub := in.c.subs[sid]
		in.c.subsMu.Unlock()
		if sub != nil {
			in.c.removeSub(sub)
		}
	}, nil
}

// Publish routes a message as a local client's publish: to local
// subscribers and, where the hub has interest, to the hub. It reports
// whether anyone (local or the hub) received it.
func (in *Internal) Publish(subject, reply, hdr, payload []byte) bool {
	in.mu.Lock()
	defer in.mu.Unlock()
	c := in.c
	delivered, groups := c.srv.deliver(c, subject, reply, hdr, payload, c.groups[:0])
	if up := c.srv.uplink; up != nil {
		sent, drained := up.Forward(subject, reply, hdr, payload, groups)
		delivered = delivered || sent
		c.batch.stallOn(drained)
	}
	c.groups = groups
	c.batch.Flush()
	return delivered
}

// PublishLocal delivers a message to local subscribers only, never to
// the hub: for messages that came from the hub by another way (the
// device's commands) and must not go back up.
func (in *Internal) PublishLocal(subject, reply, hdr, payload []byte) bool {
	in.mu.Lock()
	defer in.mu.Unlock()
	c := in.c
	delivered, groups := c.srv.deliver(c, subject, reply, hdr, payload, c.groups[:0])
	c.groups = groups
	c.batch.Flush()
	return delivered
}

// Close ends every subscription of the client.
func (in *Internal) Close() { in.c.removeAllSubs() }
