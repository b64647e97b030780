// Package hubapp wires canopy-hub into the shared command line: its
// settings and flags, loading hub.yaml, and running the hub with live
// reloads. Only cmd/canopy-hub imports it.
package hubapp

import (
	"context"
	"github.com/canopy-iot/canopy/appliance"
	"log/slog"

	"github.com/canopy-iot/canopy/hub"
	"github.com/canopy-iot/canopy/internal/logging"
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
	{Path: "nats_config", Usage: "nats-server configuration file for settings Canopy does not model"},
}

// LoadHub reads and checks the hub configuration. path is the config file
// (explicit says the user named it, so it must exist); overrides come from
// flags. The result has its defaults applied. Problems are returned as a
// *ConfigError listing all of them, each with its line or flag.
func LoadHub(path string, explicit bool, overrides []appliance.Override) (hub.Config, error) {
	var cfg hub.Config
	if err := appliance.Load(path, explicit, overrides, &cfg, hub.Config.WithDefaults); err != nil {
		return hub.Config{}, err
	}
	return cfg, nil
}

// RunHub runs a hub on cfg until ctx is cancelled. Each value received from
// reload re-reads the configuration with load and applies it live; a
// configuration that fails to load or apply is logged and the running one
// kept. A non-nil error means the hub failed.
func RunHub(ctx context.Context, log *slog.Logger, level *slog.LevelVar, cfg hub.Config, reload <-chan struct{}, load func() (hub.Config, error)) error {
	h, err := hub.New(cfg, log)
	if err != nil {
		return &appliance.ConfigError{Err: err}
	}
	done := make(chan error, 1)
	go func() { done <- h.Run(ctx) }()
	for {
		select {
		case err := <-done:
			return err
		case <-reload:
			next, err := load()
			if err == nil {
				err = h.Reload(next)
			}
			if err != nil {
				log.Error("reload failed, keeping the running configuration", "err", err)
				continue
			}
			if l, err := logging.ParseLevel(next.LogLevel); err == nil {
				level.Set(l)
			}
		}
	}
}

// Program is canopy-hub's command line.
var Program = appliance.Program[hub.Config]{
	Name:          "canopy-hub",
	Short:         "Canopy's datacenter hub: NATS, JetStream and the leafnode listener for devices",
	DefaultConfig: DefaultHubConfig,
	Settings:      HubSettings,
	Load:          LoadHub,
	LogLevel:      func(c hub.Config) string { return c.LogLevel },
	// hub.New runs nats-server's own option checks without binding ports.
	Check: func(c hub.Config) error {
		_, err := hub.New(c, nil)
		return err
	},
	Serve: RunHub,
}
