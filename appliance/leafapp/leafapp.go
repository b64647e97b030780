// Package leafapp wires canopy-leaf into the shared command line: its
// settings and flags, loading leaf.yaml, running the leaf, and its own
// commands (enroll, over leaf/enroll). Only cmd/canopy-leaf imports it; it
// must never import hub (the leaf binary does not link nats-server).
package leafapp

import (
	"log/slog"

	"github.com/canopy-iot/canopy/appliance"
	"github.com/canopy-iot/canopy/firmware/agent"
	"github.com/canopy-iot/canopy/leaf"
	"github.com/canopy-iot/canopy/leaf/natsd"
	"github.com/canopy-iot/canopy/mqtt"
)

// DefaultLeafConfig is where canopy-leaf looks for its configuration when
// no --config is given. Without that file it runs on defaults.
const DefaultLeafConfig = "/etc/canopy/leaf.yaml"

// LeafSettings are the leaf settings that can also be given as flags.
var LeafSettings = []appliance.Setting{
	{Path: "server_name", Usage: "name of this device (default: the host name)"},
	{Path: "data_dir", Usage: "state directory (default " + leaf.DefaultDataDir + ")"},
	{Path: "log_level", Usage: "trace, debug, info, warn or error (default info)"},
	{Path: "nats.listen", Usage: "NATS client listen address host:port (default " + natsd.DefaultListen + ")"},
	{Path: "nats.max_payload", Usage: "largest message, e.g. 1MiB (default 1MiB)"},
	{Path: "nats.max_pending", Usage: "bytes queued for one client before it is cut off as a slow consumer (default 64MiB)"},
	{Path: "nats.write_deadline", Usage: "longest blocked write to a client before it is cut off (default 10s)"},
	{Path: "nats.ping_interval", Usage: "how often idle clients are pinged (default 2m)"},
	{Path: "nats.max_connections", Usage: "most concurrent clients (default 65536)"},
	{Path: "mqtt.enabled", Usage: "run the MQTT broker (default true)"},
	{Path: "mqtt.listen", Usage: "MQTT listen address host:port (default " + mqtt.DefaultListen + ")"},
	{Path: "mqtt.tls.listen", Usage: "MQTT over TLS listen address host:port (default: none)"},
	{Path: "mqtt.websocket.listen", Usage: "MQTT over WebSocket listen address host:port (default: none)"},
	{Path: "mqtt.anonymous", Usage: "who may connect without a user name: loopback, always or never (default loopback)"},
	{Path: "mqtt.users_file", Usage: "file of name:bcrypt-hash lines for MQTT logins"},
	{Path: "uplink.urls", Usage: "hub leafnode URLs, e.g. tls://hub.example.com:7422", List: true},
	{Path: "health.enabled", Usage: "publish the device's health document (default true)"},
	{Path: "health.interval", Usage: "time between two health documents (default 30s)"},
	{Path: "monitor.listen", Usage: "/metrics and /status listen address host:port, or \"off\" (default " + leaf.DefaultMonitorListen + ")"},
}

// LoadLeaf reads and checks the leaf configuration, like hubapp.LoadHub.
var LoadLeaf = appliance.Loader(leaf.Config.WithDefaults)

// Program is canopy-leaf's command line.
var Program = appliance.Program[leaf.Config]{
	Name:          "canopy-leaf",
	Short:         "Canopy's device server: local NATS for applications, linked to the hub",
	DefaultConfig: DefaultLeafConfig,
	Settings:      LeafSettings,
	Load:          LoadLeaf,
	LogLevel:      func(c leaf.Config) string { return c.LogLevel },
	New: func(c leaf.Config, log *slog.Logger) (appliance.Runner[leaf.Config], error) {
		return leaf.New(c, log)
	},
	Commands: commands,
	Status:   liveStatus,
	// A self-updated binary in the data directory runs in place of the
	// packaged one (see launcher).
	BeforeRun: launcher(func(c leaf.Config) *agent.SelfInstaller {
		return agent.SelfFor(c.Firmware, c.DataDir)
	}),
}
