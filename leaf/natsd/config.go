package natsd

import (
	"time"

	"github.com/canopy-iot/canopy/internal/config"
	"github.com/canopy-iot/canopy/leaf/auth"
	"github.com/canopy-iot/canopy/leaf/natsproto"
)

// Config is the local NATS server's configuration, the `nats:` block of
// leaf.yaml. Every field is optional; the default is written on each and
// applied by WithDefaults. The limits default to nats-server's.
type Config struct {
	// Listen is where local clients connect. Default 127.0.0.1:4222; port
	// 0 asks the kernel for a free port.
	Listen string `yaml:"listen"`
	// MaxPayload bounds a message (header included). Default 1MiB.
	MaxPayload config.Size `yaml:"max_payload"`
	// MaxControlLine bounds a protocol line (CONNECT JSON included).
	// Default 4096 bytes.
	MaxControlLine config.Size `yaml:"max_control_line"`
	// MaxPending bounds the bytes waiting to be written to one client; a
	// client over it is a slow consumer and is disconnected. Default 64MiB.
	MaxPending config.Size `yaml:"max_pending"`
	// WriteDeadline is how long one write to a client may block before the
	// client is disconnected as a slow consumer. Default 10s.
	WriteDeadline config.Duration `yaml:"write_deadline"`
	// PingInterval is how often the server pings an idle client. Default 2m.
	PingInterval config.Duration `yaml:"ping_interval"`
	// MaxPingsOut is how many pings may go unanswered before the client is
	// disconnected as stale. Default 2.
	MaxPingsOut int `yaml:"max_pings_out"`
	// MaxConnections bounds concurrent clients. Default 65536.
	MaxConnections int `yaml:"max_connections"`
	// MaxSubscriptions bounds one client's subscriptions; 0 means no limit.
	MaxSubscriptions int `yaml:"max_subscriptions"`
	// AuthTimeout is how long a client has to send CONNECT when
	// authentication is required. Default 2s.
	AuthTimeout config.Duration `yaml:"auth_timeout"`
	// Authorization configures client authentication and permissions.
	// Default: none, any local client may connect.
	Authorization auth.Config `yaml:"authorization"`
}

// Defaults, as in nats-server.
const (
	DefaultListen         = "127.0.0.1:4222"
	DefaultMaxPayload     = natsproto.DefaultMaxPayload
	DefaultMaxControlLine = natsproto.DefaultMaxControlLine
	DefaultMaxPending     = 64 << 20
	DefaultWriteDeadline  = 10 * time.Second
	DefaultPingInterval   = 2 * time.Minute
	DefaultMaxPingsOut    = 2
	DefaultMaxConnections = 64 << 10
	DefaultAuthTimeout    = 2 * time.Second
)

// WithDefaults returns a copy of c with every unset field at its default.
func (c Config) WithDefaults() Config {
	if c.Listen == "" {
		c.Listen = DefaultListen
	}
	if c.MaxPayload == 0 {
		c.MaxPayload = DefaultMaxPayload
	}
	if c.MaxControlLine == 0 {
		c.MaxControlLine = DefaultMaxControlLine
	}
	if c.MaxPending == 0 {
		c.MaxPending = DefaultMaxPending
	}
	if c.WriteDeadline == 0 {
		c.WriteDeadline = config.Duration(DefaultWriteDeadline)
	}
	if c.PingInterval == 0 {
		c.PingInterval = config.Duration(DefaultPingInterval)
	}
	if c.MaxPingsOut == 0 {
		c.MaxPingsOut = DefaultMaxPingsOut
	}
	if c.MaxConnections == 0 {
		c.MaxConnections = DefaultMaxConnections
	}
	if c.AuthTimeout == 0 {
		c.AuthTimeout = config.Duration(DefaultAuthTimeout)
	}
	return c
}

// Validate reports every problem at once, with paths relative to this
// block ("listen", "authorization.users[0].nkey").
func (c Config) Validate() error {
	var errs config.List
	if _, _, err := config.SplitListen(c.Listen); err != nil {
		errs.Addf("listen", "%v", err)
	}
	switch {
	case c.MaxPayload < 1:
		errs.Addf("max_payload", "must be at least 1 byte")
	case c.MaxPayload > 64<<20:
		errs.Addf("max_payload", "%d bytes is over the 64MiB nats-server allows", c.MaxPayload)
	case c.MaxPending < c.MaxPayload:
		errs.Addf("max_pending", "must be at least max_payload (%d bytes)", c.MaxPayload)
	}
	if c.MaxControlLine < 256 || c.MaxControlLine > 1<<20 {
		errs.Addf("max_control_line", "must be between 256 bytes and 1MiB")
	}
	if c.MaxPingsOut < 1 {
		errs.Addf("max_pings_out", "must be at least 1")
	}
	if c.MaxConnections < 1 {
		errs.Addf("max_connections", "must be at least 1")
	}
	if c.MaxSubscriptions < 0 {
		errs.Addf("max_subscriptions", "must not be negative (0 means no limit)")
	}
	errs.Add(c.Authorization.Validate())
	return errs.Err()
}
