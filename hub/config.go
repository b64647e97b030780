package hub

import (
	"fmt"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/nats-io/nkeys"

	"github.com/canopy-iot/canopy/internal/config"
	"github.com/canopy-iot/canopy/internal/logging"
)

// Config is the hub's configuration, read from hub.yaml. Every field is
// optional; the default of each is written on it and applied by
// WithDefaults. Listen addresses are "host:port"; port 0 asks the kernel for
// a free port.
type Config struct {
	// Version of the file format; must be 1.
	Version int `yaml:"version"`
	// ServerName identifies this node in clusters and monitoring.
	// Default: nats-server's generated server ID. Required for clustered
	// JetStream.
	ServerName string `yaml:"server_name"`
	// Listen is where NATS clients connect. Default: 127.0.0.1:4222.
	Listen string `yaml:"listen"`
	// HTTPListen serves nats-server's monitoring endpoints (/varz, /connz,
	// /leafz, /jsz, /healthz). Default: 127.0.0.1:8222; "off" disables it.
	HTTPListen string `yaml:"http_listen"`
	// LogLevel is one of trace, debug, info, warn, error. Default: info.
	LogLevel string `yaml:"log_level"`
	// LameDuck, when set, makes shutdown first stop accepting clients and
	// then spread their disconnection over this duration, so a rolling
	// restart does not reconnect every client at once. Default: 0 (off).
	LameDuck config.Duration `yaml:"lame_duck"`
	// TLS for client connections. Default: none.
	TLS *TLS `yaml:"tls"`
	// NoAuthUser names a user (of Accounts) that clients connecting without
	// credentials are bound to. Default: none, clients must authenticate
	// once any account has users.
	NoAuthUser string `yaml:"no_auth_user"`

	Cluster   Cluster            `yaml:"cluster"`
	Gateways  Gateways           `yaml:"gateways"`
	JetStream JetStream          `yaml:"jetstream"`
	LeafNodes LeafNodes          `yaml:"leafnodes"`
	Accounts  map[string]Account `yaml:"accounts"`
	// Operator turns on operator mode (tenants, devices, enrollment); it
	// replaces Accounts.
	Operator Operator `yaml:"operator"`
	// Dashboard is the hub's console: the fleet dashboard, its API and
	// the Prometheus metrics.
	Dashboard Dashboard `yaml:"dashboard"`

	// NATSConfig is the path of a nats-server configuration file read first
	// by nats-server's own parser, for settings Canopy does not model. The
	// settings of this file are applied on top of it.
	NATSConfig string `yaml:"nats_config"`
}

// Cluster joins hubs into one cluster over routes.
type Cluster struct {
	// Name of the cluster; required when Listen is set.
	Name string `yaml:"name"`
	// Listen for routes from other nodes. Default: "" (not clustered).
	Listen string `yaml:"listen"`
	// Routes are URLs of other nodes (nats://host:6222). A node may list
	// itself: nats-server ignores the route to itself.
	Routes []string `yaml:"routes"`
	// TLS for routes. Default: none.
	TLS *TLS `yaml:"tls"`
}

// Gateways join clusters into a supercluster.
type Gateways struct {
	// Name of this cluster in the supercluster; required when Listen is
	// set, and equal to cluster.name when both are set.
	Name string `yaml:"name"`
	// Listen for gateway connections. Default: "" (no gateways).
	Listen string `yaml:"listen"`
	// Remotes maps other clusters' names to their gateway URLs.
	Remotes map[string][]string `yaml:"remotes"`
	// TLS for gateways. Default: none.
	TLS *TLS `yaml:"tls"`
}

