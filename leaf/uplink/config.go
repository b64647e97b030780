package uplink

import (
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nkeys"

	"github.com/canopy-iot/canopy/internal/config"
	"github.com/canopy-iot/canopy/leaf/subject"
)

// Config is the link to the hub, the `uplink:` block of leaf.yaml. The
// link is off while URLs is empty. Every other field is optional; the
// default is written on each.
type Config struct {
	// URLs of the hub's leafnode listeners: nats-leaf://, nats://, tls://
	// (TLS required), ws:// or wss://. The hub's other nodes are learned
	// from the hub and used too.
	URLs []string `yaml:"urls"`
	// Name identifies the device to the hub (/leafz "name"); the hub drops
	// an older connection with the same name. Default: the device id (the
	// name in Credentials, else the leaf's server_name).
	Name string `yaml:"name"`

	// Credentials, at most one kind: a .creds file (user JWT and NKey
	// seed, for operator mode), an NKey seed file, a user and password,
	// or a token. Files are read at every connection attempt, so a
	// rotated file is picked up without a restart.
	Credentials  string `yaml:"credentials"`
	NKeySeedFile string `yaml:"nkey_seed_file"`
	User         string `yaml:"user"`
	Password     string `yaml:"password"`
	PasswordFile string `yaml:"password_file"`
	Token        string `yaml:"token"`
	TokenFile    string `yaml:"token_file"`

	// TLS to the hub. Default: TLS only when the URL is tls:// or wss://
	// or the hub requires it, verified against the system's CAs.
	TLS TLS `yaml:"tls"`
	// Proxy is an HTTP CONNECT proxy, http://[user:password@]host:port,
	// for networks that only let HTTPS out. Default: none.
	Proxy string `yaml:"proxy"`

	// Up limits what local publishes may go to the hub, and Down what
	// local subscriptions are announced to (so what may come down from)
	// the hub. Default: everything the credentials allow.
	Up   []string `yaml:"up"`
	Down []string `yaml:"down"`

	// ReconnectMin and ReconnectMax bound the wait between attempts, which
	// doubles after each failure, taken at random in its upper half.
	// ReconnectMax also bounds how long a restored hub waits for the leaf.
	// Default 250ms and 1s (nats-server's leaf retries every 1 s too).
	ReconnectMin config.Duration `yaml:"reconnect_min"`
	ReconnectMax config.Duration `yaml:"reconnect_max"`
	// PingInterval is how often the leaf pings the hub to notice a dead
	// link; MaxPingsOut unanswered pings close it. Default 20s and 3.
	PingInterval config.Duration `yaml:"ping_interval"`
	MaxPingsOut  int             `yaml:"max_pings_out"`
	// Isolate asks the hub not to send this leaf the interest of other
	// leaf nodes (device-to-device traffic). Default true.
	Isolate *bool `yaml:"isolate"`
}

// TLS configures the client side of TLS to the hub.
type TLS struct {
	// CAFile verifies the hub's certificate. Default: the system's CAs.
	CAFile string `yaml:"ca_file"`
	// CertFile and KeyFile are a client certificate, for hubs that
	// verify clients.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// ServerName is the name verified in the hub's certificate. Default:
	// the host of the configured URL (also for URLs the hub advertises,
	// which are usually bare IP addresses).
	ServerName string `yaml:"server_name"`
}

// Defaults.
const (
	DefaultReconnectMin = 250 * time.Millisecond
	DefaultReconnectMax = time.Second
	DefaultPingInterval = 20 * time.Second
	DefaultMaxPingsOut  = 3
)

// Enabled reports whether a hub is configured.
func (c Config) Enabled() bool { return len(c.URLs) > 0 }

// WithDefaults returns a copy of c with every unset field at its default;
// name is the device's id.
func (c Config) WithDefaults(name string) Config {
	if c.Name == "" {
		c.Name = name
	}
	if c.ReconnectMin == 0 {
		c.ReconnectMin = config.Duration(DefaultReconnectMin)
	}
	if c.ReconnectMax == 0 {
		c.ReconnectMax = config.Duration(DefaultReconnectMax)
	}
	if c.PingInterval == 0 {
		c.PingInterval = config.Duration(DefaultPingInterval)
	}
	if c.MaxPingsOut == 0 {
		c.MaxPingsOut = DefaultMaxPingsOut
	}
	if c.Isolate == nil {
		on := true
		c.Isolate = &on
	}
	return c
}

