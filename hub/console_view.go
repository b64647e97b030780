package hub

import (
	"cmp"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/canopy-iot/canopy/firmware"
	"github.com/canopy-iot/canopy/internal/heartbeat"
	"github.com/canopy-iot/canopy/internal/version"
)

// FleetSnapshot is GET /api/fleet and the data of the "fleet" event:
// tenants by name, each with its devices by id and its rollouts, newest
// first.
type FleetSnapshot struct {
	Server  FleetServer   `json:"server"`
	Tenants []FleetTenant `json:"tenants"`
}

// FleetServer is the hub node that answers.
type FleetServer struct {
	Name        string    `json:"name"`
	Version     string    `json:"version"`
	ClusterSize int       `json:"cluster_size"`
	Now         time.Time `json:"now"`
}

// FleetTenant is one tenant's devices and rollouts.
type FleetTenant struct {
	Name     string         `json:"name"`
	Devices  []FleetDevice  `json:"devices"`
	Rollouts []FleetRollout `json:"rollouts"`
}

// FleetDevice is a device provisioned in the key directory, joined with
// its last heartbeat (none: offline, LastSeen nil) and firmware status.
type FleetDevice struct {
	ID               string            `json:"id"`
	Online           bool              `json:"online"`
	LastSeen         *time.Time        `json:"last_seen"`
	Version          string            `json:"version"`
	Started          *time.Time        `json:"started"`
	Link             FleetLink         `json:"link"`
	BacklogMsgs      uint64            `json:"backlog_msgs"`
	BacklogBytes     uint64            `json:"backlog_bytes"`
	OldestAgeSeconds float64           `json:"oldest_age_seconds"`
	Dropped          uint64            `json:"dropped"`
	Health           *heartbeat.Health `json:"health"`
	Firmware         []FleetFirmware   `json:"firmware"`
	Group            string            `json:"group,omitempty"`
}

// FleetLink is the device's uplink as it last reported it.
type FleetLink struct {
	URL        string     `json:"url"`
	Since      *time.Time `json:"since"`
	Reconnects uint64     `json:"reconnects"`
	LastError  string     `json:"last_error"`
}

// FleetFirmware is one artifact the device's agent manages.
type FleetFirmware struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	State   string `json:"state"`
	Error   string `json:"error"`
}

// FleetRollout is a rollout with its devices counted by outcome.
type FleetRollout struct {
	ID         string         `json:"id"`
	Firmware   string         `json:"firmware"`
	Version    string         `json:"version"`
	State      RolloutState   `json:"state"`
	Reason     string         `json:"reason,omitempty"`
	Created    time.Time      `json:"created"`
	Devices    int            `json:"devices"`
	Applied    int            `json:"applied"`
	Failed     int            `json:"failed"`
	InProgress int            `json:"in_progress"`
	Pending    int            `json:"pending"` // not assigned yet
	Failures   []FleetFailure `json:"failures"`
}

// FleetFailure is a device that failed a rollout, with its reason.
type FleetFailure struct {
	Device string `json:"device"`
	Error  string `json:"error"`
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	t = t.UTC()
	return &t
}

// snapshot is the fleet as the model knows it at now.
func (c *consoleServer) snapshot(now time.Time) FleetSnapshot {
	s := FleetSnapshot{
		Server: FleetServer{
			Name:        c.ns.Name(),
			Version:     version.Version,
			ClusterSize: clusterSize(c.ns),
			Now:         now.UTC().Truncate(time.Second),
		},
		Tenants: []FleetTenant{},
	}
	if c.model != nil {
		s.Tenants = c.model.tenantsAt(now)
	}
	return s
}

// clusterSize counts this node and the distinct nodes it routes to.
func clusterSize(ns *server.Server) int {
	rz, err := ns.Routez(nil)
	if err != nil {
		return 1
	}
	ids := map[string]bool{}
	for _, r := range rz.Routes {
		ids[r.RemoteID] = true
	}
	return 1 + len(ids)
}

// tenantsAt builds every tenant's view at now.
func (m *consoleModel) tenantsAt(now time.Time) []FleetTenant {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]FleetTenant, 0, len(m.tenants))
	for name, tv := range m.tenants {
		out = append(out, tv.view(name, now))
	}
	slices.SortFunc(out, func(a, b FleetTenant) int { return cmp.Compare(a.Name, b.Name) })
	return out
}