// JetStream configures persistence.
type JetStream struct {
	// Enabled turns JetStream on. Default: true.
	Enabled *bool `yaml:"enabled"`
	// StoreDir holds the streams. Default: ./canopy-data.
	StoreDir string `yaml:"store_dir"`
	// MaxMemory and MaxFile cap memory and file storage. Default: 0, which
	// lets nats-server pick (75% of RAM, 1 TB or what the disk offers).
	MaxMemory config.Size `yaml:"max_memory"`
	MaxFile   config.Size `yaml:"max_file"`
	// Domain isolates this JetStream from a supercluster's or a hub's.
	// Default: none.
	Domain string `yaml:"domain"`
}

// LeafNodes accepts devices and other leaf nodes.
type LeafNodes struct {
	// Listen for leafnode connections. Default: 127.0.0.1:7422; "off"
	// disables it.
	Listen string `yaml:"listen"`
	// TLS for leafnode connections. Default: none.
	TLS *TLS `yaml:"tls"`
	// NoAdvertise keeps the nodes' own leafnode addresses from devices,
	// which otherwise learn them and fail over to them: set it when
	// devices must reach the hub through a load balancer or a proxy only.
	// Default: false.
	NoAdvertise bool `yaml:"no_advertise"`
}

// TLS configures one listener's certificates.
type TLS struct {
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// CAFile verifies peers' certificates (and, for routes, gateways and
	// outgoing connections, the servers dialled).
	CAFile string `yaml:"ca_file"`
	// Verify requires peers to present a certificate signed by CAFile.
	Verify bool `yaml:"verify"`
}

// Account is a tenant: its users see only the account's subjects.
type Account struct {
	// JetStream enables JetStream for the account with no limits beyond
	// the server's. Default: false.
	JetStream bool   `yaml:"jetstream"`
	Users     []User `yaml:"users"`
}

// User authenticates a client or a leaf node and binds it to the account.
// Either NKey, or User with Password, is set.
type User struct {
	// NKey is the user's public key ("U..."); the client proves it holds
	// the seed by signing the server's nonce.
	NKey string `yaml:"nkey"`
	User string `yaml:"user"`
	// Password may be a bcrypt hash ("$2a$..."), which is recommended.
	Password string `yaml:"password"`
	// Publish and Subscribe, when set, are the only subjects the user may
	// publish to or subscribe to.
	Publish   []string `yaml:"publish"`
	Subscribe []string `yaml:"subscribe"`
}

// Defaults used for settings left empty.
const (
	DefaultListen          = "127.0.0.1:4222"
	DefaultHTTPListen      = "127.0.0.1:8222"
	DefaultLeafNodesListen = "127.0.0.1:7422"
	DefaultStoreDir        = "./canopy-data"
	DefaultLogLevel        = "info"
	// Off disables a listener that is on by default.
	Off = "off"
)

// WithDefaults returns a copy of c with every empty setting set to its
// default.
func (c Config) WithDefaults() Config {
	if c.Version == 0 {
		c.Version = config.CurrentVersion
	}
	if c.Listen == "" {
		c.Listen = DefaultListen
	}
	if c.HTTPListen == "" {
		c.HTTPListen = DefaultHTTPListen
	}
	if c.LogLevel == "" {
		c.LogLevel = DefaultLogLevel
	}
	if c.LeafNodes.Listen == "" {
		c.LeafNodes.Listen = DefaultLeafNodesListen
	}
	if c.JetStream.Enabled == nil {
		on := true
		c.JetStream.Enabled = &on
	}
	if c.JetStream.StoreDir == "" {
		c.JetStream.StoreDir = DefaultStoreDir
	}
	return c.operatorDefaults().dashboardDefaults()
}

