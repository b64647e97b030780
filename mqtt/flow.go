package mqtt

import (
	"cmp"
	"context"
	"log/slog"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/canopy-iot/canopy/internal/logging"
)

// flowHook counts and reports the messages the broker gives up for a
// client, and repairs mochi's flow control. mochi queues every message for
// a connected client in a fixed-size channel (mqtt.max_pending) and drops
// what finds it full, whatever its QoS; QoS 1/2 messages also give up when
// the client's inflight store (mqtt.max_inflight) is full or they expire.
//
// An MQTT 5 client's receive maximum is a send window: past it, mochi
// parks QoS 1/2 messages. Its own handling of the window is broken (mochi
// 2.7.9): it sends a parked message only when the client sends a packet,
// picks it in no particular order, stops tracking it (so its PUBACK never
// reopens the window and a lost connection loses it), and a publisher and
// the client's reader update the window without a common lock. A client
// with a receive maximum of 5 stalled after about ten messages. So for
// such clients the hook keeps the window itself: mochi's count of it stays
// at zero, so every QoS 1/2 message is parked, and the hook sends parked
// messages oldest first, still tracked, while fewer than the receive
// maximum are in flight: after each packet the client sends, and soon
// after each new message (an OnQosPublish kick, with a periodic sweep as
// the safety net).
type flowHook struct {
	mochi.HookBase
	srv     *mochi.Server
	log     *slog.Logger
	dropped atomic.Int64
	warn    warnEvery

	complete func(*mochi.Client, packets.Packet) // the session hook's OnQosComplete, if any

	mu       sync.Mutex         // serializes releases
	windowed sync.Map           // client id → *mochi.Client with a receive maximum
	kicks    chan *mochi.Client // clients with a new parked message
}

// sweepEvery bounds how long a parked message waits when its kick came
// before mochi parked it (the release then counted it as in flight).
const sweepEvery = 25 * time.Millisecond

func newFlow(srv *mochi.Server, log *slog.Logger) *flowHook {
	return &flowHook{srv: srv, log: log, warn: warnEvery{log: log, every: logging.Every{Interval: warnInterval}}, kicks: make(chan *mochi.Client, 1024)}
}

// ID implements mochi.Hook.
func (f *flowHook) ID() string { return "canopy-flow" }

// Provides implements mochi.Hook.
func (f *flowHook) Provides(event byte) bool {
	switch event {
	case mochi.OnPublishDropped, mochi.OnQosDropped, mochi.OnPacketRead, mochi.OnPacketProcessed, mochi.OnQosPublish,
		mochi.OnSessionEstablished, mochi.OnDisconnect:
		return true
	}
	return false
}

// OnPublishDropped counts a message dropped because the client's queue
// was full.
func (f *flowHook) OnPublishDropped(cl *mochi.Client, pk packets.Packet) {
	f.dropped.Add(1)
	f.warn.warn("MQTT client too slow: messages dropped", "client", cl.ID, "topic", pk.TopicName, "qos", pk.FixedHeader.Qos,
		"hint", "raise mqtt.max_pending")
}

// OnQosDropped counts a QoS 1/2 message given up (expired, or refused by
// the client).
func (f *flowHook) OnQosDropped(cl *mochi.Client, pk packets.Packet) {
	f.dropped.Add(1)
	f.warn.warn("MQTT QoS 1/2 message given up", "client", cl.ID, "packet_id", pk.PacketID)
}

// limit is the client's receive maximum, 0 when the hook leaves the
// window to mochi (MQTT 3.1.1 has none; 65535 is never reached).
func limit(cl *mochi.Client) int32 {
	m := int32(cl.Properties.Props.ReceiveMaximum)
	if cl.Properties.ProtocolVersion != 5 || m >= math.MaxUint16 {
		return 0
	}
	return m
}

