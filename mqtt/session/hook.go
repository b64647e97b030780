package session

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/storage"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/canopy-iot/canopy/internal/logging"
)

// Table is where the hook keeps its state (leaf passes a *store.Table).
// Writes must be durable when they return; Range must call fn in key
// order and may reuse value once fn returns.
type Table interface {
	Put(key string, value []byte) error
	Delete(key string) error
	DeletePrefix(prefix string) error
	Range(prefix string, fn func(key string, value []byte) error) error
}

// Hook persists retained messages and persistent sessions for a mochi
// broker. One Hook serves one broker, from its Serve to its Close.
//
// When a write fails (a full disk, typically) the hook logs it with the
// client id and carries on: mochi gives a hook no way to refuse a packet,
// so the client sees nothing at the time, and the broker goes on serving
// from memory. What was not written is lost only if the broker restarts
// before it is written again: the client then finds its session without
// the subscriptions or messages concerned, or, if the session's own record
// was not written, no session at all (CONNACK with session present 0); a
// retained message that could not be replaced is deleted instead (so that
// a stale one does not come back), or, if that fails too, the previous
// one comes back.
type Hook struct {
	mqtt.HookBase // its Log is mochi's; the hook logs to log
	t             Table
	log           *slog.Logger

	mu       sync.Mutex
	sessions map[string]*session // persistent sessions with state in the table, by client id

	// Loaded by StoredClients, handed to mochi by the next Stored* calls.
	subs     []storage.Subscription
	inflight []storage.Message

	failures logging.Every // write failures logged
}

// session is the hook's view of one persistent session.
type session struct {
	// mu is held shared by writes of the session's keys and exclusively
	// by changes to the session itself (establish, end), so that no key
	// is written after the session's keys were deleted.
	mu sync.RWMutex
	// owner is the connection whose events write the session's keys;
	// the events of a connection it took over from are ignored. nil for
	// a session restored at start whose client has not reconnected.
	owner  *mqtt.Client
	expiry uint32 // session expiry interval in the stored client record
	gone   bool   // ended: its keys are deleted and no more are written

	idsMu    sync.Mutex
	inflight map[uint16]bool // packet ids with a stored inflight message
}

var _ mqtt.Hook = (*Hook)(nil)

// NewHook returns a hook that keeps its state in t and logs to log.
func NewHook(t Table, log *slog.Logger) *Hook {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Hook{t: t, log: log, sessions: make(map[string]*session), failures: logging.Every{Interval: failLogEvery}}
}

// ID names the hook in mochi's logs.
func (h *Hook) ID() string { return hookID }

var provides = []byte{
	mqtt.OnSessionEstablish,
	mqtt.OnDisconnect,
	mqtt.OnClientExpired,
	mqtt.OnSubscribed,
	mqtt.OnUnsubscribed,
	mqtt.OnQosPublish,
	mqtt.OnQosComplete,
	mqtt.OnQosDropped,
	mqtt.OnRetainMessage,
	mqtt.OnRetainedExpired,
	mqtt.StoredClients,
	mqtt.StoredSubscriptions,
	mqtt.StoredInflightMessages,
	mqtt.StoredRetainedMessages,
}

// Provides reports which of mochi's events the hook handles.
func (h *Hook) Provides(b byte) bool { return bytes.IndexByte(provides, b) >= 0 }

// persists reports whether cl's session outlives its connection, and
// with which expiry interval, capped as mochi caps it in the CONNACK
// (which it sends after OnSessionEstablish). This is mochi's own test (see
// attachClient): MQTT 3.1.1 sessions persist unless clean; MQTT 5
// sessions persist when their expiry interval is above zero, whatever
// Clean Start says.
func (h *Hook) persists(cl *mqtt.Client) (bool, uint32) {
	if cl.Net.Inline {
		return false, 0
	}
	if cl.Properties.ProtocolVersion < 5 {
		return !cl.Properties.Clean, 0
	}
	exp := h.capExpiry(cl.Properties.Props.SessionExpiryInterval)
	return exp > 0, exp
}

// capExpiry caps a session expiry interval at the broker's maximum.
func (h *Hook) capExpiry(exp uint32) uint32 {
	if h.Opts != nil && h.Opts.Capabilities != nil {
		exp = min(exp, h.Opts.Capabilities.MaximumSessionExpiryInterval)
	}
	return exp
}

