package natsd

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/canopy-iot/canopy/leaf/auth"
	"github.com/canopy-iot/canopy/leaf/natsproto"
	"github.com/canopy-iot/canopy/leaf/subject"
)

// The natsproto.Handler methods: one call per operation the client sends,
// on the reader goroutine, in order.

var _ natsproto.Handler = (*client)(nil)

// connectOpts is a CONNECT's JSON. It is decoded over verbose, pedantic
// and echo = true, as nats-server does, so a field the client leaves out
// keeps that default.
type connectOpts struct {
	Verbose      bool   `json:"verbose"`
	Pedantic     bool   `json:"pedantic"`
	Echo         bool   `json:"echo"`
	Headers      bool   `json:"headers"`
	NoResponders bool   `json:"no_responders"`
	Protocol     int    `json:"protocol"`
	Name         string `json:"name"`
	Account      string `json:"account"`
	NewAccount   bool   `json:"new_account"`
	auth.Credentials
}

// errHeadersNotNegotiated closes a client that sends HPUB without having
// announced header support, as nats-server does.
var errHeadersNotNegotiated = errors.New("message headers not supported by this connection")

// requireConnect refuses any operation before CONNECT when authentication
// is required.
func (c *client) requireConnect() error {
	if c.connected.Load() || !c.srv.auth.AuthRequired() {
		return nil
	}
	c.sendErrAndClose(errAuthorization)
	return errClose
}

func (c *client) OnConnect(js []byte) error {
	opts := connectOpts{Verbose: true, Pedantic: true, Echo: true}
	if err := json.Unmarshal(js, &opts); err != nil {
		return fmt.Errorf("invalid CONNECT: %w", err)
	}
	switch {
	case opts.Account != "" || opts.NewAccount:
		c.sendErrAndClose(errAuthorization)
		return errClose
	case opts.Protocol < 0 || opts.Protocol > protoVersion:
		c.sendErrAndClose(errInvalidProtocol)
		return errClose
	case opts.NoResponders && !opts.Headers:
		c.sendErrAndClose(errNoRespondersHeaders)
		return errClose
	}
	user, err := c.srv.auth.Authenticate(opts.Credentials, c.nonce)
	if err != nil {
		c.srv.log.Warn("client authentication failed", "client_id", c.id, "remote", c.remote, "reason", auth.Reason(err))
		c.sendErrAndClose(err.Error())
		return errClose
	}
	c.verbose, c.pedantic, c.noResponders, c.name = opts.Verbose, opts.Pedantic, opts.NoResponders, opts.Name
	c.echo.Store(opts.Echo)
	c.headers.Store(opts.Headers)
	c.user.Store(user)
	c.connected.Store(true)
	if c.verbose {
		c.queueProto(okLine)
	}
	return nil
}

func (c *client) OnPub(subj, reply, payload []byte) error {
	return c.publish(subj, reply, nil, payload)
}

func (c *client) OnHPub(subj, reply, hdr, payload []byte) error {
	if !c.headers.Load() {
		if err := c.requireConnect(); err != nil {
			return err
		}
		return errHeadersNotNegotiated
	}
	return c.publish(subj, reply, hdr, payload)
}

func (c *client) publish(subj, reply, hdr, payload []byte) error {
	if err := c.requireConnect(); err != nil {
		return err
	}
	if c.pedantic && !subject.ValidPublish(subj) {
		c.sendErr(errInvalidPubSubject)
		return nil
	}
	if len(reply) > 0 {
		for _, p := range reservedReplyPrefixes {
			if bytes.HasPrefix(reply, p) {
				c.sendErr(fmt.Sprintf(errReplyViolation, reply))
				return nil
			}
		}
	}
	if u := c.user.Load(); u != nil && !u.CanPublish(subj) {
		c.srv.log.Debug("publish permission violation", "client_id", c.id, "subject", string(subj))
		c.sendErr(auth.PubViolation(subj))
		return nil
	}
	if c.verbose {
		c.queueProto(okLine)
	}
	c.srv.stats.msgsIn.Add(1)
	c.srv.stats.bytesIn.Add(uint64(len(hdr) + len(payload)))
	if len(reply) == 0 {
		reply = nil
	}
	delivered, groups := c.srv.deliver(c, subj, reply, hdr, payload, c.groups[:0])
	if up := c.srv.uplink; up != nil {
		sent, drained := up.Forward(subj, reply, hdr, payload, groups)
		delivered = delivered || sent
		c.batch.stallOn(drained)
	}
	c.groups = groups
	if ing := c.srv.ingest; ing != nil && ing.Ingest(subj, reply, hdr, payload) {
		delivered = true
	}
	if !delivered && reply != nil && c.noResponders {
		c.sendNoResponders(subj, reply)
	}
	return nil
}

