package leaf

import (
	"context"
	"encoding/json"
	"time"

	"github.com/canopy-iot/canopy/internal/heartbeat"
	"github.com/canopy-iot/canopy/internal/version"
	"github.com/canopy-iot/canopy/leaf/health"
	"github.com/canopy-iot/canopy/leaf/natsd"
	"github.com/canopy-iot/canopy/leaf/stream"
)

// heartbeatSubject is where the leaf puts its heartbeat: its key in the
// tenant's devices bucket, as a KV put under the JetStream domain every
// Canopy hub account serves (see stream.DefaultDomain).
func heartbeatSubject(device string) string {
	return "$JS." + stream.DefaultDomain + ".API.$KV." + heartbeat.Bucket + "." + device
}

// runHeartbeat reports the leaf to the hub every interval while the link
// is up, and at once when it comes up, until ctx ends. A heartbeat lost
// with the link is simply replaced by the next.
func (n *Node) runHeartbeat(ctx context.Context, in *natsd.Internal, interval time.Duration) {
	defer in.Close()
	subj := []byte(heartbeatSubject(n.device))
	t := time.NewTicker(interval)
	defer t.Stop()
	poll := time.NewTicker(250 * time.Millisecond)
	defer poll.Stop()
	var reported uint64 // link generation last reported on
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if n.uplink.Up() {
				in.Publish(subj, nil, nil, n.heartbeat(interval))
				reported = n.uplink.Generation()
			}
		case <-poll.C:
			if g := n.uplink.Generation(); n.uplink.Up() && g != reported {
				in.Publish(subj, nil, nil, n.heartbeat(interval))
				reported = g
			}
		}
	}
}

// heartbeat is the current heartbeat document.
func (n *Node) heartbeat(interval time.Duration) []byte {
	ls := n.uplink.Stats()
	d := heartbeat.Document{
		Device: n.device, Version: version.Version, Started: n.started, Sent: time.Now(), Interval: interval,
		Link: heartbeat.Link{URL: ls.URL, Since: ls.Since, Reconnects: ls.Reconnects, MsgsIn: ls.MsgsIn, MsgsOut: ls.MsgsOut, LastError: ls.LastError},
	}
	for _, c := range n.cfg.Streams {
		st := n.StreamStats(c.Name)
		d.Streams = append(d.Streams, heartbeat.Stream{Name: c.Name, Msgs: st.Msgs, Bytes: st.Bytes, OldestAge: st.OldestAge, Dropped: st.Dropped.Total()})
	}
	if n.health != nil {
		d.Health = heartbeatHealth(n.health.Report())
	}
	for _, f := range n.firmwareStatus() {
		d.Firmware = append(d.Firmware, heartbeat.Firmware{Name: f.Name, Version: f.Version, State: f.State})
	}
	b, _ := json.Marshal(d)
	return b
}

// heartbeatHealth is the part of a health report the hub shows.
func heartbeatHealth(r health.Report) *heartbeat.Health {
	h := &heartbeat.Health{CPUTempC: r.CPUTempC}
	if r.Load != nil {
		h.Load1 = &r.Load.Avg1
	}
	if r.Memory != nil {
		h.MemAvailable, h.MemTotal = &r.Memory.AvailableBytes, &r.Memory.TotalBytes
	}
	if r.Disk != nil {
		h.DiskFree, h.DiskTotal = &r.Disk.FreeBytes, &r.Disk.TotalBytes
	}
	if t := r.Throttled; t != nil {
		h.Throttled = isSet(t.UnderVoltage) || isSet(t.FreqCapped) || isSet(t.Throttled) || isSet(t.SoftTempLimit)
	}
	return h
}

func isSet(b *bool) bool { return b != nil && *b }