// OnSessionEstablish runs before mochi takes over an existing session or
// answers CONNECT, so the new connection owns the session before any of
// the old one's clean-up events (which then write nothing) and before any
// delivery to it. A client without a persistent session, old or new,
// costs a map lookup.
func (h *Hook) OnSessionEstablish(cl *mqtt.Client, pk packets.Packet) {
	persistent, expiry := h.persists(cl)
	s, created := h.lockSession(cl.ID, persistent)
	if s == nil {
		return
	}
	defer s.mu.Unlock()
	if !persistent {
		// A clean connection ends the stored session.
		h.end(cl.ID, s)
		return
	}
	if pk.Connect.Clean && !created {
		// Clean Start (MQTT 5) with a session expiry: a new session
		// replaces the stored one.
		if err := h.t.DeletePrefix(sessionPrefix(cl.ID)); err != nil {
			h.failed(cl.ID, "", err)
		}
		s.inflight = nil
	}
	s.owner, s.expiry = cl, expiry
	h.putClient(cl, expiry)
}

// OnDisconnect ends a session that does not outlive its connection (an
// MQTT 5 client may set its expiry to 0 in DISCONNECT) and records a
// changed expiry interval. mochi also calls it for every session it
// restores at start.
func (h *Hook) OnDisconnect(cl *mqtt.Client, _ error, expire bool) {
	if !expire && cl.Properties.ProtocolVersion < 5 {
		return // nothing changed
	}
	s, _ := h.lockSession(cl.ID, false)
	if s == nil {
		return
	}
	defer s.mu.Unlock()
	if (s.owner != nil && s.owner != cl) || cl.IsTakenOver() || errors.Is(cl.StopCause(), packets.ErrSessionTakenOver) {
		return // the session is another connection's now
	}
	if expire {
		h.end(cl.ID, s)
		return
	}
	if _, expiry := h.persists(cl); expiry != s.expiry && s.owner == cl {
		s.expiry = expiry
		h.putClient(cl, expiry)
	}
}

// OnClientExpired ends a session whose expiry interval has passed.
func (h *Hook) OnClientExpired(cl *mqtt.Client) {
	s, _ := h.lockSession(cl.ID, false)
	if s == nil {
		return
	}
	defer s.mu.Unlock()
	if s.owner == nil || s.owner == cl {
		h.end(cl.ID, s)
	}
}

// OnSubscribed stores the subscriptions mochi granted.
func (h *Hook) OnSubscribed(cl *mqtt.Client, pk packets.Packet, reasonCodes []byte) {
	h.withSession(cl, func(*session) {
		for i, sub := range pk.Filters {
			if i >= len(reasonCodes) || reasonCodes[i] >= packets.ErrUnspecifiedError.Code {
				continue // refused; mochi's own bolt hook stores these with the error as QoS
			}
			h.put(cl.ID, subKey(cl.ID, sub.Filter), newSubRecord(sub, reasonCodes[i]), nil)
		}
	})
}

// OnUnsubscribed deletes subscriptions. mochi also calls it when a session
// ends, after OnDisconnect has deleted everything.
func (h *Hook) OnUnsubscribed(cl *mqtt.Client, pk packets.Packet) {
	h.withSession(cl, func(*session) {
		for _, sub := range pk.Filters {
			if err := h.t.Delete(subKey(cl.ID, sub.Filter)); err != nil {
				h.failed(cl.ID, "", err)
			}
		}
	})
}

// OnQosPublish stores an inflight message: a delivery to the client (sent,
// or waiting while it is offline), or the PUBREC of a QoS 2 message from
// it. mochi calls it again for every message it resends when the client
// reconnects: a PUBLISH is stored already (mochi marks it DUP), a PUBREC
// or PUBREL is written again (the PUBREL, which mochi reports only here,
// replaces the PUBLISH it follows).
func (h *Hook) OnQosPublish(cl *mqtt.Client, pk packets.Packet, _ int64, _ int) {
	switch {
	case pk.FixedHeader.Type == packets.Puback, pk.FixedHeader.Type == packets.Pubcomp:
		// The acknowledgement of a message from the client, deleted as
		// soon as it is sent: nothing to keep.
		return
	case pk.FixedHeader.Type == packets.Publish && pk.FixedHeader.Dup:
		// A resend: every first delivery is a copy with DUP cleared.
		return
	}
	h.withSession(cl, func(s *session) {
		s.idsMu.Lock()
		if s.inflight == nil {
			s.inflight = make(map[uint16]bool)
		}
		s.inflight[pk.PacketID] = true
		s.idsMu.Unlock()
		h.put(cl.ID, inflightKey(cl.ID, pk.PacketID), newMessageRecord(&pk), pk.Payload)
	})
}

// OnQosComplete deletes an inflight message once its exchange is over.
func (h *Hook) OnQosComplete(cl *mqtt.Client, pk packets.Packet) { h.deleteInflight(cl, pk.PacketID) }

