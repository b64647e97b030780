package hubapp

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/canopy-iot/canopy/hub"
	"github.com/canopy-iot/canopy/hub/fleet"
	"github.com/canopy-iot/canopy/internal/config"
	"github.com/canopy-iot/canopy/internal/heartbeat"
	"github.com/canopy-iot/canopy/internal/logging"
)

// DefaultKeyDir is the key directory used when neither --key-dir nor
// operator.key_dir names one.
const DefaultKeyDir = "./canopy-keys"

// AuditLog is the file in the key directory where every provisioning
// action is appended as a JSON line (who, what, when).
const AuditLog = "audit.log"

// provisioning holds what the provisioning commands share: the loaded
// configuration and the flags naming the key directory and the hub.
type provisioning struct {
	load           func() (hub.Config, error)
	stdout, stderr io.Writer
	keyDir         string
	server         string
	caFile         string
}

func commands(load func() (hub.Config, error), stdout, stderr io.Writer) []*cobra.Command {
	p := &provisioning{load: load, stdout: stdout, stderr: stderr}
	tenant := &cobra.Command{Use: "tenant", Short: "Add, list and remove tenants (NATS accounts)"}
	tenant.AddCommand(p.tenantAdd(), p.tenantList(), p.tenantRemove(), p.tenantSync())
	device := &cobra.Command{Use: "device", Short: "Add, list and revoke devices; issue enrollment tokens"}
	device.AddCommand(p.deviceAdd(), p.deviceList(), p.deviceRevoke(), p.deviceToken())
	cmds := []*cobra.Command{p.initCmd(), tenant, device, p.firmwareCommand()}
	for _, c := range cmds {
		c.PersistentFlags().StringVar(&p.keyDir, "key-dir", "", "key directory (default operator.key_dir, else "+DefaultKeyDir+")")
	}
	for _, c := range []*cobra.Command{tenant, device, cmds[3]} {
		c.PersistentFlags().StringVar(&p.server, "server", "", "hub client URL for pushing changes (default from listen and tls)")
		c.PersistentFlags().StringVar(&p.caFile, "ca", "", "CA file verifying the hub's TLS certificate (default tls.ca_file)")
	}
	cmds = append(cmds, tlsCommand(stdout, stderr), dashboardCommand(load, stdout, stderr))
	return cmds
}

// config loads the hub configuration; the key directory may not exist yet
// (init makes it), so its own checks are left to fleet.
func (p *provisioning) config() (hub.Config, error) {
	cfg, err := p.load()
	if err != nil {
		return hub.Config{}, err
	}
	if p.keyDir == "" {
		p.keyDir = cfg.Operator.KeyDir
	}
	if p.keyDir == "" {
		p.keyDir = DefaultKeyDir
	}
	return cfg, nil
}

// logger writes provisioning actions to stderr and appends them to the
// key directory's audit log.
func (p *provisioning) logger() (*slog.Logger, func(), error) {
	level := new(slog.LevelVar)
	text := logging.New(p.stderr, level).Handler()
	f, err := os.OpenFile(filepath.Join(p.keyDir, AuditLog), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, nil, fmt.Errorf("open audit log: %w", err)
	}
	audit := slog.NewJSONHandler(f, nil)
	return slog.New(slog.NewMultiHandler(text, audit)), func() { f.Close() }, nil
}

// keys opens the key directory for a provisioning command.
func (p *provisioning) keys() (*fleet.Keys, hub.Config, func(), error) {
	cfg, err := p.config()
	if err != nil {
		return nil, cfg, nil, err
	}
	if err := fleet.CheckPermissions(p.keyDir); err != nil {
		return nil, cfg, nil, err
	}
	log, closeLog, err := p.logger()
	if err != nil {
		return nil, cfg, nil, err
	}
	keys, err := fleet.Open(p.keyDir, log)
	if err != nil {
		closeLog()
		return nil, cfg, nil, err
	}
	return keys, cfg, closeLog, nil
}