// Validate reports every problem at once, with paths relative to the
// uplink block.
func (c Config) Validate() error {
	var errs config.List
	for i, raw := range c.URLs {
		if _, err := parseURL(raw); err != nil {
			errs.Addf(fmt.Sprintf("urls[%d]", i), "%v", err)
		}
	}
	if !c.Enabled() {
		return errs.Err()
	}
	if strings.ContainsAny(c.Name, " \t\r\n") {
		errs.Addf("name", "must not contain whitespace")
	}
	kinds := 0
	for _, set := range []bool{c.Credentials != "", c.NKeySeedFile != "", c.User != "", c.Token != "" || c.TokenFile != ""} {
		if set {
			kinds++
		}
	}
	if kinds > 1 {
		errs.Addf("credentials", "set one of credentials, nkey_seed_file, user, token")
	}
	if c.Credentials != "" {
		if _, err := CredentialsName(c.Credentials); err != nil {
			errs.Addf("credentials", "%v", err)
		}
	}
	if c.NKeySeedFile != "" {
		if _, err := readSeed(c.NKeySeedFile); err != nil {
			errs.Addf("nkey_seed_file", "%v", err)
		}
	}
	if c.User != "" && c.Password == "" && c.PasswordFile == "" {
		errs.Addf("user", "needs password or password_file")
	}
	for _, f := range []struct{ field, file string }{
		{"password_file", c.PasswordFile}, {"token_file", c.TokenFile},
		{"tls.ca_file", c.TLS.CAFile}, {"tls.cert_file", c.TLS.CertFile}, {"tls.key_file", c.TLS.KeyFile},
	} {
		if f.file == "" {
			continue
		}
		if _, err := os.Stat(f.file); err != nil {
			errs.Addf(f.field, "cannot read %s: %v", f.file, unwrapPath(err))
		}
	}
	if (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
		errs.Addf("tls", "cert_file and key_file go together")
	}
	if c.Proxy != "" {
		if u, err := url.Parse(c.Proxy); err != nil || u.Scheme != "http" || u.Host == "" {
			errs.Addf("proxy", "want http://[user:password@]host:port")
		}
	}
	for i, s := range c.Up {
		if !subject.ValidSubscribe(s) {
			errs.Addf(fmt.Sprintf("up[%d]", i), "invalid subject %q", s)
		}
	}
	for i, s := range c.Down {
		if !subject.ValidSubscribe(s) {
			errs.Addf(fmt.Sprintf("down[%d]", i), "invalid subject %q", s)
		}
	}
	if c.ReconnectMax < c.ReconnectMin {
		errs.Addf("reconnect_max", "must not be below reconnect_min")
	}
	if c.MaxPingsOut < 1 {
		errs.Addf("max_pings_out", "must be at least 1")
	}
	return errs.Err()
}

func unwrapPath(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err
	}
	return err
}

// parseURL checks a hub URL and fills in the default port.
func parseURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("invalid URL %q (want e.g. nats-leaf://hub:7422)", raw)
	}
	port := map[string]string{"nats-leaf": "7422", "nats": "7422", "tls": "7422", "ws": "80", "wss": "443"}
	def, ok := port[u.Scheme]
	if !ok {
		return nil, fmt.Errorf("URL %q: scheme must be nats-leaf, nats, tls, ws or wss", raw)
	}
	if u.Port() == "" {
		u.Host += ":" + def
	}
	return u, nil
}

// readSeed reads an NKey user seed file.
func readSeed(file string) (nkeys.KeyPair, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("read seed %s: %w", file, unwrapPath(err))
	}
	kp, err := nkeys.ParseDecoratedNKey(b)
	if err != nil {
		return nil, fmt.Errorf("seed %s: %w", file, err)
	}
	if seed, err := kp.Seed(); err != nil || len(seed) == 0 || seed[1] != 'U' {
		return nil, fmt.Errorf("seed %s: not a user seed (want \"SU...\")", file)
	}
	return kp, nil
}

// readCreds reads a .creds file: the user JWT and its seed.
func readCreds(file string) (string, nkeys.KeyPair, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return "", nil, fmt.Errorf("read credentials %s: %w", file, unwrapPath(err))
	}
	token, err := nkeys.ParseDecoratedJWT(b)
	if err != nil || token == "" {
		return "", nil, fmt.Errorf("credentials %s: no user JWT found", file)
	}
	kp, err := nkeys.ParseDecoratedUserNKey(b)
	if err != nil {
		return "", nil, fmt.Errorf("credentials %s: %w", file, err)
	}
	return token, kp, nil
}

// CredentialsName returns the name claim of the user JWT in a .creds
// file: for a device enrolled with a Canopy hub, the device id the hub
// gave it ("" when the JWT has none). The JWT's own signature is checked;
// whether the hub trusts its issuer is the hub's business.
func CredentialsName(file string) (string, error) {
	token, kp, err := readCreds(file)
	if err != nil {
		return "", err
	}
	kp.Wipe() // only the JWT is needed here
	claims, err := jwt.DecodeUserClaims(token)
	if err != nil {
		return "", fmt.Errorf("credentials %s: not a user JWT: %w", file, err)
	}
	return claims.Name, nil
}
