package mqtt

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/canopy-iot/canopy/internal/logging"
	"github.com/canopy-iot/canopy/mqtt/topic"
)

// NATS is the local NATS server as the broker sees it; leaf passes its
// bridge client (natsd's NewBridge), which gets a message once however many
// of the broker's subscriptions match it, and whose queue subscriptions
// compete for the broker's own publishes while its plain ones never see
// them.
type NATS interface {
	// Publish routes a message to local NATS subscribers and the hub.
	Publish(subject, reply, hdr, payload []byte)
	// Subscribe calls fn for each message on subject (a filter) until
	// unsubscribe is called; queue "" is a plain subscription. fn runs on
	// the publisher's goroutine and the slices are valid only during it.
	Subscribe(subject, queue string, fn func(subject, reply, hdr, payload []byte)) (unsubscribe func(), err error)
}

// Streams takes MQTT publishes whose subjects belong to a leaf stream.
type Streams interface {
	// Store appends the message to the streams whose subjects match it,
	// and with wait returns only once it is on disk. It reports whether a
	// stream took it; an error wrapping ErrStreamFull means a stream
	// refused it under its limits.
	Store(subject, hdr, payload []byte, wait bool) (taken bool, err error)
}

// ErrStreamFull marks a refusal by a full stream (or disk).
var ErrStreamFull = errors.New("stream full")

// Headers the bridge reads and writes, as nats-server's MQTT support does:
// Nmqtt-Pub carries the QoS an MQTT publisher used, so that a message that
// crosses NATS reaches MQTT subscribers at no more than that QoS.
const (
	headerQoS    = "Nmqtt-Pub"
	headerPrefix = "Nmqtt-"
)

const sharePrefix = "$share/"

// bridge joins the broker to the local NATS server; it is a mochi hook.
//
// The broker delivers an MQTT publish to plain MQTT subscribers itself, and
// the bridge publishes it into NATS (local subscribers, the hub, and the
// bridge's own queue members). Every MQTT filter is a NATS subscription of
// the bridge; a NATS message is injected into the broker once, through an
// inline client, and the broker finds its MQTT subscribers.
//
// MQTT shared subscriptions are NATS queue groups: each one is a member of
// the group named like its share, so MQTT and NATS workers share one
// load-balanced group. Only NATS picks a member: the broker's own choice
// among shared subscribers is always emptied (OnSelectSubscribers), and a
// delivery NATS gave to a shared subscription is injected through a second
// inline client for that one subscriber alone. A guard subscription on
// $share/…/# makes the broker consult the hook for every topic.
type bridge struct {
	mochi.HookBase
	srv     *mochi.Server
	nats    NATS
	streams Streams
	log     *slog.Logger

	plainIn *mochi.Client // injects NATS messages for plain subscribers
	shareIn *mochi.Client // injects one queue delivery for one shared subscriber

	mu     sync.Mutex
	plain  map[string]*plainSub // by MQTT filter
	shared map[shareKey]func()  // NATS queue subscription per shared subscription

	// shareMu serializes shared deliveries: shareTarget is read by
	// OnSelectSubscribers, which mochi calls on the injecting goroutine.
	shareMu     sync.Mutex
	shareTarget shareKey

	refused warnEvery
}

type plainSub struct {
	clients map[string]struct{}
	unsub   func()
}

// shareKey is one client's shared subscription ("$share/g/a/b").
type shareKey struct{ client, filter string }

// Inline client ids: not valid MQTT client ids a device would choose, and
// never registered as clients.
const (
	plainInID = "$canopy/nats"
	shareInID = "$canopy/nats-share"
	guardID   = "$canopy/guard"
	guard     = "$share/$canopy-guard/#"
)

func newBridge(srv *mochi.Server, nats NATS, streams Streams, log *slog.Logger) *bridge {
	return &bridge{
		srv: srv, nats: nats, streams: streams, log: log,
		plainIn: srv.NewClient(nil, mochi.LocalListener, plainInID, true),
		shareIn: srv.NewClient(nil, mochi.LocalListener, shareInID, true),
		plain:   map[string]*plainSub{},
		shared:  map[shareKey]func(){},
		refused: warnEvery{log: log, every: logging.Every{Interval: warnInterval}},
	}
}

// ID implements mochi.Hook.
func (b *bridge) ID() string { return "canopy-bridge" }