// admin connects provisioning to the running hub named by --server, or by
// the configuration's client listener.
func (p *provisioning) admin(cfg hub.Config, keys *fleet.Keys) (*hub.Admin, error) {
	url := p.server
	if url == "" {
		host, port, err := config.SplitListen(cfg.Listen)
		if err != nil {
			return nil, fmt.Errorf("listen: %w", err)
		}
		if host == "" || host == "0.0.0.0" || host == "::" {
			host = "127.0.0.1"
		}
		scheme := "nats"
		if cfg.TLS != nil {
			scheme = "tls"
		}
		url = fmt.Sprintf("%s://%s", scheme, net.JoinHostPort(host, fmt.Sprint(port)))
	}
	var tlsConf *tls.Config
	ca := p.caFile
	if ca == "" && cfg.TLS != nil {
		ca = cfg.TLS.CAFile
	}
	if ca != "" || strings.HasPrefix(url, "tls://") {
		tlsConf = &tls.Config{MinVersion: tls.VersionTLS12}
		if ca != "" {
			pem, err := os.ReadFile(ca)
			if err != nil {
				return nil, fmt.Errorf("CA file: %w", err)
			}
			tlsConf.RootCAs = x509.NewCertPool()
			if !tlsConf.RootCAs.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("CA file %s: no PEM certificate in it", ca)
			}
		}
		if cfg.TLS != nil && cfg.TLS.Verify && cfg.TLS.CertFile != "" {
			// The hub wants client certificates: present its own.
			cert, err := tls.LoadX509KeyPair(cfg.TLS.CertFile, cfg.TLS.KeyFile)
			if err != nil {
				return nil, fmt.Errorf("tls client certificate: %w", err)
			}
			tlsConf.Certificates = []tls.Certificate{cert}
		}
	}
	return hub.NewAdmin(url, tlsConf, keys), nil
}

// push sends an account JWT, just changed in the key directory, to the
// hub and returns how many nodes stored it.
func (p *provisioning) push(cfg hub.Config, keys *fleet.Keys, accountJWT string) (int, error) {
	admin, err := p.admin(cfg, keys)
	if err != nil {
		return 0, err
	}
	return admin.PushAccount(accountJWT)
}

func (p *provisioning) initCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "init",
		Short: "Create the operator, the system account and signing keys in the key directory",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			if _, err := p.config(); err != nil {
				return err
			}
			// fleet.Init wants an empty directory: its audit line is kept
			// aside and appended once the directory exists.
			var audit bytes.Buffer
			log := slog.New(slog.NewMultiHandler(logging.New(p.stderr, new(slog.LevelVar)).Handler(), slog.NewJSONHandler(&audit, nil)))
			keys, err := fleet.Init(p.keyDir, log)
			if err != nil {
				return err
			}
			if err := os.WriteFile(filepath.Join(p.keyDir, AuditLog), audit.Bytes(), 0o600); err != nil {
				return fmt.Errorf("write audit log: %w", err)
			}
			abs, _ := filepath.Abs(keys.Dir())
			fmt.Fprintf(p.stdout, "operator %s created in %s\n", keys.OperatorPublicKey(), abs)
			fmt.Fprintf(p.stdout, "turn operator mode on in hub.yaml and restart the hub:\n\noperator:\n  key_dir: %s\n\n", abs)
			fmt.Fprintf(p.stdout, "back up %s and keep operator.nk offline (see docs/security.md)\n", abs)
			return nil
		},
	}
}