// OnSessionEstablished starts keeping the window of a client with a
// receive maximum.
func (f *flowHook) OnSessionEstablished(cl *mochi.Client, _ packets.Packet) {
	if limit(cl) > 0 {
		f.windowed.Store(cl.ID, cl)
		f.release(cl)
	}
}

// OnDisconnect stops keeping it.
func (f *flowHook) OnDisconnect(cl *mochi.Client, _ error, _ bool) {
	f.windowed.CompareAndDelete(cl.ID, cl)
}

// OnPacketRead completes a PUBACK from a windowed client before mochi
// sees it: mochi would reopen its count of the window, and a publisher
// could send a new message ahead of the parked ones before OnPacketProcessed
// closes it again.
func (f *flowHook) OnPacketRead(cl *mochi.Client, pk packets.Packet) (packets.Packet, error) {
	if pk.FixedHeader.Type != packets.Puback || limit(cl) == 0 {
		return pk, nil
	}
	if m, ok := cl.State.Inflight.Get(pk.PacketID); ok && m.FixedHeader.Type == packets.Publish && cl.State.Inflight.Delete(pk.PacketID) {
		atomic.AddInt64(&f.srv.Info.Inflight, -1)
		if f.complete != nil {
			f.complete(cl, pk)
		}
	}
	return pk, nil
}

// OnPacketProcessed sends parked messages the client's acknowledgements
// made room for. It runs after mochi handled the packet and before mochi's
// own (broken) release, which it leaves nothing to do.
func (f *flowHook) OnPacketProcessed(cl *mochi.Client, _ packets.Packet, _ error) {
	if limit(cl) > 0 {
		f.release(cl)
	}
}

// OnQosPublish kicks the release of a new message for a windowed client:
// mochi parks it right after this call.
func (f *flowHook) OnQosPublish(cl *mochi.Client, _ packets.Packet, _ int64, resends int) {
	if resends == 0 && limit(cl) > 0 {
		select {
		case f.kicks <- cl:
		default: // the sweep will see it
		}
	}
}

// release sends the client's parked messages, oldest first, while fewer
// than its receive maximum are in flight, and keeps mochi's count of the
// window at zero so that mochi parks every new one.
func (f *flowHook) release(cl *mochi.Client) {
	lim := limit(cl)
	f.mu.Lock()
	defer f.mu.Unlock()
	var inFlight int32
	var parked []packets.Packet
	for _, m := range cl.State.Inflight.GetAll(false) {
		switch {
		case m.FixedHeader.Type == packets.Publish && m.Expiry < 0:
			parked = append(parked, m)
		case m.FixedHeader.Type == packets.Publish || m.FixedHeader.Type == packets.Pubrel:
			inFlight++
		}
	}
	slices.SortFunc(parked, func(a, b packets.Packet) int {
		return cmp.Or(cmp.Compare(a.Created, b.Created), cmp.Compare(a.PacketID, b.PacketID))
	})
	for _, m := range parked {
		if inFlight >= lim || cl.Closed() {
			break
		}
		m.Expiry = 0 // sent and tracked, as any message in flight
		cl.State.Inflight.Set(m)
		if err := cl.WritePacket(m); err != nil {
			break // the connection is going; the message stays for a resend
		}
		inFlight++
	}
	// Down to zero without passing through a higher count, which a
	// publisher could catch (mochi's count never exceeds the maximum).
	for range lim {
		cl.State.Inflight.DecreaseSendQuota()
	}
}

// sweep releases parked messages of windowed clients, when kicked and
// every sweepEvery, until ctx ends.
func (f *flowHook) sweep(ctx context.Context) {
	t := time.NewTicker(sweepEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case cl := <-f.kicks:
			f.release(cl)
			continue
		case <-t.C:
		}
		f.windowed.Range(func(_, v any) bool {
			if cl := v.(*mochi.Client); cl.State.Inflight.Len() > 0 {
				f.release(cl)
			}
			return true
		})
	}
}
