package mqtt

import (
	"fmt"
	"strings"
	"time"

	"github.com/canopy-iot/canopy/internal/config"
	"github.com/canopy-iot/canopy/mqtt/topic"
)

// Config is the MQTT broker's configuration, the `mqtt:` block of
// leaf.yaml. Every field is optional; the default is written on each and
// applied by WithDefaults.
type Config struct {
	// Enabled turns the broker on. Default true.
	Enabled *bool `yaml:"enabled"`
	// Listen is the plain TCP listener. Default 127.0.0.1:1883; "" after
	// defaults never happens, set enabled: false to turn MQTT off. Port 0
	// asks the kernel for a free port.
	Listen string `yaml:"listen"`
	// TLS is an optional TLS listener (8883 by convention).
	TLS TLS `yaml:"tls"`
	// WebSocket is an optional WebSocket listener (MQTT over ws://, or
	// wss:// with a certificate).
	WebSocket WebSocket `yaml:"websocket"`
	// Anonymous says who may connect without a user name: "loopback" (the
	// default: clients on this machine only), "always" or "never".
	Anonymous string `yaml:"anonymous"`
	// UsersFile lists the users allowed to log in, one "name:bcrypt-hash"
	// per line (as written by `htpasswd -nB name`). Default: none.
	UsersFile string `yaml:"users_file"`
	// ACL confines users to topics. Empty (the default): every client may
	// publish and subscribe to every topic. Otherwise a client may only do
	// what an entry for its user (or "anonymous") allows.
	ACL []ACLEntry `yaml:"acl"`
	// MaxPacketSize bounds one MQTT packet. Default 1MiB, the size of a
	// NATS message, so that every accepted publish can be bridged.
	MaxPacketSize config.Size `yaml:"max_packet_size"`
	// MaxPending bounds the messages queued for one client's connection;
	// a message that finds the queue full is dropped for that client,
	// whatever its QoS (mochi's behaviour), and counted. Default 1024.
	MaxPending int `yaml:"max_pending"`
	// MaxInflight bounds the QoS 1/2 messages held for one client:
	// unacknowledged, waiting for its send window, or waiting while a
	// persistent session is offline. Default 8192.
	MaxInflight int `yaml:"max_inflight"`
	// MaxSessionExpiry caps the session expiry a client may ask for.
	// Default 24h.
	MaxSessionExpiry config.Duration `yaml:"max_session_expiry"`
	// MaxMessageExpiry caps how long a message may wait for an offline
	// subscriber. Default 24h.
	MaxMessageExpiry config.Duration `yaml:"max_message_expiry"`
}

// TLS configures the TLS listener.
type TLS struct {
	// Listen turns the listener on, e.g. 0.0.0.0:8883.
	Listen string `yaml:"listen"`
	// CertFile and KeyFile are the broker's certificate and key (PEM).
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// ClientCAFile verifies client certificates. With it, a client that
	// presents a valid certificate is logged in as the certificate's
	// common name without a password.
	ClientCAFile string `yaml:"client_ca_file"`
	// RequireClientCert refuses TLS clients without a valid certificate.
	RequireClientCert bool `yaml:"require_client_cert"`
}

// WebSocket configures the WebSocket listener.
type WebSocket struct {
	// Listen turns the listener on, e.g. 0.0.0.0:8080.
	Listen string `yaml:"listen"`
	// CertFile and KeyFile serve wss:// instead of ws://.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
}

// ACLEntry is what one user may do.
type ACLEntry struct {
	// User is the user name, or "anonymous" for clients without one.
	User string `yaml:"user"`
	// Publish and Subscribe are MQTT topic filters (+ and # allowed).
	Publish   []string `yaml:"publish"`
	Subscribe []string `yaml:"subscribe"`
}

// Anonymous policies.
const (
	AnonymousLoopback = "loopback"
	AnonymousAlways   = "always"
	AnonymousNever    = "never"
)

// AnonymousUser names clients without a user name in ACL entries.
const AnonymousUser = "anonymous"

// Defaults.
const (
	DefaultListen           = "127.0.0.1:1883"
	DefaultMaxPacketSize    = 1 << 20
	DefaultMaxPending       = 1024
	DefaultMaxInflight      = 8192
	DefaultMaxSessionExpiry = 24 * time.Hour
	DefaultMaxMessageExpiry = 24 * time.Hour
)