func (p *provisioning) tenantAdd() *cobra.Command {
	lim := fleet.DefaultLimits()
	memory, storage := sizeFlag(lim.JetStreamMemory), sizeFlag(lim.JetStreamStorage)
	var replicas int
	cmd := &cobra.Command{
		Use:   "add TENANT",
		Short: "Create a tenant account with its limits and push it to the running hub",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			keys, cfg, done, err := p.keys()
			if err != nil {
				return err
			}
			defer done()
			lim.JetStreamMemory, lim.JetStreamStorage = int64(memory), int64(storage)
			t, accountJWT, err := keys.AddTenant(args[0], lim)
			if err != nil {
				return err
			}
			fmt.Fprintf(p.stdout, "tenant %s: account %s\n", t.Name, t.Account)
			fmt.Fprintf(p.stdout, "tenant %s: firmware signing key %s (devices trust it: firmware.trusted_keys; enrollment tells them)\n", t.Name, t.FirmwareKey)
			return p.sync(cmd.Context(), cfg, keys, t.Name, accountJWT, replicas)
		},
	}
	f := cmd.Flags()
	f.Var(&memory, "js-memory", "JetStream memory limit, e.g. 256MiB (-1: unlimited)")
	f.Var(&storage, "js-storage", "JetStream storage limit, e.g. 10GiB (-1: unlimited)")
	f.Int64Var(&lim.Streams, "streams", lim.Streams, "maximum streams (-1: unlimited)")
	f.Int64Var(&lim.Consumers, "consumers", lim.Consumers, "maximum consumers (-1: unlimited)")
	f.Int64Var(&lim.Connections, "connections", lim.Connections, "maximum client connections (-1: unlimited)")
	f.Int64Var(&lim.LeafNodes, "leafnodes", lim.LeafNodes, "maximum leaf node (device) connections (-1: unlimited)")
	f.IntVar(&replicas, "replicas", 0, "replicas of the tenant's streams (default 3 on a cluster of 3 nodes or more, else 1)")
	return cmd
}

// sync pushes a tenant's account JWT to the hub and creates its JetStream
// assets. When the hub cannot be reached, the tenant stays in the key
// directory and the error says how to finish.
func (p *provisioning) sync(ctx context.Context, cfg hub.Config, keys *fleet.Keys, tenant, accountJWT string, replicas int) error {
	later := fmt.Sprintf("the tenant is saved in %s; once the hub runs in operator mode with this key directory, run: canopy-hub tenant sync %s", p.keyDir, tenant)
	admin, err := p.admin(cfg, keys)
	if err != nil {
		return fmt.Errorf("%w\n%s", err, later)
	}
	nodes, err := admin.PushAccount(accountJWT)
	if err != nil {
		return fmt.Errorf("%w\n%s", err, later)
	}
	if replicas == 0 {
		replicas = 1
		if n, err := admin.ClusterSize(); err == nil && n >= 3 {
			replicas = 3
		}
	}
	if err := admin.EnsureTenantAssets(ctx, tenant, replicas); err != nil {
		return fmt.Errorf("%w\n%s", err, later)
	}
	fmt.Fprintf(p.stdout, "tenant %s: pushed to %d hub node%s; streams %s and %s, buckets %s, %s, %s, %s ready (R%d)\n",
		tenant, nodes, plural(nodes), hub.TelemetryStream, hub.CommandStream, hub.FirmwareBucket, hub.DesiredBucket, hub.StatusBucket, hub.DevicesBucket, replicas)
	return nil
}

func (p *provisioning) tenantSync() *cobra.Command {
	var replicas int
	cmd := &cobra.Command{
		Use:   "sync [TENANT...]",
		Short: "Push tenants' accounts to the hub again and create missing JetStream assets (all tenants by default)",
		RunE: func(cmd *cobra.Command, args []string) error {
			keys, cfg, done, err := p.keys()
			if err != nil {
				return err
			}
			defer done()
			if len(args) == 0 {
				tenants, err := keys.Tenants()
				if err != nil {
					return err
				}
				for _, t := range tenants {
					args = append(args, t.Name)
				}
			}
			accounts, err := keys.AccountJWTs()
			if err != nil {
				return err
			}
			for _, name := range args {
				t, err := keys.Tenant(name)
				if err != nil {
					return err
				}
				if err := p.sync(cmd.Context(), cfg, keys, t.Name, accounts[t.Account], replicas); err != nil {
					return err
				}
			}
			return nil
		},
	}
	cmd.Flags().IntVar(&replicas, "replicas", 0, "replicas of new streams (default 3 on a cluster of 3 nodes or more, else 1)")
	return cmd
}

