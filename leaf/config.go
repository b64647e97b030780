package leaf

import (
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/canopy-iot/canopy/firmware/agent"
	"github.com/canopy-iot/canopy/internal/config"
	"github.com/canopy-iot/canopy/internal/heartbeat"
	"github.com/canopy-iot/canopy/internal/logging"
	"github.com/canopy-iot/canopy/leaf/downlink"
	"github.com/canopy-iot/canopy/leaf/gpio"
	"github.com/canopy-iot/canopy/leaf/health"
	"github.com/canopy-iot/canopy/leaf/natsd"
	"github.com/canopy-iot/canopy/leaf/stream"
	"github.com/canopy-iot/canopy/leaf/subject"
	"github.com/canopy-iot/canopy/leaf/uplink"
	"github.com/canopy-iot/canopy/mqtt"
)

// Config is canopy-leaf's configuration, read from leaf.yaml. Every field
// is optional; the default of each is written on it and applied by
// WithDefaults.
type Config struct {
	// Version of the file format; must be 1.
	Version int `yaml:"version"`
	// ServerName names this device to local clients, and to the hub
	// unless uplink.credentials names it (see DeviceID). Default: the
	// device id in uplink.credentials, else the host name.
	ServerName string `yaml:"server_name"`
	// DataDir holds the leaf's state. Default: ./canopy-leaf-data.
	DataDir string `yaml:"data_dir"`
	// LogLevel is one of trace, debug, info, warn, error. Default: info.
	LogLevel string `yaml:"log_level"`
	// NATS is the local NATS server for applications on the device.
	NATS natsd.Config `yaml:"nats"`
	// MQTT is the broker for sensors, bridged into the NATS subjects.
	// Default: on, at 127.0.0.1:1883.
	MQTT mqtt.Config `yaml:"mqtt"`
	// Uplink is the leafnode link to the hub. Default: none (the leaf
	// serves local clients only).
	Uplink uplink.Config `yaml:"uplink"`
	// Streams keep local messages durably and send them to the hub's
	// JetStream exactly once. Default: none.
	Streams []stream.Config `yaml:"streams"`
	// GPIO bridges the device's GPIO pins to hw.gpio.<pin> subjects.
	// Default: no pins.
	GPIO gpio.Config `yaml:"gpio"`
	// Health publishes the device's health document on a local subject.
	// Default: on, every 30s, on "health".
	Health health.Config `yaml:"health"`
	// Commands brings the device's commands (cmd.<device>.>) down from
	// the hub's command stream. Default: on when the uplink authenticates
	// with credentials (a Canopy hub in operator mode, which keeps a
	// command stream for every tenant), off otherwise.
	Commands downlink.Config `yaml:"commands"`
	// Heartbeat is how often the leaf reports itself (version, link,
	// stream backlog) to the devices bucket of its tenant, when its
	// uplink authenticates with credentials. Default 30s.
	Heartbeat config.Duration `yaml:"heartbeat"`
	// Firmware follows the device's desired firmware from the hub:
	// download, verify, stage, apply. Default: off.
	Firmware agent.Config `yaml:"firmware"`
	// Monitor serves /metrics (Prometheus) and /status (JSON, read by
	// `canopy-leaf status`). Default: on, at 127.0.0.1:8223.
	Monitor MonitorConfig `yaml:"monitor"`
}

// DefaultDataDir is where state goes when data_dir is not set.
const DefaultDataDir = "./canopy-leaf-data"

