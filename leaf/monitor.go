package leaf

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"runtime"
	"time"

	"github.com/canopy-iot/canopy/internal/config"
	"github.com/canopy-iot/canopy/internal/version"
	"github.com/canopy-iot/canopy/store"
)

// The monitor serves what the leaf knows about itself over HTTP: /metrics
// for Prometheus and /status (JSON) for `canopy-leaf status` and other
// tools. Both are built from one Status, read at each request.

// MonitorConfig is the `monitor:` block of leaf.yaml.
type MonitorConfig struct {
	// Listen is where /metrics and /status are served, host:port.
	// Default 127.0.0.1:8223, next to nats-server's customary 8222 so
	// that a hub and a leaf on one machine do not collide; "off" turns
	// the monitor off. Anyone who reaches it reads the device's state:
	// keep it on loopback or a management network.
	Listen string `yaml:"listen"`
}

// Monitor defaults.
const (
	DefaultMonitorListen = "127.0.0.1:8223"
	// MonitorOff as monitor.listen turns the monitor off.
	MonitorOff = "off"
)

// WithDefaults returns a copy of c with every unset field at its default.
func (c MonitorConfig) WithDefaults() MonitorConfig {
	if c.Listen == "" {
		c.Listen = DefaultMonitorListen
	}
	return c
}

// On reports whether the monitor serves.
func (c MonitorConfig) On() bool { return c.Listen != MonitorOff }

// Validate reports every problem at once, relative to the block.
func (c MonitorConfig) Validate() error {
	var errs config.List
	if c.On() {
		if _, _, err := config.SplitListen(c.Listen); err != nil {
			errs.Addf("listen", "%v (or %q to turn the monitor off)", err, MonitorOff)
		}
	}
	return errs.Err()
}

// monitor is the running HTTP listener.
type monitor struct {
	ln   net.Listener
	srv  *http.Server
	done chan struct{}
}

// startMonitor serves /metrics and /status once every part is set up. A
// monitor that cannot listen is logged and left out: the device's data
// path matters more than its metrics, and the leaf must not stop (or be
// restarted over and over by its service manager) because another
// program holds the port. It returns the function that stops it.
func (n *Node) startMonitor() (stop func()) {
	if !n.cfg.Monitor.On() {
		return func() {}
	}
	ln, err := net.Listen("tcp", n.cfg.Monitor.Listen)
	if err != nil {
		n.log.Error("monitor not started: /metrics and /status are unavailable", "component", "monitor",
			"listen", n.cfg.Monitor.Listen, "err", err)
		return func() {}
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /metrics", n.serveMetrics)
	mux.HandleFunc("GET /status", n.serveStatus)
	m := &monitor{
		ln: ln,
		srv: &http.Server{
			Handler:           mux,
			ReadHeaderTimeout: 5 * time.Second,
			WriteTimeout:      10 * time.Second,
			IdleTimeout:       time.Minute,
		},
		done: make(chan struct{}),
	}
	n.monitor.Store(m)
	go func() {
		defer close(m.done)
		if err := m.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			n.log.Error("monitor stopped", "component", "monitor", "err", err)
		}
	}()
	n.log.Info("serving /metrics and /status", "component", "monitor", "addr", "http://"+ln.Addr().String())
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if err := m.srv.Shutdown(ctx); err != nil {
			m.srv.Close()
		}
		<-m.done
	}
}

// MonitorURL is the base URL of /metrics and /status once Ready, "" when
// the monitor is off or could not listen.
func (n *Node) MonitorURL() string {
	m := n.monitor.Load()
	if m == nil {
		return ""
	}
	return "http://" + m.ln.Addr().String()
}

func (n *Node) serveStatus(w http.ResponseWriter, _ *http.Request) {
	st := n.Status()
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(st); err != nil {
		n.log.Debug("status not written", "component", "monitor", "err", err)
	}
}

// Status is what /status answers: the leaf's state now.
type Status struct {
	Device     string    `json:"device"`      // the device id at the hub
	ServerName string    `json:"server_name"` // announced to local clients
	Version    string    `json:"version"`
	Started    time.Time `json:"started"`
	Uptime     Seconds   `json:"uptime_seconds"`
	// Link is the uplink's state, nil without a hub.
	Link    *LinkStatus    `json:"link,omitempty"`
	Streams []StreamStatus `json:"streams"`
	NATS    ServerStatus   `json:"nats"`
	// MQTT is nil when the broker is off.
	MQTT *MQTTStatus `json:"mqtt,omitempty"`
	// Firmware is what the firmware agent manages, empty when it is off.
	Firmware []FirmwareStatus `json:"firmware,omitempty"`
	// Store is the file of the streams and MQTT state, nil without one.
	Store   *StoreStatus  `json:"store,omitempty"`
	Process ProcessStatus `json:"process"`
}