func (p *provisioning) tenantList() *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List tenants with their limits and device counts",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			keys, _, done, err := p.keys()
			if err != nil {
				return err
			}
			defer done()
			tenants, err := keys.Tenants()
			if err != nil {
				return err
			}
			w := tabwriter.NewWriter(p.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "TENANT\tDEVICES\tJS MEMORY\tJS STORAGE\tSTREAMS\tCONSUMERS\tCONNECTIONS\tLEAFNODES\tCREATED\tACCOUNT")
			for _, t := range tenants {
				l := t.Limits
				fmt.Fprintf(w, "%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", t.Name, t.Devices,
					size(l.JetStreamMemory), size(l.JetStreamStorage), count(l.Streams), count(l.Consumers),
					count(l.Connections), count(l.LeafNodes), t.Created.UTC().Format(time.RFC3339), t.Account)
			}
			return w.Flush()
		},
	}
}

func (p *provisioning) tenantRemove() *cobra.Command {
	return &cobra.Command{
		Use:   "remove TENANT",
		Short: "Disable a tenant: its devices and users are disconnected and cannot return",
		Args:  cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			keys, cfg, done, err := p.keys()
			if err != nil {
				return err
			}
			defer done()
			_, tombstone, err := keys.RemoveTenant(args[0])
			if err != nil {
				return err
			}
			nodes, err := p.push(cfg, keys, tombstone)
			if err == nil {
				fmt.Fprintf(p.stdout, "tenant %s removed on %d hub node%s; its JetStream data stays on the hub until deleted\n", args[0], nodes, plural(nodes))
				return nil
			}
			return fmt.Errorf("tenant %s removed from %s, but the hub was not told (its devices stay connected): %w", args[0], p.keyDir, err)
		},
	}
}

func (p *provisioning) deviceAdd() *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "add TENANT DEVICE",
		Short: "Create a device's credentials (a .creds file to copy to the device)",
		Args:  cobra.ExactArgs(2),
		RunE: func(_ *cobra.Command, args []string) error {
			keys, _, done, err := p.keys()
			if err != nil {
				return err
			}
			defer done()
			if out == "" {
				out = args[1] + ".creds"
			}
			if _, err := os.Stat(out); err == nil {
				return fmt.Errorf("%s already exists: choose another --out or remove it first", out)
			}
			creds, err := keys.AddDevice(args[0], args[1])
			if err != nil {
				return err
			}
			if err := writeSecret(out, creds); err != nil {
				return err
			}
			fmt.Fprintf(p.stdout, "device %s of tenant %s: credentials in %s\n", args[1], args[0], out)
			fmt.Fprintf(p.stdout, "copy them to the device (mode 0600), e.g. /var/lib/canopy/device.creds, and set uplink.credentials\n")
			return nil
		},
	}
	cmd.Flags().StringVarP(&out, "out", "o", "", "where to write the .creds file (default ./DEVICE.creds)")
	return cmd
}

// writeSecret writes data to a new file readable by its owner only.
func writeSecret(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("write credentials: %w", err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		os.Remove(path)
		return fmt.Errorf("write credentials %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		os.Remove(path)
		return fmt.Errorf("write credentials %s: %w", path, err)
	}
	return nil
}

func (p *provisioning) deviceList() *cobra.Command {
	return &cobra.Command{
		Use:   "list TENANT",
		Short: "List a tenant's devices, online or not (from their heartbeats, when the hub answers)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			keys, cfg, done, err := p.keys()
			if err != nil {
				return err
			}
			defer done()
			devices, err := keys.Devices(args[0])
			if err != nil {
				return err
			}
			// The key directory knows the devices; the hub knows which
			// ones report. Without the hub the list is still useful.
			var beats map[string]heartbeat.Document
			if admin, err := p.admin(cfg, keys); err == nil {
				if beats, err = admin.Heartbeats(cmd.Context(), args[0]); err != nil {
					fmt.Fprintf(p.stderr, "canopy-hub: no heartbeats from the hub (%v): online state unknown\n", err)
				}
			}
			now := time.Now()
			w := tabwriter.NewWriter(p.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "DEVICE\tSTATE\tLINK\tLAST SEEN\tVERSION\tBACKLOG\tISSUED\tUSER")
			for _, d := range devices {
				state := "active"
				if d.Revoked {
					state = "revoked"
				}
				link, seen, ver, backlog := "unknown", "-", "-", "-"
				if beats != nil {
					link = "offline"
				}
				if b, ok := beats[d.Name]; ok {
					if b.Online(now) {
						link = "online"
					}
					seen = now.Sub(b.LastSeen()).Round(time.Second).String() + " ago"
					ver = b.Version
					var msgs uint64
					for _, s := range b.Streams {
						msgs += s.Msgs
					}
					backlog = fmt.Sprint(msgs)
				}
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", d.Name, state, link, seen, ver, backlog, d.Issued.UTC().Format(time.RFC3339), d.User)
			}
			return w.Flush()
		},
	}
}