// On reports whether the broker runs.
func (c Config) On() bool { return c.Enabled == nil || *c.Enabled }

// WithDefaults returns a copy of c with every unset field at its default.
func (c Config) WithDefaults() Config {
	if c.Listen == "" {
		c.Listen = DefaultListen
	}
	if c.Anonymous == "" {
		c.Anonymous = AnonymousLoopback
	}
	if c.MaxPacketSize == 0 {
		c.MaxPacketSize = DefaultMaxPacketSize
	}
	if c.MaxPending == 0 {
		c.MaxPending = DefaultMaxPending
	}
	if c.MaxInflight == 0 {
		c.MaxInflight = DefaultMaxInflight
	}
	if c.MaxSessionExpiry == 0 {
		c.MaxSessionExpiry = config.Duration(DefaultMaxSessionExpiry)
	}
	if c.MaxMessageExpiry == 0 {
		c.MaxMessageExpiry = config.Duration(DefaultMaxMessageExpiry)
	}
	return c
}

// Validate reports every problem at once, with paths relative to this
// block ("tls.cert_file", "acl[0].publish[1]").
func (c Config) Validate() error {
	var errs config.List
	if !c.On() {
		return nil
	}
	if err := checkListenAddr(c.Listen); err != nil {
		errs.Addf("listen", "%v", err)
	}
	if c.TLS.Listen != "" {
		if err := checkListenAddr(c.TLS.Listen); err != nil {
			errs.Addf("tls.listen", "%v", err)
		}
		if c.TLS.CertFile == "" || c.TLS.KeyFile == "" {
			errs.Addf("tls", "a TLS listener needs cert_file and key_file")
		}
	}
	if c.TLS.RequireClientCert && c.TLS.ClientCAFile == "" {
		errs.Addf("tls.require_client_cert", "needs client_ca_file to verify certificates with")
	}
	if c.WebSocket.Listen != "" {
		if err := checkListenAddr(c.WebSocket.Listen); err != nil {
			errs.Addf("websocket.listen", "%v", err)
		}
		if (c.WebSocket.CertFile == "") != (c.WebSocket.KeyFile == "") {
			errs.Addf("websocket", "cert_file and key_file go together")
		}
	}
	switch c.Anonymous {
	case AnonymousLoopback, AnonymousAlways, AnonymousNever:
	default:
		errs.Addf("anonymous", "unknown policy %q (want loopback, always or never)", c.Anonymous)
	}
	if c.Anonymous == AnonymousNever && c.UsersFile == "" && c.TLS.ClientCAFile == "" {
		errs.Addf("anonymous", "never, but no users_file or tls.client_ca_file: nobody could connect")
	}
	for i, e := range c.ACL {
		p := fmt.Sprintf("acl[%d]", i)
		if e.User == "" {
			errs.Addf(p+".user", "must not be empty (use %q for clients without a user name)", AnonymousUser)
		}
		for j, f := range e.Publish {
			if err := checkFilter(f); err != nil {
				errs.Addf(fmt.Sprintf("%s.publish[%d]", p, j), "%v", err)
			}
		}
		for j, f := range e.Subscribe {
			if err := checkFilter(f); err != nil {
				errs.Addf(fmt.Sprintf("%s.subscribe[%d]", p, j), "%v", err)
			}
		}
	}
	if c.MaxPacketSize < 64 || c.MaxPacketSize > 256<<20 {
		errs.Addf("max_packet_size", "must be between 64 bytes and 256MiB (MQTT's limit)")
	}
	if c.MaxPending < 1 {
		errs.Addf("max_pending", "must be at least 1")
	}
	if c.MaxInflight < 1 || c.MaxInflight > 65535 {
		errs.Addf("max_inflight", "must be between 1 and 65535 (MQTT packet ids)")
	}
	if c.MaxSessionExpiry < 0 {
		errs.Addf("max_session_expiry", "must not be negative")
	}
	if c.MaxMessageExpiry < 0 {
		errs.Addf("max_message_expiry", "must not be negative")
	}
	return errs.Err()
}

// checkFilter accepts an MQTT topic filter that NATS can carry.
func checkFilter(f string) error {
	if strings.HasPrefix(f, sharePrefix) {
		return fmt.Errorf("%q: ACL filters match topics; write the filter without $share/<group>/", f)
	}
	_, err := topic.Subjects(f)
	return err
}

func checkListenAddr(addr string) error {
	_, _, err := config.SplitListen(addr)
	return err
}