// Seconds is a duration written as (fractional) seconds.
type Seconds float64

// Duration converts s back.
func (s Seconds) Duration() time.Duration { return time.Duration(float64(s) * float64(time.Second)) }

func seconds(d time.Duration) Seconds { return Seconds(d.Seconds()) }

// LinkStatus is the uplink's state.
type LinkStatus struct {
	Up         bool      `json:"up"`
	URL        string    `json:"url"`            // the hub address of the current or last link
	Since      time.Time `json:"since,omitzero"` // when the current link came up
	Reconnects uint64    `json:"reconnects"`     // links established after the first
	MsgsIn     uint64    `json:"msgs_in"`        // from the hub, delivered locally
	MsgsOut    uint64    `json:"msgs_out"`       // sent to the hub
	BytesIn    uint64    `json:"bytes_in"`
	BytesOut   uint64    `json:"bytes_out"`
	Dropped    uint64    `json:"dropped"` // for the hub, dropped because the link's queue was full
	LastError  string    `json:"last_error,omitempty"`
}

// StreamStatus is a leaf stream's backlog: what waits on the device for
// the hub.
type StreamStatus struct {
	Name      string  `json:"name"`
	Msgs      uint64  `json:"msgs"`
	Bytes     uint64  `json:"bytes"`
	OldestAge Seconds `json:"oldest_age_seconds"`
	// Dropped counts messages a limit deleted before the hub had them,
	// by limit: max_msgs, max_bytes, max_age.
	Dropped map[string]uint64 `json:"dropped"`
	// Refused counts messages refused for a full stream (discard: new).
	Refused uint64 `json:"refused"`
	// LastSeq is the last sequence the stream assigned; AckedSeq the one
	// up to which the hub acknowledged everything.
	LastSeq  uint64 `json:"last_seq"`
	AckedSeq uint64 `json:"acked_seq"`
}

// DroppedTotal is the number of messages dropped by any limit.
func (s StreamStatus) DroppedTotal() uint64 {
	var t uint64
	for _, n := range s.Dropped {
		t += n
	}
	return t
}

// ServerStatus is the local NATS server's state.
type ServerStatus struct {
	URL           string `json:"url"`
	Clients       int    `json:"clients"`
	Connections   uint64 `json:"connections_total"`
	Subscriptions int    `json:"subscriptions"`
	MsgsIn        uint64 `json:"msgs_in"`
	MsgsOut       uint64 `json:"msgs_out"`
	BytesIn       uint64 `json:"bytes_in"`
	BytesOut      uint64 `json:"bytes_out"`
}

// MQTTStatus is the MQTT broker's state.
type MQTTStatus struct {
	ServerStatus
	Retained int   `json:"retained"`
	Dropped  int64 `json:"dropped"` // given up for slow or refusing clients
}

// FirmwareStatus is one artifact the firmware agent manages.
type FirmwareStatus struct {
	Name    string `json:"name"`
	Version string `json:"version,omitempty"` // installed; "" before the first
	State   string `json:"state,omitempty"`   // the last reported, "" when none
}

// StoreStatus is the store file's.
type StoreStatus struct {
	Path      string `json:"path"`
	FileBytes int64  `json:"file_bytes"`
	FreeBytes int64  `json:"free_bytes"` // free pages inside the file
}

// ProcessStatus is the Go runtime's view of the process.
type ProcessStatus struct {
	Goroutines int    `json:"goroutines"`
	HeapBytes  uint64 `json:"heap_bytes"` // allocated heap objects
	SysBytes   uint64 `json:"sys_bytes"`  // obtained from the OS
	GCCycles   uint32 `json:"gc_cycles"`
}