// Provides implements mochi.Hook.
func (b *bridge) Provides(event byte) bool {
	switch event {
	case mochi.OnPublish, mochi.OnSelectSubscribers, mochi.OnSubscribe, mochi.OnSubscribed,
		mochi.OnUnsubscribed, mochi.OnWillSent, mochi.OnConnect:
		return true
	}
	return false
}

// start subscribes NATS for the subscriptions restored from the store
// and installs the guard; call it after the broker's Serve.
func (b *bridge) start() {
	b.srv.Topics.Subscribe(guardID, packets.Subscription{Filter: guard})
	for _, cl := range b.srv.Clients.GetAll() {
		for filter := range cl.State.Subscriptions.GetAll() {
			b.add(cl.ID, filter)
		}
	}
}

// stop ends every NATS subscription.
func (b *bridge) stop() {
	b.mu.Lock()
	defer b.mu.Unlock()
	for f, p := range b.plain {
		p.unsub()
		delete(b.plain, f)
	}
	for k, u := range b.shared {
		u()
		delete(b.shared, k)
	}
}

// OnConnect refuses a will message NATS could not carry: it would be lost
// silently when the client goes.
func (b *bridge) OnConnect(cl *mochi.Client, pk packets.Packet) error {
	if !pk.Connect.WillFlag {
		return nil
	}
	if _, err := topic.Subject(pk.Connect.WillTopic); err != nil {
		b.log.Warn("refused MQTT connection", "client", cl.ID, "remote", cl.Net.Remote, "err", fmt.Errorf("will %w", err))
		code := packets.ErrTopicNameInvalid
		if cl.Properties.ProtocolVersion < 5 {
			code = packets.ErrUnspecifiedError // mochi sends v3's nearest code
		}
		_ = b.srv.SendConnack(cl, code, false, nil)
		return code
	}
	return nil
}

// OnSubscribe makes a filter NATS cannot carry invalid, so that the broker
// refuses it with "topic filter invalid" in the SUBACK (hooks cannot set
// reason codes themselves), and logs why.
func (b *bridge) OnSubscribe(cl *mochi.Client, pk packets.Packet) packets.Packet {
	if cl.Net.Inline {
		return pk
	}
	for i, sub := range pk.Filters {
		filter, queue := splitShare(sub.Filter)
		err := validQueue(queue)
		if err == nil {
			_, err = topic.Subjects(filter)
		}
		if err != nil {
			b.log.Warn("refused MQTT subscription", "client", cl.ID, "err", err)
			pk.Filters[i].Filter = "#/" // invalid in MQTT: refused with 0x8F
		}
	}
	return pk
}

// OnSubscribed subscribes NATS for every filter the broker accepted.
func (b *bridge) OnSubscribed(cl *mochi.Client, pk packets.Packet, codes []byte) {
	if cl.Net.Inline {
		return
	}
	for i, sub := range pk.Filters {
		if i < len(codes) && codes[i] < packets.ErrUnspecifiedError.Code {
			b.add(cl.ID, sub.Filter)
		}
	}
}

// OnUnsubscribed drops NATS interest that no MQTT client holds any more.
// mochi calls it for UNSUBSCRIBE and for sessions that end.
func (b *bridge) OnUnsubscribed(cl *mochi.Client, pk packets.Packet) {
	if cl.Net.Inline {
		return
	}
	for _, sub := range pk.Filters {
		b.remove(cl.ID, sub.Filter)
	}
}

func (b *bridge) add(client, filter string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if f, queue := splitShare(filter); queue != "" {
		k := shareKey{client, filter}
		if _, ok := b.shared[k]; ok {
			return
		}
		unsub, err := b.subscribe(f, queue, func(subj, reply, hdr, payload []byte) {
			b.deliverShared(k, subj, reply, hdr, payload)
		})
		if err != nil {
			b.log.Error("MQTT shared subscription not bridged to NATS", "client", client, "filter", filter, "err", err)
			return
		}
		b.shared[k] = unsub
		return
	}
	p := b.plain[filter]
	if p == nil {
		unsub, err := b.subscribe(filter, "", b.deliverPlain)
		if err != nil {
			b.log.Error("MQTT subscription not bridged to NATS", "client", client, "filter", filter, "err", err)
			return
		}
		p = &plainSub{clients: map[string]struct{}{}, unsub: unsub}
		b.plain[filter] = p
	}
	p.clients[client] = struct{}{}
}

