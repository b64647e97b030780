package hub

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"net/url"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/canopy-iot/canopy/hub/fleet"
	"github.com/canopy-iot/canopy/internal/config"
	"github.com/canopy-iot/canopy/internal/logging"
)

// options translates a validated, defaulted Config into nats-server
// options. Canopy's settings (defaults included) win over the nats_config
// file, which only supplies what Canopy does not model. op is operator
// mode's state, nil when it is off.
func (c Config) options(op *operatorState) (*server.Options, error) {
	opts := &server.Options{}
	if c.NATSConfig != "" {
		var err error
		if opts, err = server.ProcessConfigFile(c.NATSConfig); err != nil {
			return nil, fmt.Errorf("nats_config %s: %w", c.NATSConfig, err)
		}
	}
	// Signals belong to our main; nats-server must not install handlers.
	opts.NoSigs = true
	opts.ServerName = c.ServerName
	level, _ := logging.ParseLevel(c.LogLevel)
	opts.Debug = level <= slog.LevelDebug
	opts.Trace = level <= logging.LevelTrace
	opts.LameDuckDuration = c.LameDuck.Std()
	if opts.LameDuckDuration > 0 {
		// nats-server requires the grace period (before it starts closing
		// clients) to be shorter than the whole lame-duck duration.
		opts.LameDuckGracePeriod = min(server.DEFAULT_LAME_DUCK_GRACE_PERIOD, opts.LameDuckDuration/2)
	}

	var err error
	if opts.Host, opts.Port, err = listenOption(c.Listen); err != nil {
		return nil, fmt.Errorf("listen: %w", err)
	}
	if c.HTTPListen != Off {
		if opts.HTTPHost, opts.HTTPPort, err = listenOption(c.HTTPListen); err != nil {
			return nil, fmt.Errorf("http_listen: %w", err)
		}
	}
	if opts.TLSConfig, err = serverTLS(c.TLS); err != nil {
		return nil, fmt.Errorf("tls: %w", err)
	}
	if c.TLS != nil {
		opts.TLSVerify = c.TLS.Verify
	}

	if err := c.clusterOptions(opts); err != nil {
		return nil, err
	}
	if err := c.gatewayOptions(opts); err != nil {
		return nil, err
	}
	if *c.JetStream.Enabled {
		opts.JetStream = true
		opts.StoreDir = c.JetStream.StoreDir
		opts.JetStreamMaxMemory = int64(c.JetStream.MaxMemory)
		opts.JetStreamMaxStore = int64(c.JetStream.MaxFile)
		opts.JetStreamDomain = c.JetStream.Domain
	}
	if c.LeafNodes.Listen != Off {
		if opts.LeafNode.Host, opts.LeafNode.Port, err = listenOption(c.LeafNodes.Listen); err != nil {
			return nil, fmt.Errorf("leafnodes.listen: %w", err)
		}
		if opts.LeafNode.TLSConfig, err = serverTLS(c.LeafNodes.TLS); err != nil {
			return nil, fmt.Errorf("leafnodes.tls: %w", err)
		}
		opts.LeafNode.NoAdvertise = c.LeafNodes.NoAdvertise
	}
	if err := c.accountOptions(opts); err != nil {
		return nil, err
	}
	if op != nil {
		op.apply(opts)
	}
	if opts.SystemAccount == "" {
		// nats-server creates $SYS anyway; declaring it is what lets
		// leafnodes and gateways be configured together.
		opts.SystemAccount = server.DEFAULT_SYSTEM_ACCOUNT
		opts.Accounts = append(opts.Accounts, server.NewAccount(server.DEFAULT_SYSTEM_ACCOUNT))
	}
	return opts, nil
}

func (c Config) clusterOptions(opts *server.Options) error {
	cl := c.Cluster
	if cl.Listen == "" {
		return nil
	}
	var err error
	opts.Cluster.Name = cl.Name
	if opts.Cluster.Host, opts.Cluster.Port, err = listenOption(cl.Listen); err != nil {
		return fmt.Errorf("cluster.listen: %w", err)
	}
	if opts.Routes, err = parseURLs(cl.Routes); err != nil {
		return fmt.Errorf("cluster.routes: %w", err)
	}
	if opts.Cluster.TLSConfig, err = serverTLS(cl.TLS); err != nil {
		return fmt.Errorf("cluster.tls: %w", err)
	}
	return nil
}