func (c *client) OnSub(subj, queue, sid []byte) error {
	if err := c.requireConnect(); err != nil {
		return err
	}
	if !subject.ValidSubscribe(subj) || (queue != nil && !subject.ValidQueue(queue)) {
		c.sendErr(errInvalidSubject)
		return nil
	}
	if string(queue) == subject.SysQueue {
		c.sendErr(auth.SubViolation(subj, queue))
		return nil
	}
	if u := c.user.Load(); u != nil && !u.CanSubscribe(string(subj), string(queue)) {
		c.srv.log.Debug("subscribe permission violation", "client_id", c.id, "subject", string(subj))
		c.sendErr(auth.SubViolation(subj, queue))
		return nil
	}
	switch err := c.addSub(string(subj), string(queue), string(sid), nil); {
	case errors.Is(err, errClose):
		return err
	case errors.Is(err, errMaxSubs):
		c.sendErr(errMaxSubscriptions)
	case err != nil:
		c.sendErr(errInvalidSubject)
	default:
		c.ok()
	}
	return nil
}

var errMaxSubs = errors.New(errMaxSubscriptions)

// addSub registers a subscription of this client: in its own table, the
// server's index and the interest counts (which tell the uplink). A
// duplicate sid keeps the existing subscription, as in nats-server. fn,
// for internal clients, receives the messages instead of the connection.
func (c *client) addSub(subj, queue, sid string, fn MsgHandler) error {
	c.subsMu.Lock()
	defer c.subsMu.Unlock()
	if c.subsClosed {
		return errClose
	}
	if _, dup := c.subs[sid]; dup {
		return nil
	}
	if max := c.srv.cfg.MaxSubscriptions; max > 0 && len(c.subs) >= max {
		return errMaxSubs
	}
	sub := &subject.Sub[*subscription]{
		Client:  &subscription{c: c, sid: []byte(sid), fn: fn},
		SID:     sid,
		Subject: subj,
		Queue:   queue,
	}
	// Inserted under subsMu so a concurrent close, which sets subsClosed
	// under it, cannot miss the new subscription.
	if err := c.srv.subs.Insert(sub); err != nil {
		return err
	}
	c.subs[sid] = sub
	c.srv.noteInterest(sub, 1)
	return nil
}

func (c *client) OnUnsub(sid []byte, max int) error {
	if err := c.requireConnect(); err != nil {
		return err
	}
	c.subsMu.Lock()
	sub := c.subs[string(sid)]
	c.subsMu.Unlock()
	if sub != nil {
		st := sub.Client
		if max > 0 && st.delivered.Load() < int64(max) {
			st.max.Store(int64(max))
			// A message delivered between the check and the store may
			// already have reached max.
			if st.delivered.Load() >= int64(max) {
				c.removeSub(sub)
			}
		} else {
			c.removeSub(sub)
		}
	}
	c.ok()
	return nil
}

func (c *client) OnPing() error {
	if err := c.requireConnect(); err != nil {
		return err
	}
	c.queueProto(pongLine)
	return nil
}

func (c *client) OnPong() error {
	c.pingsOut.Store(0)
	return nil
}

// OnInfo ignores an INFO from a client; nats-server does the same.
func (c *client) OnInfo([]byte) error { return c.requireConnect() }

// OnOK ignores a +OK from a client.
func (c *client) OnOK() error { return c.requireConnect() }

// OnErr closes a client that reports an error, as nats-server does.
func (c *client) OnErr(text []byte) error {
	return fmt.Errorf("client sent -ERR %q", text)
}

func (c *client) ok() {
	if c.verbose {
		c.queueProto(okLine)
	}
}