// Validate reports every problem in c at once, each as a *config.Error
// naming the setting. It reads the TLS files it names, so a missing or
// unreadable certificate is caught before the server starts.
func (c Config) Validate() error {
	var errs config.List
	checkListen(&errs, "listen", c.Listen, false)
	checkListen(&errs, "http_listen", c.HTTPListen, true)
	checkListen(&errs, "leafnodes.listen", c.LeafNodes.Listen, true)
	if c.Cluster.Listen != "" {
		checkListen(&errs, "cluster.listen", c.Cluster.Listen, false)
	}
	if c.Gateways.Listen != "" {
		checkListen(&errs, "gateways.listen", c.Gateways.Listen, false)
	}
	if !slices.Contains(logging.Levels, c.LogLevel) {
		errs.Addf("log_level", "unknown level %q (want one of %s)", c.LogLevel, strings.Join(logging.Levels, ", "))
	}
	if strings.ContainsAny(c.ServerName, " \t\r\n") {
		errs.Addf("server_name", "must not contain whitespace")
	}
	checkTLS(&errs, "tls", c.TLS)
	c.validateCluster(&errs)
	c.validateGateways(&errs)
	c.validateJetStream(&errs)
	checkTLS(&errs, "leafnodes.tls", c.LeafNodes.TLS)
	c.validateAccounts(&errs)
	c.validateOperator(&errs)
	c.validateDashboard(&errs)
	if c.NATSConfig != "" {
		checkReadable(&errs, "nats_config", c.NATSConfig)
	}
	return errs.Err()
}

func (c Config) validateCluster(errs *config.List) {
	cl := c.Cluster
	if cl.Listen == "" {
		if cl.Name != "" || len(cl.Routes) > 0 || cl.TLS != nil {
			errs.Addf("cluster.listen", "required when other cluster settings are set")
		}
		return
	}
	if cl.Name == "" {
		errs.Addf("cluster.name", "required when cluster.listen is set")
	}
	checkName(errs, "cluster.name", cl.Name)
	for i, r := range cl.Routes {
		checkURL(errs, fmt.Sprintf("cluster.routes[%d]", i), r, "nats", "nats-route", "tls")
	}
	checkTLS(errs, "cluster.tls", cl.TLS)
}

func (c Config) validateGateways(errs *config.List) {
	gw := c.Gateways
	if gw.Listen == "" {
		if gw.Name != "" || len(gw.Remotes) > 0 || gw.TLS != nil {
			errs.Addf("gateways.listen", "required when other gateway settings are set")
		}
		return
	}
	switch {
	case gw.Name == "":
		errs.Addf("gateways.name", "required when gateways.listen is set")
	case c.Cluster.Name != "" && gw.Name != c.Cluster.Name:
		errs.Addf("gateways.name", "%q differs from cluster.name %q: a cluster has one name in the supercluster", gw.Name, c.Cluster.Name)
	}
	checkName(errs, "gateways.name", gw.Name)
	for _, name := range sortedKeys(gw.Remotes) {
		path := "gateways.remotes." + name
		checkName(errs, path, name)
		if len(gw.Remotes[name]) == 0 {
			errs.Addf(path, "needs at least one URL")
		}
		for i, u := range gw.Remotes[name] {
			checkURL(errs, fmt.Sprintf("%s[%d]", path, i), u, "nats", "tls")
		}
	}
	checkTLS(errs, "gateways.tls", gw.TLS)
}

func (c Config) validateJetStream(errs *config.List) {
	js := c.JetStream
	if js.Domain != "" {
		checkName(errs, "jetstream.domain", js.Domain)
		if strings.ContainsAny(js.Domain, ".*>") {
			errs.Addf("jetstream.domain", "must not contain '.', '*' or '>'")
		}
	}
	if js.Enabled != nil && *js.Enabled && c.Cluster.Listen != "" && c.ServerName == "" {
		errs.Addf("server_name", "required for clustered JetStream (each node needs a stable name)")
	}
}