// subscribe subscribes NATS to the subjects of an MQTT filter (two for
// "a/#": "a" and "a.>").
func (b *bridge) subscribe(filter, queue string, fn func(subj, reply, hdr, payload []byte)) (func(), error) {
	subjects, err := topic.Subjects(filter)
	if err != nil {
		return nil, err
	}
	var unsubs []func()
	for _, s := range subjects {
		u, err := b.nats.Subscribe(s, queue, fn)
		if err != nil {
			for _, u := range unsubs {
				u()
			}
			return nil, err
		}
		unsubs = append(unsubs, u)
	}
	return func() {
		for _, u := range unsubs {
			u()
		}
	}, nil
}

func (b *bridge) remove(client, filter string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, queue := splitShare(filter); queue != "" {
		k := shareKey{client, filter}
		if u, ok := b.shared[k]; ok {
			u()
			delete(b.shared, k)
		}
		return
	}
	p := b.plain[filter]
	if p == nil {
		return
	}
	delete(p.clients, client)
	if len(p.clients) == 0 {
		p.unsub()
		delete(b.plain, filter)
	}
}

// splitShare splits "$share/g/a/b" into ("a/b", "g"); a plain filter comes
// back whole with queue "".
func splitShare(filter string) (f, queue string) {
	rest, ok := strings.CutPrefix(filter, sharePrefix)
	if !ok {
		return filter, ""
	}
	queue, f, ok = strings.Cut(rest, "/")
	if !ok {
		return "", rest
	}
	return f, queue
}

// validQueue checks a share name as a NATS queue group name.
func validQueue(q string) error {
	if strings.ContainsFunc(q, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		return fmt.Errorf("share name %q: NATS queue names cannot carry whitespace or control characters", q)
	}
	return nil
}

// OnPublish forwards an MQTT client's publish into NATS and the leaf
// streams. It runs on the client's reader before the broker acknowledges
// the message, so a QoS 1/2 publish to a stream's subject is acknowledged
// only once it is on disk.
func (b *bridge) OnPublish(cl *mochi.Client, pk packets.Packet) (packets.Packet, error) {
	if cl.Net.Inline {
		return pk, nil
	}
	subj, err := topic.AppendSubject(nil, pk.TopicName)
	if err != nil {
		return pk, b.refuse(cl, pk, packets.ErrTopicNameInvalid, err, true)
	}
	hdr, err := appendHeader(nil, pk.FixedHeader.Qos, pk.Properties.User)
	if err != nil {
		return pk, b.refuse(cl, pk, packets.ErrImplementationSpecificError, err, false)
	}
	var reply []byte
	if pk.Properties.ResponseTopic != "" {
		r, err := topic.Subject(pk.Properties.ResponseTopic)
		if err != nil {
			return pk, b.refuse(cl, pk, packets.ErrTopicNameInvalid, fmt.Errorf("response %w", err), false)
		}
		reply = []byte(r)
	}
	if b.streams != nil {
		if _, err := b.streams.Store(subj, hdr, pk.Payload, pk.FixedHeader.Qos > 0); err != nil {
			code := packets.ErrUnspecifiedError
			if errors.Is(err, ErrStreamFull) {
				code = packets.ErrQuotaExceeded
			}
			return pk, b.refuse(cl, pk, code, err, false)
		}
	}
	b.nats.Publish(subj, reply, hdr, pk.Payload)
	return pk, nil
}

// OnWillSent forwards a will message into NATS and the streams: the broker
// sends wills itself, without OnPublish.
func (b *bridge) OnWillSent(cl *mochi.Client, pk packets.Packet) {
	subj, err := topic.AppendSubject(nil, pk.TopicName)
	if err != nil {
		return // refused at CONNECT
	}
	hdr, err := appendHeader(nil, pk.FixedHeader.Qos, pk.Properties.User)
	if err != nil {
		b.refused.warn("will message not bridged", "client", cl.ID, "err", err)
		return
	}
	if b.streams != nil {
		if _, err := b.streams.Store(subj, hdr, pk.Payload, false); err != nil {
			b.refused.warn("will message not stored", "client", cl.ID, "err", err)
		}
	}
	b.nats.Publish(subj, nil, hdr, pk.Payload)
}