func (c Config) gatewayOptions(opts *server.Options) error {
	gw := c.Gateways
	if gw.Listen == "" {
		return nil
	}
	var err error
	opts.Gateway.Name = gw.Name
	if opts.Gateway.Host, opts.Gateway.Port, err = listenOption(gw.Listen); err != nil {
		return fmt.Errorf("gateways.listen: %w", err)
	}
	if opts.Gateway.TLSConfig, err = serverTLS(gw.TLS); err != nil {
		return fmt.Errorf("gateways.tls: %w", err)
	}
	for _, name := range sortedKeys(gw.Remotes) {
		urls, err := parseURLs(gw.Remotes[name])
		if err != nil {
			return fmt.Errorf("gateways.remotes.%s: %w", name, err)
		}
		remote := &server.RemoteGatewayOpts{Name: name, URLs: urls}
		// A gateway dials its remotes with the same certificates it serves.
		remote.TLSConfig = opts.Gateway.TLSConfig
		opts.Gateway.Gateways = append(opts.Gateway.Gateways, remote)
	}
	return nil
}

func (c Config) accountOptions(opts *server.Options) error {
	for _, name := range sortedKeys(c.Accounts) {
		acc := server.NewAccount(name)
		if err := addJetStreamMappings(acc); err != nil {
			return fmt.Errorf("accounts.%s: %w", name, err)
		}
		opts.Accounts = append(opts.Accounts, acc)
		for _, u := range c.Accounts[name].Users {
			perms := permissions(u)
			if u.NKey != "" {
				opts.Nkeys = append(opts.Nkeys, &server.NkeyUser{Nkey: u.NKey, Account: acc, Permissions: perms})
				continue
			}
			opts.Users = append(opts.Users, &server.User{Username: u.User, Password: u.Password, Account: acc, Permissions: perms})
		}
	}
	opts.NoAuthUser = c.NoAuthUser
	return nil
}

// addJetStreamMappings lets leaf nodes of acc reach its JetStream under
// the domain prefix Canopy devices use (see fleet.JetStreamDomain);
// tenant accounts in operator mode carry the same mappings in their JWT.
func addJetStreamMappings(acc *server.Account) error {
	for from, to := range fleet.JetStreamMappings() {
		if err := acc.AddMapping(from, to); err != nil {
			return fmt.Errorf("map %s: %w", from, err)
		}
	}
	return nil
}

func permissions(u User) *server.Permissions {
	if len(u.Publish) == 0 && len(u.Subscribe) == 0 {
		return nil
	}
	p := &server.Permissions{}
	if len(u.Publish) > 0 {
		p.Publish = &server.SubjectPermission{Allow: u.Publish}
	}
	if len(u.Subscribe) > 0 {
		p.Subscribe = &server.SubjectPermission{Allow: u.Subscribe}
	}
	return p
}

// listenOption splits a listen address for nats-server, where port 0 means
// "the default port"; Canopy follows the socket convention instead (0 asks
// the kernel for a free port), which nats-server spells -1.
func listenOption(addr string) (string, int, error) {
	host, port, err := config.SplitListen(addr)
	if err != nil {
		return "", 0, err
	}
	if port == 0 {
		port = server.RANDOM_PORT
	}
	return host, port, nil
}

func parseURLs(raw []string) ([]*url.URL, error) {
	urls := make([]*url.URL, 0, len(raw))
	for _, r := range raw {
		u, err := url.Parse(r)
		if err != nil {
			return nil, err
		}
		urls = append(urls, u)
	}
	return urls, nil
}

// serverTLS builds a listener's TLS configuration with nats-server's own
// defaults (TLS 1.2+, its cipher preferences).
func serverTLS(t *TLS) (*tls.Config, error) {
	if t == nil {
		return nil, nil
	}
	return server.GenTLSConfig(&server.TLSConfigOpts{
		CertFile: t.CertFile,
		KeyFile:  t.KeyFile,
		CaFile:   t.CAFile,
		Verify:   t.Verify,
	})
}
