// Package hubapp wires canopy-hub into the shared command line: its
// settings and flags, loading hub.yaml, and running the hub with live
// reloads. Only cmd/canopy-hub imports it.
package hubapp

import (
	"github.com/canopy-iot/canopy/appliance"
	"log/slog"

	"github.com/canopy-iot/canopy/hub"
)

// DefaultHubConfig is where canopy-hub looks for its configuration when no
// --config is given. Without that file it runs on defaults.
const DefaultHubConfig = "/etc/canopy/hub.yaml"

// HubSettings are the hub settings that can also be given as flags.
var HubSettings = []appliance.Setting{
	{Path: "server_name", Usage: "name of this node (required for clustered JetStream)"},
	{Path: "listen", Usage: "client listen address host:port (default " + hub.DefaultListen + ")"},
	{Path: "http_listen", Usage: "monitoring listen address, or \"off\" (default " + hub.DefaultHTTPListen + ")"},
	{Path: "log_level", Usage: "trace, debug, info, warn or error (default info)"},
	{Path: "lame_duck", Usage: "on shutdown, spread client disconnection over this duration, e.g. 30s"},
	{Path: "cluster.name", Usage: "cluster name"},
	{Path: "cluster.listen", Usage: "route listen address host:port"},
	{Path: "cluster.routes", Usage: "route URLs of other nodes (nats://host:6222)", List: true},
	{Path: "gateways.name", Usage: "this cluster's name in the supercluster"},
	{Path: "gateways.listen", Usage: "gateway listen address host:port"},
	{Path: "jetstream.enabled", Usage: "true or false (default true)"},
	{Path: "jetstream.store_dir", Usage: "JetStream storage directory (default " + hub.DefaultStoreDir + ")"},
	{Path: "jetstream.max_memory", Usage: "JetStream memory limit, e.g. 1GiB"},
	{Path: "jetstream.max_file", Usage: "JetStream file storage limit, e.g. 100GiB"},
	{Path: "jetstream.domain", Usage: "JetStream domain"},
	{Path: "leafnodes.listen", Usage: "leafnode listen address host:port, or \"off\" (default " + hub.DefaultLeafNodesListen + ")"},
	{Path: "dashboard.listen", Usage: "dashboard, API and metrics listen address, or \"off\" (default " + hub.DefaultDashboardListen + ")"},
	{Path: "nats_config", Usage: "nats-server configuration file for settings Canopy does not model"},
}

// LoadHub reads and checks the hub configuration: path is the config file
// (explicit says the user named it, so it must exist); overrides come from
// flags. The result has its defaults applied. Problems are returned as a
// *appliance.ConfigError listing all of them, each with its line or flag.
var LoadHub = appliance.Loader(hub.Config.WithDefaults)

// Program is canopy-hub's command line.
var Program = appliance.Program[hub.Config]{
	Name:          "canopy-hub",
	Short:         "Canopy's datacenter hub: NATS, JetStream and the leafnode listener for devices",
	DefaultConfig: DefaultHubConfig,
	Settings:      HubSettings,
	Load:          LoadHub,
	LogLevel:      func(c hub.Config) string { return c.LogLevel },
	New: func(c hub.Config, log *slog.Logger) (appliance.Runner[hub.Config], error) {
		return hub.New(c, log)
	},
	Check:    hub.Check,
	Commands: commands,
	Status:   liveStatus,
}