// OnQosDropped deletes an inflight message mochi gave up on (expired, or
// refused by the client). mochi also calls it for the inflight messages of
// a session that a new connection takes over, which keeps them: the old
// connection no longer owns the session then, so nothing is deleted.
func (h *Hook) OnQosDropped(cl *mqtt.Client, pk packets.Packet) { h.deleteInflight(cl, pk.PacketID) }

func (h *Hook) deleteInflight(cl *mqtt.Client, id uint16) {
	h.withSession(cl, func(s *session) {
		// Only stored messages are deleted: the acknowledgement of a
		// QoS 1 message from the client completes too, and would cost a
		// round trip to the store for nothing.
		s.idsMu.Lock()
		stored := s.inflight[id]
		delete(s.inflight, id)
		s.idsMu.Unlock()
		if stored {
			if err := h.t.Delete(inflightKey(cl.ID, id)); err != nil {
				h.failed(cl.ID, "", err)
			}
		}
	})
}

// OnRetainMessage stores a retained message, or deletes it when the
// publish clears it (an empty payload).
func (h *Hook) OnRetainMessage(cl *mqtt.Client, pk packets.Packet, _ int64) {
	key := retainedKey(pk.TopicName)
	if len(pk.Payload) == 0 {
		if err := h.t.Delete(key); err != nil {
			h.failed(clientID(cl), pk.TopicName, err)
		}
		return
	}
	if !h.put(clientID(cl), key, newMessageRecord(&pk), pk.Payload) {
		// Better no retained message after a restart than a stale one.
		_ = h.t.Delete(key)
	}
}

// OnRetainedExpired deletes a retained message that expired.
func (h *Hook) OnRetainedExpired(topic string) {
	if err := h.t.Delete(retainedKey(topic)); err != nil {
		h.failed("", topic, err)
	}
}

