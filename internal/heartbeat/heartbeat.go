// Package heartbeat is the document a leaf reports about itself to its
// hub, periodically, as its key in the tenant's "devices" KV bucket: what
// runs, since when, how its link and its streams are. The leaf writes it
// and the hub reads it; both import this package, neither imports the
// other.
package heartbeat

import "time"

// Bucket is the tenant's KV bucket of heartbeats, keyed by device.
const Bucket = "devices"

// DefaultInterval is how often a leaf reports.
const DefaultInterval = 30 * time.Second

// Document is one heartbeat.
type Document struct {
	Device  string    `json:"device"`
	Version string    `json:"version"`
	Started time.Time `json:"started"`
	Sent    time.Time `json:"sent"`
	// Received is when the hub stored the heartbeat, by the hub's clock;
	// set by the reader from the KV entry, never sent. A device without a
	// real-time clock may boot with its clock far off: Online and
	// LastSeen go by Received when it is known.
	Received time.Time     `json:"-"`
	Interval time.Duration `json:"interval"` // until the next one
	Link     Link          `json:"link"`
	Streams  []Stream      `json:"streams,omitempty"`
	// Health is the device's own condition, nil when the leaf's health
	// reporting is off.
	Health *Health `json:"health,omitempty"`
	// Firmware is what the firmware agent runs, nil when it is off.
	Firmware []Firmware `json:"firmware,omitempty"`
}

// Link is the uplink's state as the leaf sees it.
type Link struct {
	URL        string    `json:"url"`
	Since      time.Time `json:"since"`
	Reconnects uint64    `json:"reconnects"`
	MsgsIn     uint64    `json:"msgs_in"`
	MsgsOut    uint64    `json:"msgs_out"`
	LastError  string    `json:"last_error,omitempty"`
}

// Stream is a leaf stream's backlog: what waits on the device for the hub.
type Stream struct {
	Name      string        `json:"name"`
	Msgs      uint64        `json:"msgs"`
	Bytes     uint64        `json:"bytes"`
	OldestAge time.Duration `json:"oldest_age"`
	Dropped   uint64        `json:"dropped"`
}

// LastSeen is when the heartbeat arrived: Received, or Sent when the
// reader did not know.
func (d Document) LastSeen() time.Time {
	if !d.Received.IsZero() {
		return d.Received
	}
	return d.Sent
}

// Online reports whether a device whose last heartbeat is d is online at
// now: it is when the next heartbeat is not overdue (one interval, plus
// as much again for a slow link).
func (d Document) Online(now time.Time) bool {
	interval := d.Interval
	if interval <= 0 {
		interval = DefaultInterval
	}
	return now.Sub(d.LastSeen()) <= 2*interval+5*time.Second
}

// Health is the part of the leaf's health report the hub shows: each
// value is left out when the device could not read it.
type Health struct {
	CPUTempC     *float64 `json:"cpu_temp_c,omitempty"`
	Load1        *float64 `json:"load1,omitempty"`
	MemAvailable *uint64  `json:"mem_available_bytes,omitempty"`
	MemTotal     *uint64  `json:"mem_total_bytes,omitempty"`
	DiskFree     *uint64  `json:"disk_free_bytes,omitempty"`
	DiskTotal    *uint64  `json:"disk_total_bytes,omitempty"`
	// Throttled is true while the Raspberry Pi firmware reports
	// under-voltage, frequency capping or thermal throttling.
	Throttled bool `json:"throttled,omitempty"`
}

// Firmware is one artifact the device's agent manages.
type Firmware struct {
	Name    string `json:"name"`
	Version string `json:"version"` // installed, "" before the first
	State   string `json:"state"`   // the agent's state (firmware.State)
}