// refuse answers a publish the bridge cannot take and tells the broker to
// drop it. An MQTT 5 QoS 1/2 publisher gets the reason code in its
// PUBACK/PUBREC. Otherwise there is no way to tell the client: for a bad
// topic (fatal) the connection is closed (with a DISCONNECT carrying the
// code for MQTT 5), for anything else the message is dropped and logged.
func (b *bridge) refuse(cl *mochi.Client, pk packets.Packet, code packets.Code, err error, fatal bool) error {
	b.refused.warn("refused MQTT publish", "client", cl.ID, "topic", pk.TopicName, "qos", pk.FixedHeader.Qos, "err", err)
	v5 := cl.Properties.ProtocolVersion == 5
	switch {
	case v5 && pk.FixedHeader.Qos > 0:
		ack := packets.Puback
		if pk.FixedHeader.Qos == 2 {
			ack = packets.Pubrec
		}
		_ = cl.WritePacket(packets.Packet{
			FixedHeader: packets.FixedHeader{Type: ack},
			PacketID:    pk.PacketID,
			ReasonCode:  code.Code,
			Properties:  packets.Properties{ReasonString: err.Error()},
		})
	case fatal && v5:
		code.Reason = err.Error()
		_ = b.srv.DisconnectClient(cl, code)
	case fatal:
		cl.Stop(code)
	}
	return packets.ErrRejectPacket
}

// deliverPlain injects a NATS message for the broker's plain subscribers.
func (b *bridge) deliverPlain(subj, reply, hdr, payload []byte) {
	pk, ok := b.packet(subj, reply, hdr, payload)
	if !ok {
		return
	}
	if err := b.srv.InjectPacket(b.plainIn, pk); err != nil {
		b.refused.warn("NATS message not delivered to MQTT", "subject", string(subj), "err", err)
	}
}

// deliverShared injects a NATS queue delivery for the one shared
// subscription that was the chosen member.
func (b *bridge) deliverShared(k shareKey, subj, reply, hdr, payload []byte) {
	pk, ok := b.packet(subj, reply, hdr, payload)
	if !ok {
		return
	}
	b.shareMu.Lock()
	defer b.shareMu.Unlock()
	b.shareTarget = k
	if err := b.srv.InjectPacket(b.shareIn, pk); err != nil {
		b.refused.warn("NATS message not delivered to MQTT", "subject", string(subj), "err", err)
	}
	b.shareTarget = shareKey{}
}

// packet turns a NATS message into an MQTT publish: the topic mapped back,
// the QoS the MQTT publisher used when it came from one (otherwise 2, so
// each subscriber gets its own subscription's QoS), headers as user
// properties and the reply subject as the response topic.
func (b *bridge) packet(subj, reply, hdr, payload []byte) (packets.Packet, bool) {
	t, err := topic.Topic(string(subj))
	if err != nil {
		b.refused.warn("NATS message not delivered to MQTT", "subject", string(subj), "err", err)
		return packets.Packet{}, false
	}
	pk := packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 2},
		TopicName:   t,
		Payload:     bytes.Clone(payload),
	}
	if pk.Payload == nil {
		pk.Payload = []byte{}
	}
	if len(hdr) > 0 {
		qos, props := parseHeader(hdr)
		if qos >= 0 {
			pk.FixedHeader.Qos = byte(qos)
		}
		pk.Properties.User = props
	}
	if pk.FixedHeader.Qos > 0 {
		pk.PacketID = 1 // must be present; inline publishes are not acknowledged
	}
	if len(reply) > 0 {
		if r, err := topic.Topic(string(reply)); err == nil {
			pk.Properties.ResponseTopic = r
		}
	}
	return pk, true
}

// OnSelectSubscribers leaves shared subscribers to NATS: it drops the
// broker's own choice among them, except for the delivery NATS made to one
// of them, which goes to that subscriber alone.
func (b *bridge) OnSelectSubscribers(subs *mochi.Subscribers, pk packets.Packet) *mochi.Subscribers {
	var target packets.Subscription
	found := false
	if pk.Origin == shareInID {
		k := b.shareTarget // shareMu is held by deliverShared, on this goroutine
		if sub, ok := subs.Shared[k.filter][k.client]; ok {
			target, found = sub, true
		}
		clear(subs.Subscriptions)
		subs.InlineSubscriptions = nil
		subs.SharedSelected = map[string]packets.Subscription{}
		if found {
			subs.SharedSelected[k.client] = target
		}
	} else {
		subs.SharedSelected = map[string]packets.Subscription{}
	}
	// An empty SharedSelected makes mochi pick from Shared: leave it empty.
	subs.Shared = map[string]map[string]packets.Subscription{}
	if !found && pk.Origin == shareInID {
		b.log.Debug("shared subscriber left before its delivery", "client", b.shareTarget.client, "filter", b.shareTarget.filter)
	}
	return subs
}