// StoredClients reads every persistent session, keeps its subscriptions
// and inflight messages for the next calls, and returns the client
// records. mochi restores each as a disconnected session, and starts its
// expiry from now. Keys of a session without a client record (its
// record's write failed) are deleted; unreadable records are skipped.
func (h *Hook) StoredClients() ([]storage.Client, error) {
	type loaded struct {
		client   *clientRecord
		bad      bool // a key of the session could not be read
		subs     []storage.Subscription
		inflight []storage.Message
		ids      map[uint16]bool
		expired  []uint16
	}
	all := make(map[string]*loaded)
	var order []string
	now := time.Now().Unix()
	err := h.t.Range(prefixSession, func(key string, value []byte) error {
		id, rest, err := parseSessionKey(key)
		if err != nil {
			h.log.Warn("skipping unreadable MQTT session key", "err", err)
			return nil
		}
		l := all[id]
		if l == nil {
			l = &loaded{}
			all[id] = l
			order = append(order, id)
		}
		switch {
		case rest == keyClient:
			var r clientRecord
			if _, err := decode(value, &r); err != nil {
				h.log.Warn("skipping unreadable MQTT session", "client_id", id, "err", err)
				l.bad = true
				return nil
			}
			l.client = &r
		case strings.HasPrefix(rest, prefixSub):
			var r subRecord
			if _, err := decode(value, &r); err != nil {
				h.log.Warn("skipping unreadable MQTT subscription", "client_id", id, "err", err)
				l.bad = true
				return nil
			}
			l.subs = append(l.subs, r.storage(id))
		case strings.HasPrefix(rest, prefixInflight):
			var r messageRecord
			payload, err := decode(value, &r)
			switch {
			case err != nil:
				h.log.Warn("skipping unreadable MQTT inflight message", "client_id", id, "err", err)
				l.bad = true
			case r.expired(now) || r.Type == packets.Publish && r.Topic == "":
				// Expired while the broker was down, or sent with a
				// topic alias that the next connection will not know.
				l.expired = append(l.expired, r.PacketID)
			default:
				if l.ids == nil {
					l.ids = make(map[uint16]bool)
				}
				l.ids[r.PacketID] = true
				l.inflight = append(l.inflight, r.storage(id, bytes.Clone(payload)))
			}
		default:
			h.log.Warn("skipping unknown MQTT session key", "client_id", id, "key", key)
			l.bad = true
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	var clients []storage.Client
	h.mu.Lock()
	defer h.mu.Unlock()
	h.subs, h.inflight = nil, nil
	for _, id := range order {
		l := all[id]
		if l.client == nil {
			if !l.bad {
				// Left behind by a failed write: no session to restore.
				h.log.Info("deleting MQTT session without client record", "client_id", id)
				if err := h.t.DeletePrefix(sessionPrefix(id)); err != nil {
					h.failed(id, "", err)
				}
			}
			continue
		}
		for _, pid := range l.expired {
			if err := h.t.Delete(inflightKey(id, pid)); err != nil {
				h.failed(id, "", err)
			}
		}
		// The maximum may have been lowered since the record was written.
		l.client.SessionExpiry = h.capExpiry(l.client.SessionExpiry)
		clients = append(clients, l.client.storage(id))
		h.subs = append(h.subs, l.subs...)
		h.inflight = append(h.inflight, l.inflight...)
		h.sessions[id] = &session{expiry: l.client.SessionExpiry, inflight: l.ids}
	}
	return clients, nil
}

// StoredSubscriptions returns the subscriptions StoredClients read.
func (h *Hook) StoredSubscriptions() ([]storage.Subscription, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	subs := h.subs
	h.subs = nil
	return subs, nil
}

// StoredInflightMessages returns the inflight messages StoredClients read.
func (h *Hook) StoredInflightMessages() ([]storage.Message, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	msgs := h.inflight
	h.inflight = nil
	return msgs, nil
}

// StoredRetainedMessages returns the retained messages. Those that expired
// while the broker was down are deleted instead.
func (h *Hook) StoredRetainedMessages() ([]storage.Message, error) {
	var (
		msgs    []storage.Message
		expired []string
		now     = time.Now().Unix()
	)
	err := h.t.Range(prefixRetained, func(key string, value []byte) error {
		var r messageRecord
		payload, err := decode(value, &r)
		switch {
		case err != nil:
			h.log.Warn("skipping unreadable retained message", "topic", strings.TrimPrefix(key, prefixRetained), "err", err)
		case r.expired(now):
			expired = append(expired, key)
		default:
			msgs = append(msgs, r.storage("", bytes.Clone(payload)))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for _, key := range expired {
		if err := h.t.Delete(key); err != nil {
			h.failed("", strings.TrimPrefix(key, prefixRetained), err)
		}
	}
	return msgs, nil
}

// lockSession returns id's session, locked exclusively, or nil if there
// is none and create is false. created reports a new session.
func (h *Hook) lockSession(id string, create bool) (s *session, created bool) {
	for {
		h.mu.Lock()
		s = h.sessions[id]
		if s == nil && create {
			s, created = &session{}, true
			h.sessions[id] = s
		}
		h.mu.Unlock()
		if s == nil {
			return nil, false
		}
		s.mu.Lock()
		if !s.gone {
			return s, created
		}
		s.mu.Unlock() // ended meanwhile: look again
	}
}

// end deletes the session's keys and forgets it; s is locked.
func (h *Hook) end(id string, s *session) {
	s.gone = true
	h.mu.Lock()
	if h.sessions[id] == s {
		delete(h.sessions, id)
	}
	h.mu.Unlock()
	if err := h.t.DeletePrefix(sessionPrefix(id)); err != nil {
		h.failed(id, "", err)
	}
}

// withSession runs fn if cl owns a persistent session, with the session
// locked shared: writes of many clients, or of one client from many
// publishers, proceed together (and share the store's commits).
func (h *Hook) withSession(cl *mqtt.Client, fn func(s *session)) {
	h.mu.Lock()
	s := h.sessions[cl.ID]
	h.mu.Unlock()
	if s == nil {
		return // a clean session: no cost beyond the lookup
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.gone || (s.owner != nil && s.owner != cl) || cl.IsTakenOver() {
		return
	}
	fn(s)
}

func (h *Hook) putClient(cl *mqtt.Client, expiry uint32) {
	h.put(cl.ID, clientKey(cl.ID), newClientRecord(cl, expiry), nil)
}

// put encodes and stores a record, and reports whether it is stored.
func (h *Hook) put(clientID, key string, header any, payload []byte) bool {
	v, err := encode(header, payload)
	if err == nil {
		err = h.t.Put(key, v)
	}
	if err != nil {
		topic := ""
		if t, ok := strings.CutPrefix(key, prefixRetained); ok {
			topic = t
		}
		h.failed(clientID, topic, err)
		return false
	}
	return true
}

// failLogEvery bounds the logging of write failures: a full disk fails
// every write, and QoS traffic would flood the log.
const failLogEvery = time.Minute

// failed logs a write that failed, at most once per failLogEvery, with
// how many failures went unlogged since the last line.
func (h *Hook) failed(clientID, topic string, err error) {
	ok, quiet := h.failures.Allow()
	if !ok {
		return
	}
	attrs := []any{"err", err}
	if clientID != "" {
		attrs = append(attrs, "client_id", clientID)
	}
	if topic != "" {
		attrs = append(attrs, "topic", topic)
	}
	if quiet > 0 {
		attrs = append(attrs, "failures_not_logged", quiet)
	}
	h.log.Error("MQTT state not persisted", attrs...)
}

func clientID(cl *mqtt.Client) string {
	if cl == nil {
		return ""
	}
	return cl.ID
}