// deviceIDs are the provisioned devices that are not revoked, and those
// that report without being provisioned here (a key directory restored
// from an older backup), sorted.
func (tv *tenantView) deviceIDs() []string {
	var ids []string
	for name, d := range tv.provisioned {
		if !d.Revoked {
			ids = append(ids, name)
		}
	}
	for name := range tv.beats {
		if _, known := tv.provisioned[name]; !known {
			ids = append(ids, name)
		}
	}
	slices.Sort(ids)
	return ids
}

func (tv *tenantView) view(name string, now time.Time) FleetTenant {
	t := FleetTenant{Name: name, Devices: []FleetDevice{}, Rollouts: []FleetRollout{}}
	groupOf := map[string]string{}
	for _, g := range sortedKeys(tv.groups) {
		for _, d := range tv.groups[g] {
			if _, ok := groupOf[d]; !ok {
				groupOf[d] = g
			}
		}
	}
	for _, id := range tv.deviceIDs() {
		t.Devices = append(t.Devices, tv.device(id, groupOf[id], now))
	}
	for _, r := range tv.rollouts {
		t.Rollouts = append(t.Rollouts, rolloutView(r, tv.statuses))
	}
	slices.SortFunc(t.Rollouts, func(a, b FleetRollout) int {
		return cmpJoin(b.Created.Compare(a.Created), cmp.Compare(a.ID, b.ID))
	})
	return t
}

func (tv *tenantView) device(id, group string, now time.Time) FleetDevice {
	d := FleetDevice{ID: id, Group: group, Firmware: []FleetFirmware{}}
	st, hasStatus := tv.statuses[id]
	statusError := func(name string) string {
		if hasStatus && st.Name == name && (st.State == firmware.StateFailed || st.State == firmware.StateRolledBack) {
			return st.Reason
		}
		return ""
	}
	doc, ok := tv.beats[id]
	if ok {
		d.Online = doc.Online(now)
		d.LastSeen = timePtr(doc.LastSeen())
		d.Version = doc.Version
		d.Started = timePtr(doc.Started)
		d.Link = FleetLink{URL: doc.Link.URL, Since: timePtr(doc.Link.Since), Reconnects: doc.Link.Reconnects, LastError: doc.Link.LastError}
		for _, s := range doc.Streams {
			d.BacklogMsgs += s.Msgs
			d.BacklogBytes += s.Bytes
			d.Dropped += s.Dropped
			d.OldestAgeSeconds = max(d.OldestAgeSeconds, s.OldestAge.Seconds())
		}
		d.Health = doc.Health
		for _, f := range doc.Firmware {
			if hasStatus && st.Name == f.Name && st.Updated.After(doc.Sent) {
				// The agent reports each change at once; the heartbeat
				// may be one interval old. (Both times are the device's.)
				continue
			}
			var reason string
			if f.State == string(firmware.StateFailed) || f.State == string(firmware.StateRolledBack) {
				reason = statusError(f.Name)
			}
			d.Firmware = append(d.Firmware, FleetFirmware{Name: f.Name, Version: f.Version, State: f.State, Error: reason})
		}
	}
	if hasStatus && st.Name != "" && !slices.ContainsFunc(d.Firmware, func(f FleetFirmware) bool { return f.Name == st.Name }) {
		v := st.Running
		if v == "" {
			v = st.Version
		}
		d.Firmware = append(d.Firmware, FleetFirmware{Name: st.Name, Version: v, State: string(st.State), Error: statusError(st.Name)})
		slices.SortFunc(d.Firmware, func(a, b FleetFirmware) int { return strings.Compare(a.Name, b.Name) })
	}
	return d
}

func rolloutView(r Rollout, statuses map[string]firmware.Status) FleetRollout {
	p := r.Progress(statuses)
	v := FleetRollout{
		ID: r.ID, Firmware: r.Name, Version: r.Version, State: r.State, Reason: r.Reason, Created: r.Created.UTC(),
		Devices: p.Total, Applied: p.Succeeded, Failed: p.Failed, InProgress: p.InFlight(), Pending: p.Total - p.Assigned,
		Failures: []FleetFailure{},
	}
	for _, d := range r.Assigned {
		st, ok := statuses[d]
		if r.Outcome(st, ok) == OutcomeFailed {
			v.Failures = append(v.Failures, FleetFailure{Device: d, Error: st.Reason})
		}
	}
	return v
}