func (c Config) validateAccounts(errs *config.List) {
	users := map[string]string{} // user name or nkey → where first seen
	for _, name := range sortedKeys(c.Accounts) {
		path := "accounts." + name
		checkName(errs, path, name)
		if name == "$G" || name == "$SYS" {
			errs.Addf(path, "%q is reserved by nats-server", name)
		}
		for i, u := range c.Accounts[name].Users {
			up := fmt.Sprintf("%s.users[%d]", path, i)
			id := u.NKey
			switch {
			case u.NKey != "" && (u.User != "" || u.Password != ""):
				errs.Addf(up, "set either nkey, or user and password, not both")
			case u.NKey != "":
				if !nkeys.IsValidPublicUserKey(u.NKey) {
					errs.Addf(up+".nkey", "not a user public key (want 56 characters starting with \"U\")")
				}
			case u.User == "":
				errs.Addf(up, "needs nkey, or user and password")
			case u.Password == "":
				errs.Addf(up+".password", "required with user")
			default:
				id = u.User
			}
			if prev, dup := users[id]; dup && id != "" {
				errs.Addf(up, "same user as %s", prev)
			} else {
				users[id] = up
			}
			for j, s := range u.Publish {
				checkSubjectFilter(errs, fmt.Sprintf("%s.publish[%d]", up, j), s)
			}
			for j, s := range u.Subscribe {
				checkSubjectFilter(errs, fmt.Sprintf("%s.subscribe[%d]", up, j), s)
			}
		}
	}
	if c.NoAuthUser != "" {
		if _, ok := users[c.NoAuthUser]; !ok {
			errs.Addf("no_auth_user", "%q is not a user of any account", c.NoAuthUser)
		}
	}
}

// checkListen checks a listen address, which may be "off" where canBeOff.
func checkListen(errs *config.List, path, addr string, canBeOff bool) {
	if canBeOff && addr == Off {
		return
	}
	if _, _, err := config.SplitListen(addr); err != nil {
		errs.Addf(path, "%v", err)
	}
}

func checkURL(errs *config.List, path, raw string, schemes ...string) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		errs.Addf(path, "invalid URL %q (want e.g. nats://host:port)", raw)
		return
	}
	if !slices.Contains(schemes, u.Scheme) {
		errs.Addf(path, "URL %q: scheme must be one of %s", raw, strings.Join(schemes, ", "))
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			errs.Addf(path, "URL %q: port %q out of range (1-65535)", raw, p)
		}
	}
}

func checkTLS(errs *config.List, path string, t *TLS) {
	if t == nil {
		return
	}
	if (t.CertFile == "") != (t.KeyFile == "") {
		errs.Addf(path, "cert_file and key_file go together")
	}
	if t.Verify && t.CAFile == "" {
		errs.Addf(path+".ca_file", "required when verify is true")
	}
	for _, f := range []struct{ field, file string }{{"cert_file", t.CertFile}, {"key_file", t.KeyFile}, {"ca_file", t.CAFile}} {
		if f.file != "" {
			checkReadable(errs, path+"."+f.field, f.file)
		}
	}
}

func checkReadable(errs *config.List, path, file string) {
	f, err := os.Open(file)
	if err != nil {
		errs.Addf(path, "cannot read %s: %v", file, unwrapPathError(err))
		return
	}
	f.Close()
}

// unwrapPathError drops the operation and path that os errors repeat, as the
// message already names the file.
func unwrapPathError(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err
	}
	return err
}

func checkName(errs *config.List, path, name string) {
	if strings.ContainsAny(name, " \t\r\n") {
		errs.Addf(path, "name %q must not contain whitespace", name)
	}
}

// checkSubjectFilter applies nats-server's rules for subscription subjects:
// non-empty tokens, "*" and ">" only as whole tokens, ">" only last.
func checkSubjectFilter(errs *config.List, path, subject string) {
	if subject == "" || strings.ContainsAny(subject, " \t\r\n") {
		errs.Addf(path, "invalid subject %q", subject)
		return
	}
	tokens := strings.Split(subject, ".")
	for i, t := range tokens {
		if t == "" || (t == ">" && i != len(tokens)-1) {
			errs.Addf(path, "invalid subject %q", subject)
			return
		}
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