// WithDefaults returns a copy of c with every empty setting set to its
// default.
func (c Config) WithDefaults() Config {
	if c.Version == 0 {
		c.Version = config.CurrentVersion
	}
	// An enrolled device goes by the name the hub gave it; a file that
	// cannot be read is reported by Validate.
	id, _ := c.credentialsID()
	if c.ServerName == "" {
		if id != "" {
			c.ServerName = id
		} else if h, err := os.Hostname(); err == nil {
			c.ServerName = h
		}
	}
	if c.DataDir == "" {
		c.DataDir = DefaultDataDir
	}
	if c.LogLevel == "" {
		c.LogLevel = "info"
	}
	c.NATS = c.NATS.WithDefaults()
	c.MQTT = c.MQTT.WithDefaults()
	if id == "" {
		id = c.ServerName
	}
	c.Uplink = c.Uplink.WithDefaults(id) // the hub knows the device by its id
	streams := make([]stream.Config, len(c.Streams))
	for i, s := range c.Streams {
		streams[i] = s.WithDefaults()
	}
	c.Streams = streams
	c.GPIO = c.GPIO.WithDefaults()
	c.Health = c.Health.WithDefaults()
	if c.Commands.Enabled == nil {
		on := c.Uplink.Credentials != ""
		c.Commands.Enabled = &on
	}
	c.Commands = c.Commands.WithDefaults()
	if c.Heartbeat == 0 {
		c.Heartbeat = config.Duration(heartbeat.DefaultInterval)
	}
	c.Firmware = c.Firmware.WithDefaults(c.DataDir)
	c.Monitor = c.Monitor.WithDefaults()
	return c
}

// DeviceID is the device's id at the hub: the {device} of the streams'
// upstream subjects and Nats-Msg-Id, and of the health subject. With
// uplink.credentials it is the name in the credentials' user JWT, which
// the hub issued: the device id comes from its credentials, not from what
// the device claims. Without, it is server_name. Call it on a validated
// configuration; the error is the credentials file's.
func (c Config) DeviceID() (string, error) {
	if c.Uplink.Credentials == "" {
		return c.ServerName, nil
	}
	id, err := c.credentialsID()
	if err != nil {
		return "", fmt.Errorf("uplink.credentials: %w", err)
	}
	if id == "" {
		return "", fmt.Errorf("uplink.credentials %s: the user JWT has no name: the device id comes from it", c.Uplink.Credentials)
	}
	return id, nil
}

// credentialsID is the name in uplink.credentials, "" without that file.
func (c Config) credentialsID() (string, error) {
	if c.Uplink.Credentials == "" {
		return "", nil
	}
	return uplink.CredentialsName(c.Uplink.Credentials)
}

// Validate reports every problem at once, each naming its setting.
func (c Config) Validate() error {
	var errs config.List
	if strings.ContainsAny(c.ServerName, " \t\r\n") {
		errs.Addf("server_name", "must not contain whitespace")
	}
	if !slices.Contains(logging.Levels, c.LogLevel) {
		errs.Addf("log_level", "unknown level %q (want one of %s)", c.LogLevel, strings.Join(logging.Levels, ", "))
	}
	if c.DataDir == "" {
		errs.Addf("data_dir", "must not be empty")
	}
	errs.Add(config.Nest("nats", c.NATS.Validate()))
	errs.Add(config.Nest("mqtt", c.MQTT.Validate()))
	errs.Add(config.Nest("uplink", c.Uplink.Validate()))
	if c.Uplink.Credentials != "" {
		id, err := c.credentialsID()
		switch {
		case err != nil:
			if !c.Uplink.Enabled() { // else the uplink's checks said so
				errs.Addf("uplink.credentials", "%v", err)
			}
		case id == "":
			errs.Addf("uplink.credentials", "the user JWT has no name: the device id comes from it")
		case !subject.ValidPublish(id) || strings.Contains(id, "."):
			errs.Addf("uplink.credentials", "the device id %q (the user JWT's name) cannot be a subject token", id)
		}
	}
	errs.Add(config.Nest("streams", stream.Validate(c.Streams)))
	errs.Add(config.Nest("gpio", c.GPIO.Validate()))
	errs.Add(config.Nest("health", c.Health.Validate()))
	errs.Add(config.Nest("commands", c.Commands.Validate()))
	errs.Add(config.Nest("firmware", c.Firmware.Validate()))
	errs.Add(config.Nest("monitor", c.Monitor.Validate()))
	if c.Firmware.On() && !c.Uplink.Enabled() {
		errs.Addf("firmware.enabled", "needs an uplink: firmware comes from the hub")
	}
	return errs.Err()
}