func (p *provisioning) deviceRevoke() *cobra.Command {
	return &cobra.Command{
		Use:   "revoke TENANT DEVICE",
		Short: "Revoke a device's credentials: a connected device is cut off at once and cannot return",
		Args:  cobra.ExactArgs(2),
		RunE: func(_ *cobra.Command, args []string) error {
			keys, cfg, done, err := p.keys()
			if err != nil {
				return err
			}
			defer done()
			accountJWT, err := keys.RevokeDevice(args[0], args[1])
			if err != nil {
				return err
			}
			nodes, err := p.push(cfg, keys, accountJWT)
			if err == nil {
				fmt.Fprintf(p.stdout, "device %s of tenant %s revoked on %d hub node%s\n", args[1], args[0], nodes, plural(nodes))
				return nil
			}
			return fmt.Errorf("device %s revoked in %s, but the hub was not told: %w\nrun canopy-hub tenant sync %s once the hub is reachable", args[1], p.keyDir, err, args[0])
		},
	}
}

func (p *provisioning) deviceToken() *cobra.Command {
	ttl := time.Hour
	cmd := &cobra.Command{
		Use:   "token TENANT DEVICE",
		Short: "Issue a one-time enrollment token for `canopy-leaf enroll`",
		Args:  cobra.ExactArgs(2),
		RunE: func(_ *cobra.Command, args []string) error {
			keys, cfg, done, err := p.keys()
			if err != nil {
				return err
			}
			defer done()
			token, err := keys.IssueToken(args[0], args[1], ttl)
			if err != nil {
				return err
			}
			fmt.Fprintln(p.stdout, token)
			enroll := cfg.Operator.EnrollListen
			if enroll == "" {
				enroll = hub.DefaultEnrollListen
			}
			fmt.Fprintf(p.stderr, "valid once, for %s; on the device run:\n  canopy-leaf enroll --hub https://%s --token <token>\n", ttl, enroll)
			return nil
		},
	}
	cmd.Flags().DurationVar(&ttl, "ttl", ttl, "how long the token stays valid, e.g. 1h (at most 720h)")
	return cmd
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

func size(n int64) string {
	if n < 0 {
		return "unlimited"
	}
	units := []string{"B", "KiB", "MiB", "GiB", "TiB"}
	i := 0
	for n >= 1024 && n%1024 == 0 && i < len(units)-1 {
		n /= 1024
		i++
	}
	return fmt.Sprintf("%d%s", n, units[i])
}

// sizeFlag is a byte limit on the command line: a size such as "10GiB",
// or -1 for unlimited.
type sizeFlag int64

func (s *sizeFlag) String() string { return size(int64(*s)) }
func (s *sizeFlag) Type() string   { return "size" }
func (s *sizeFlag) Set(v string) error {
	if strings.TrimSpace(v) == "-1" {
		*s = -1
		return nil
	}
	n, err := config.ParseSize(v)
	if err != nil {
		return err
	}
	*s = sizeFlag(n)
	return nil
}

func count(n int64) string {
	if n < 0 {
		return "unlimited"
	}
	return fmt.Sprint(n)
}