// Status reads the leaf's state now. It reads the Go runtime's memory
// statistics once (which briefly stops the world); its only I/O is a
// stat of the store file and the firmware agent's small records of what
// it installed.
func (n *Node) Status() Status {
	now := time.Now()
	st := Status{
		Device: n.device, ServerName: n.cfg.ServerName, Version: version.Version,
		Started: n.started, Uptime: seconds(now.Sub(n.started)),
		Streams: []StreamStatus{},
	}
	if n.started.IsZero() {
		st.Uptime = 0
	}
	if n.uplink != nil {
		ls := n.uplink.Stats()
		st.Link = &LinkStatus{
			Up: ls.Connected, URL: ls.URL, Since: ls.Since, Reconnects: ls.Reconnects,
			MsgsIn: ls.MsgsIn, MsgsOut: ls.MsgsOut, BytesIn: ls.BytesIn, BytesOut: ls.BytesOut,
			Dropped: ls.Dropped, LastError: ls.LastError,
		}
	}
	for _, c := range n.cfg.Streams {
		st.Streams = append(st.Streams, streamStatus(c.Name, n.StreamStats(c.Name)))
	}
	ns := n.nats.Stats()
	st.NATS = ServerStatus{
		Clients: ns.Clients, Connections: ns.Connections, Subscriptions: ns.Subscriptions,
		MsgsIn: ns.MsgsIn, MsgsOut: ns.MsgsOut, BytesIn: ns.BytesIn, BytesOut: ns.BytesOut,
	}
	if n.isReady() {
		st.NATS.URL = n.NATSURL()
	}
	if n.mqtt != nil {
		ms := n.mqtt.Stats()
		st.MQTT = &MQTTStatus{
			ServerStatus: ServerStatus{
				Clients: int(ms.Clients), Connections: ms.Connections, Subscriptions: int(ms.Subscriptions),
				MsgsIn: ms.MsgsIn, MsgsOut: ms.MsgsOut, BytesIn: ms.BytesIn, BytesOut: ms.BytesOut,
			},
			Retained: ms.Retained, Dropped: ms.Dropped,
		}
		if n.isReady() {
			st.MQTT.URL = "mqtt://" + n.mqtt.Addr()
		}
	}
	st.Firmware = n.firmwareStatus()
	if n.store != nil {
		ss := n.store.Stats()
		st.Store = &StoreStatus{Path: n.store.Path(), FileBytes: ss.FileBytes, FreeBytes: ss.FreeBytes}
	}
	var mem runtime.MemStats
	runtime.ReadMemStats(&mem)
	st.Process = ProcessStatus{Goroutines: runtime.NumGoroutine(), HeapBytes: mem.HeapAlloc, SysBytes: mem.Sys, GCCycles: mem.NumGC}
	return st
}

func (n *Node) isReady() bool {
	select {
	case <-n.ready:
		return true
	default:
		return false
	}
}

// Drop reasons, as the stream configuration names the limits.
const (
	dropMaxMsgs  = "max_msgs"
	dropMaxBytes = "max_bytes"
	dropMaxAge   = "max_age"
)

func streamStatus(name string, s store.Stats) StreamStatus {
	return StreamStatus{
		Name: name, Msgs: s.Msgs, Bytes: s.Bytes, OldestAge: seconds(s.OldestAge),
		Dropped: map[string]uint64{dropMaxMsgs: s.Dropped.MaxMsgs, dropMaxBytes: s.Dropped.MaxBytes, dropMaxAge: s.Dropped.MaxAge},
		Refused: s.Refused, LastSeq: s.LastSeq, AckedSeq: s.AckFloor,
	}
}

// dropReasons are the keys of StreamStatus.Dropped, in order.
var dropReasons = []string{dropMaxAge, dropMaxBytes, dropMaxMsgs}

// monitorAddr says where a client finds the monitor of listen (after
// defaults): an unspecified host (all interfaces) is reached on
// loopback.
func monitorAddr(listen string) (string, error) {
	host, port, err := config.SplitListen(listen)
	if err != nil {
		return "", err
	}
	if port == 0 {
		return "", fmt.Errorf("port 0 is a port the kernel picks at each start: no client can know it")
	}
	switch host {
	case "", "0.0.0.0":
		host = "127.0.0.1"
	case "::":
		host = "::1"
	}
	return net.JoinHostPort(host, fmt.Sprint(port)), nil
}

// MonitorClientURL is the URL at which a program on this machine reaches
// the monitor that cfg (after defaults) configures.
func MonitorClientURL(cfg MonitorConfig) (string, error) {
	cfg = cfg.WithDefaults()
	if !cfg.On() {
		return "", errors.New("monitor.listen is off: the leaf serves no status")
	}
	addr, err := monitorAddr(cfg.Listen)
	if err != nil {
		return "", fmt.Errorf("monitor.listen %s: %w", cfg.Listen, err)
	}
	return "http://" + addr, nil
}
