package mqtt

import (
	"strings"
	"sync/atomic"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// Stats are the broker's counters for its network clients. mochi counts
// too, but its message counts include the NATS messages the bridge
// injects and its byte counts are of every packet: these count MQTT
// clients' publishes alone, by payload, like the NATS server's.
type Stats struct {
	Clients       int64  // connected now
	Connections   uint64 // sessions established since start
	Subscriptions int64
	Retained      int    // retained messages held
	MsgsIn        uint64 // publishes taken from clients
	MsgsOut       uint64 // publishes sent to clients
	BytesIn       uint64
	BytesOut      uint64
	Dropped       int64 // see Broker.Dropped
}

// statsHook counts; its counters only ever grow.
type statsHook struct {
	mochi.HookBase
	conns             atomic.Uint64
	msgsIn, msgsOut   atomic.Uint64
	bytesIn, bytesOut atomic.Uint64
}

// ID implements mochi.Hook.
func (h *statsHook) ID() string { return "canopy-stats" }

// Provides implements mochi.Hook.
func (h *statsHook) Provides(event byte) bool {
	switch event {
	case mochi.OnSessionEstablished, mochi.OnPublished, mochi.OnPacketSent:
		return true
	}
	return false
}

// OnSessionEstablished counts a connection the broker accepted.
func (h *statsHook) OnSessionEstablished(*mochi.Client, packets.Packet) { h.conns.Add(1) }

// OnPublished counts a client's publish once the broker took it (a
// refused one never gets here); the bridge's injected messages are not
// a client's.
func (h *statsHook) OnPublished(cl *mochi.Client, pk packets.Packet) {
	if cl.Net.Inline {
		return
	}
	h.msgsIn.Add(1)
	h.bytesIn.Add(uint64(len(pk.Payload)))
}

// OnPacketSent counts a publish written to a client.
func (h *statsHook) OnPacketSent(_ *mochi.Client, pk packets.Packet, _ []byte) {
	if pk.FixedHeader.Type != packets.Publish {
		return
	}
	h.msgsOut.Add(1)
	h.bytesOut.Add(uint64(len(pk.Payload)))
}

// Stats returns the broker's counters.
func (b *Broker) Stats() Stats {
	return Stats{
		Clients:       atomic.LoadInt64(&b.srv.Info.ClientsConnected),
		Connections:   b.stats.conns.Load(),
		Subscriptions: atomic.LoadInt64(&b.srv.Info.Subscriptions),
		Retained:      b.retained(),
		MsgsIn:        b.stats.msgsIn.Load(),
		MsgsOut:       b.stats.msgsOut.Load(),
		BytesIn:       b.stats.bytesIn.Load(),
		BytesOut:      b.stats.bytesOut.Load(),
		Dropped:       b.Dropped(),
	}
}

// retained counts the retained messages of clients: mochi keeps its own
// $SYS topics among them.
func (b *Broker) retained() int {
	n := 0
	for topic := range b.srv.Topics.Retained.GetAll() {
		if !strings.HasPrefix(topic, "$") {
			n++
		}
	}
	return n
}
