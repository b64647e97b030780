package leaf

import (
	"bytes"
	"net/http"
	"strconv"

	"github.com/canopy-iot/canopy/internal/promtext"
)

// metricPrefix starts every metric of the leaf.
const metricPrefix = "canopy_leaf_"

// serveMetrics answers a Prometheus scrape.
func (n *Node) serveMetrics(w http.ResponseWriter, _ *http.Request) {
	var buf bytes.Buffer
	if _, err := metrics(n.Status()).WriteTo(&buf); err != nil {
		// A bug in the names above, never the scraper's fault.
		n.log.Error("metrics not written", "component", "monitor", "err", err)
		http.Error(w, "metrics unavailable: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", promtext.ContentType)
	w.Header().Set("Content-Length", strconv.Itoa(buf.Len()))
	w.Write(buf.Bytes())
}

// metrics turns a Status into the metrics page. Counters come from
// counters that only grow while the process runs; gauges are the state
// now.
func metrics(st Status) *promtext.Set {
	var s promtext.Set
	gauge := func(name, help string) *promtext.Family { return s.Gauge(metricPrefix+name, help) }
	counter := func(name, help string) *promtext.Family { return s.Counter(metricPrefix+name, help) }

	gauge("info", "The leaf's version and names; always 1.").
		Add(1, "version", st.Version, "device", st.Device, "server_name", st.ServerName)
	gauge("uptime_seconds", "Time since the leaf started.").Add(float64(st.Uptime))

	conns := gauge("connections", "Clients connected now, by protocol.")
	connsTotal := counter("connections_total", "Client connections accepted since start, by protocol.")
	subs := gauge("subscriptions", "Subscriptions of the clients, by protocol.")
	msgsIn := counter("messages_in_total", "Messages published by clients, by protocol.")
	msgsOut := counter("messages_out_total", "Messages delivered to clients, by protocol.")
	bytesIn := counter("bytes_in_total", "Payload bytes (headers included) published by clients, by protocol.")
	bytesOut := counter("bytes_out_total", "Payload bytes (headers included) delivered to clients, by protocol.")
	server := func(proto string, s ServerStatus) {
		conns.Int(int64(s.Clients), "protocol", proto)
		connsTotal.Uint(s.Connections, "protocol", proto)
		subs.Int(int64(s.Subscriptions), "protocol", proto)
		msgsIn.Uint(s.MsgsIn, "protocol", proto)
		msgsOut.Uint(s.MsgsOut, "protocol", proto)
		bytesIn.Uint(s.BytesIn, "protocol", proto)
		bytesOut.Uint(s.BytesOut, "protocol", proto)
	}
	server("nats", st.NATS)
	if m := st.MQTT; m != nil {
		server("mqtt", m.ServerStatus)
		gauge("mqtt_retained_messages", "Retained MQTT messages held.").Int(int64(m.Retained))
		counter("mqtt_dropped_messages_total", "MQTT messages given up for slow or refusing clients.").Int(m.Dropped)
	}

	if l := st.Link; l != nil {
		gauge("uplink_up", "1 while the link to the hub is up.").Bool(l.Up)
		if l.Up {
			gauge("uplink_up_since_seconds", "When the current link to the hub came up, in Unix seconds.").
				Add(float64(l.Since.UnixNano())/1e9, "url", l.URL)
		}
		counter("uplink_reconnects_total", "Links to the hub established after the first.").Uint(l.Reconnects)
		counter("uplink_messages_in_total", "Messages from the hub delivered locally.").Uint(l.MsgsIn)
		counter("uplink_messages_out_total", "Messages sent to the hub.").Uint(l.MsgsOut)
		counter("uplink_bytes_in_total", "Bytes of the messages from the hub.").Uint(l.BytesIn)
		counter("uplink_bytes_out_total", "Bytes of the messages sent to the hub.").Uint(l.BytesOut)
		counter("uplink_dropped_messages_total", "Messages for the hub dropped because the link's queue was full.").Uint(l.Dropped)
		if l.LastError != "" {
			gauge("uplink_last_error_info", "Why the last attempt or link to the hub failed; absent when none did.").
				Add(1, "error", l.LastError)
		}
	}

	backlog := gauge("stream_backlog_messages", "Messages waiting on the device for the hub, by stream.")
	backlogBytes := gauge("stream_backlog_bytes", "Payload bytes waiting on the device for the hub, by stream.")
	oldest := gauge("stream_oldest_age_seconds", "Age of the oldest message waiting, by stream; 0 when none waits.")
	dropped := counter("stream_dropped_total", "Messages a limit deleted before the hub had them, by stream and limit.")
	refused := counter("stream_refused_total", "Messages refused because the stream was full (discard: new), by stream.")
	lastSeq := gauge("stream_last_sequence", "Last sequence the stream assigned.")
	acked := gauge("stream_acked_sequence", "Sequence up to which the hub acknowledged every message of the stream.")
	for _, s := range st.Streams {
		backlog.Uint(s.Msgs, "stream", s.Name)
		backlogBytes.Uint(s.Bytes, "stream", s.Name)
		oldest.Add(float64(s.OldestAge), "stream", s.Name)
		for _, reason := range dropReasons {
			dropped.Uint(s.Dropped[reason], "stream", s.Name, "reason", reason)
		}
		refused.Uint(s.Refused, "stream", s.Name)
		lastSeq.Uint(s.LastSeq, "stream", s.Name)
		acked.Uint(s.AckedSeq, "stream", s.Name)
	}

	if s := st.Store; s != nil {
		gauge("store_file_bytes", "Size of the store file (streams, MQTT sessions and retained messages).").Int(s.FileBytes)
		gauge("store_free_bytes", "Free pages inside the store file, reused before it grows.").Int(s.FreeBytes)
	}

	fwInfo := gauge("firmware_info", "The firmware installed through the agent, by name; always 1.")
	fwState := gauge("firmware_state", "The state the firmware agent last reported, by name; always 1.")
	for _, f := range st.Firmware {
		fwInfo.Add(1, "name", f.Name, "version", f.Version)
		if f.State != "" {
			fwState.Add(1, "name", f.Name, "state", f.State)
		}
	}

	p := st.Process
	gauge("goroutines", "Goroutines of the process.").Int(int64(p.Goroutines))
	gauge("memory_heap_bytes", "Bytes of allocated heap objects.").Uint(p.HeapBytes)
	gauge("memory_sys_bytes", "Bytes of memory the Go runtime obtained from the OS.").Uint(p.SysBytes)
	counter("gc_cycles_total", "Completed garbage collection cycles.").Uint(uint64(p.GCCycles))
	return &s
}
