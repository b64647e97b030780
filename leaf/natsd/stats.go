package natsd

import "sync/atomic"

// Stats are the server's counters for its network clients (not Canopy's
// own internal clients: the MQTT bridge, stream sync and the like count
// their traffic themselves). Message and byte counts are of messages:
// payload plus headers, as nats-server counts them, not protocol bytes.
type Stats struct {
	Clients       int    // connected now
	Connections   uint64 // accepted since start
	Subscriptions int
	MsgsIn        uint64 // published by clients
	MsgsOut       uint64 // delivered to clients
	BytesIn       uint64
	BytesOut      uint64
}

// counters only ever grow: they are Prometheus counters.
type counters struct {
	conns             atomic.Uint64
	msgsIn, msgsOut   atomic.Uint64
	bytesIn, bytesOut atomic.Uint64
}

// Stats returns the server's counters.
func (s *Server) Stats() Stats {
	return Stats{
		Clients:       s.NumClients(),
		Connections:   s.stats.conns.Load(),
		Subscriptions: s.NumSubscriptions(),
		MsgsIn:        s.stats.msgsIn.Load(),
		MsgsOut:       s.stats.msgsOut.Load(),
		BytesIn:       s.stats.bytesIn.Load(),
		BytesOut:      s.stats.bytesOut.Load(),
	}
}