// ConsoleStatus is GET /api/status, which `canopy-hub status`
// prints.
type ConsoleStatus struct {
	Server    StatusServer    `json:"server"`
	JetStream StatusJetStream `json:"jetstream"`
	Tenants   []StatusTenant  `json:"tenants"`
}

// StatusServer is the answering node and its connections.
type StatusServer struct {
	Name          string    `json:"name"`
	Version       string    `json:"version"`
	NATSVersion   string    `json:"nats_version"`
	Started       time.Time `json:"started"`
	UptimeSeconds float64   `json:"uptime_seconds"`
	Cluster       string    `json:"cluster,omitempty"`
	ClusterSize   int       `json:"cluster_size"`
	Routes        int       `json:"routes"`
	Gateways      int       `json:"gateways"`
	LeafNodes     int       `json:"leafnodes"`
	Clients       int       `json:"clients"`
	OperatorMode  bool      `json:"operator_mode"`
}

// StatusJetStream is the node's JetStream usage.
type StatusJetStream struct {
	Enabled      bool   `json:"enabled"`
	StorageUsed  uint64 `json:"storage_used"`
	StorageMax   int64  `json:"storage_max"`
	MemoryUsed   uint64 `json:"memory_used"`
	MemoryMax    int64  `json:"memory_max"`
	Streams      int    `json:"streams"`
	Consumers    int    `json:"consumers"`
	Messages     uint64 `json:"messages"`
	MessageBytes uint64 `json:"message_bytes"`
}

// StatusTenant sums up one tenant; Rollouts are the running ones.
type StatusTenant struct {
	Name         string         `json:"name"`
	Devices      int            `json:"devices"`
	Online       int            `json:"online"`
	BacklogMsgs  uint64         `json:"backlog_msgs"`
	BacklogBytes uint64         `json:"backlog_bytes"`
	Rollouts     []FleetRollout `json:"rollouts"`
}

func (c *consoleServer) status(now time.Time) ConsoleStatus {
	s := ConsoleStatus{Tenants: []StatusTenant{}}
	s.Server = StatusServer{
		Name: c.ns.Name(), Version: version.Version, Started: c.started.UTC(),
		UptimeSeconds: now.Sub(c.started).Seconds(), ClusterSize: clusterSize(c.ns),
		Cluster: c.ns.ClusterName(), OperatorMode: c.model != nil,
	}
	if v, err := c.ns.Varz(nil); err == nil {
		s.Server.NATSVersion = v.Version
		s.Server.Started = v.Start.UTC()
		s.Server.UptimeSeconds = now.Sub(v.Start).Seconds()
		s.Server.Routes, s.Server.LeafNodes, s.Server.Clients = v.Routes, v.Leafs, v.Connections
	}
	s.Server.Gateways = c.ns.NumOutboundGateways()
	if js, err := c.ns.Jsz(nil); err == nil && !js.Disabled && c.ns.JetStreamEnabled() {
		s.JetStream = StatusJetStream{
			Enabled: true, StorageUsed: js.Store, StorageMax: js.Config.MaxStore,
			MemoryUsed: js.Memory, MemoryMax: js.Config.MaxMemory,
			Streams: js.Streams, Consumers: js.Consumers, Messages: js.Messages, MessageBytes: js.Bytes,
		}
	}
	if c.model == nil {
		return s
	}
	for _, t := range c.model.tenantsAt(now) {
		st := StatusTenant{Name: t.Name, Devices: len(t.Devices), Rollouts: []FleetRollout{}}
		for _, d := range t.Devices {
			if d.Online {
				st.Online++
			}
			st.BacklogMsgs += d.BacklogMsgs
			st.BacklogBytes += d.BacklogBytes
		}
		for _, r := range t.Rollouts {
			if r.State == RolloutRunning {
				st.Rollouts = append(st.Rollouts, r)
			}
		}
		s.Tenants = append(s.Tenants, st)
	}
	return s
}
