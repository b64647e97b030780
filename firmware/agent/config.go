package agent

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nkeys"

	"github.com/canopy-iot/canopy/firmware"
	"github.com/canopy-iot/canopy/internal/config"
)

// Config is the leaf's firmware: block. Every field is optional; the
// default of each is written on it and applied by WithDefaults.
type Config struct {
	// Enabled turns the agent on. Default: false.
	Enabled *bool `yaml:"enabled"`
	// TrustedKeys are the nkeys public keys whose signatures on a
	// manifest the device accepts: the tenant's firmware key (logged as
	// firmware_key by `canopy-hub tenant add`). Required when enabled.
	TrustedKeys []string `yaml:"trusted_keys"`
	// Dir holds downloads, staged and installed artifacts. Default:
	// <data_dir>/firmware.
	Dir string `yaml:"dir"`
	// RateLimit bounds the download rate in bytes per second, so that a
	// rollout leaves room for telemetry on a thin link. Default: 0,
	// unlimited.
	RateLimit config.Size `yaml:"rate_limit"`
	// Poll is how often the device reads its desired firmware besides at
	// start and at each connection to the hub (a device cannot watch its
	// key: the hub refuses KV subjects on leaf connections), so a rollout
	// reaches it within Poll. At least 1s. Default: 30s.
	Poll config.Duration `yaml:"poll"`
	// Installers say how to apply each firmware, keyed by the firmware's
	// name. A Desired naming another firmware fails. Default: none.
	Installers map[string]InstallerConfig `yaml:"installers"`
}

// InstallerConfig is how one firmware is applied.
type InstallerConfig struct {
	// Type is "file" (place the artifact at Path and run Hook) or "self"
	// (replace canopy-leaf itself). Default: file.
	Type string `yaml:"type"`
	// Path is where a file installer places the artifact; the one it
	// replaces is kept as Path + ".previous". Required for type file.
	Path string `yaml:"path"`
	// Hook is a command (argv, no shell). For a file installer it runs
	// after the artifact is placed, with CANOPY_FW_NAME,
	// CANOPY_FW_VERSION and CANOPY_FW_PATH in its environment; a non-zero
	// exit fails the update and puts the previous artifact back. For a
	// self installer it is the check the new canopy-leaf must pass to be
	// kept (see SelfInstaller.Check). Default: none.
	Hook []string `yaml:"hook"`
	// HTTPListen, when set, serves the installed artifact and its signed
	// manifest on the LAN at GET /firmware/<name> and
	// /firmware/<name>/manifest, for sensors that update themselves from
	// the device. Default: off.
	HTTPListen string `yaml:"http_listen"`
	// ServeLocal offers the installed artifact and its signed manifest to
	// the device's own clients, NATS and MQTT sensors alike, on
	// firmware.<name>.… (MQTT firmware/<name>/…; see the leaf). Default:
	// off.
	ServeLocal bool `yaml:"serve_local"`
}

// Installer types.
const (
	TypeFile = "file"
	TypeSelf = "self"
)

// On reports whether the agent is enabled.
func (c Config) On() bool { return c.Enabled != nil && *c.Enabled }

// WithDefaults returns a copy of c with every empty setting set to its
// default; dataDir is the leaf's data directory.
func (c Config) WithDefaults(dataDir string) Config {
	if c.Enabled == nil {
		c.Enabled = new(bool)
	}
	if c.Dir == "" {
		c.Dir = filepath.Join(dataDir, defaultSubdir)
	}
	if c.Poll == 0 {
		c.Poll = config.Duration(DefaultPoll)
	}
	if c.Installers != nil {
		ins := make(map[string]InstallerConfig, len(c.Installers))
		for name, ic := range c.Installers {
			if ic.Type == "" {
				ic.Type = TypeFile
			}
			ins[name] = ic
		}
		c.Installers = ins
	}
	return c
}

// Validate reports every problem at once, each naming its setting
// relative to the firmware block ("installers.sensor-fw.type"). What is
// set is checked even when the agent is off; what is required only when
// it is on.
func (c Config) Validate() error {
	var errs config.List
	if c.On() && len(c.TrustedKeys) == 0 {
		errs.Addf("trusted_keys", "required when firmware is enabled: the public keys whose signatures the device accepts")
	}
	for i, k := range c.TrustedKeys {
		if _, err := nkeys.FromPublicKey(k); err != nil {
			errs.Addf(fmt.Sprintf("trusted_keys[%d]", i), "%q is not an nkeys public key: %v", k, err)
		}
	}
	if c.On() && c.Dir == "" {
		errs.Addf("dir", "must not be empty")
	}
	if c.Poll != 0 && c.Poll.Std() < time.Second {
		errs.Addf("poll", "%s is too often: at least 1s", c.Poll.Std())
	}
	if c.RateLimit < 0 {
		errs.Addf("rate_limit", "must not be negative")
	}
	names := make([]string, 0, len(c.Installers))
	for name := range c.Installers {
		names = append(names, name)
	}
	slices.Sort(names) // errors in a stable order
	selfs := 0
	for _, name := range names {
		ic := c.Installers[name]
		path := "installers." + name
		if err := firmware.CheckName("firmware name", name); err != nil {
			errs.Addf(path, "%s", strings.TrimPrefix(err.Error(), firmware.ErrInvalidManifest.Error()+": "))
		}
		switch ic.Type {
		case TypeFile, "":
			if ic.Path == "" {
				errs.Addf(path+".path", "required for a file installer: where the artifact goes")
			} else if strings.HasSuffix(ic.Path, string(filepath.Separator)) {
				errs.Addf(path+".path", "%q names a directory: want the artifact's file path", ic.Path)
			}
		case TypeSelf:
			selfs++
			if selfs > 1 {
				errs.Addf(path+".type", "only one firmware may replace canopy-leaf itself")
			}
			if ic.Path != "" {
				errs.Addf(path+".path", "not used by a self installer: canopy-leaf replaces its own binary")
			}
		default:
			errs.Addf(path+".type", "unknown installer type %q (want %s or %s)", ic.Type, TypeFile, TypeSelf)
		}
		if len(ic.Hook) > 0 && strings.TrimSpace(ic.Hook[0]) == "" {
			errs.Addf(path+".hook", "the first element must name the command")
		}
		if ic.HTTPListen != "" {
			if _, _, err := config.SplitListen(ic.HTTPListen); err != nil {
				errs.Addf(path+".http_listen", "%v", err)
			}
			if ic.Type == TypeSelf {
				errs.Addf(path+".http_listen", "not served for a self installer: only file artifacts are served to sensors")
			}
		}
	}
	return errs.Err()
}
