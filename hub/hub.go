package hub

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"reflect"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/canopy-iot/canopy/hub/fleet"
)

// readyTimeout bounds how long Run waits for nats-server's listeners after
// Start returned. JetStream recovery happens inside Start, so this is only
// the time to bind and start accepting.
const readyTimeout = 30 * time.Second

// Hub is one running canopy-hub node.
type Hub struct {
	mu    sync.Mutex // guards cfg, replaced by Reload
	cfg   Config
	log   *slog.Logger
	nlog  *natsLogger
	ns    *server.Server
	ready chan struct{}

	op     *operatorState // nil unless in operator mode
	enroll *enrollServer  // nil unless enrollment is on
	// console is nil when dashboard.listen is off; set in Run before
	// Ready.
	console *consoleServer
}

// New checks cfg (after applying defaults) and prepares the embedded
// nats-server without binding any port. Configuration problems come back
// as *config.Error values, all at once. A nil log discards logs.
func New(cfg Config, log *slog.Logger) (*Hub, error) {
	return newHub(cfg, log, false)
}

// Check makes New's checks, nats-server's included, without writing
// anything (New stores the tenants' accounts in the resolver directory).
func Check(cfg Config) error {
	h, err := newHub(cfg, nil, true)
	if err == nil {
		h.op.close()
	}
	return err
}

func newHub(cfg Config, log *slog.Logger, check bool) (*Hub, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	var op *operatorState
	if cfg.Operator.On() {
		keys, err := fleet.Open(cfg.Operator.KeyDir, log)
		if err != nil {
			return nil, fmt.Errorf("operator.key_dir: %w", err)
		}
		if op, err = openOperator(cfg.Operator, keys, check); err != nil {
			return nil, err
		}
	}
	opts, err := cfg.options(op)
	if err != nil {
		return nil, err
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("nats-server options: %w", err)
	}
	h := &Hub{cfg: cfg, log: log, nlog: newNATSLogger(log), ns: ns, ready: make(chan struct{}), op: op}
	ns.SetLoggerV2(h.nlog, opts.Debug, opts.Trace, false)
	return h, nil
}

// Ready is closed once clients, routes, gateways, leafnodes and monitoring
// accept connections and the accounts' JetStream is enabled.
func (h *Hub) Ready() <-chan struct{} { return h.ready }

// Run starts the server and serves until ctx is cancelled, then shuts down
// gracefully (in lame-duck mode when configured). It returns nil after a
// requested shutdown and an error when nats-server failed.
func (h *Hub) Run(ctx context.Context) error {
	started := make(chan struct{})
	go func() {
		h.ns.Start()
		close(started)
	}()
	select {
	case <-started:
	case <-ctx.Done():
		<-started
		h.stop(false)
		return nil
	}
	if err := h.waitListeners(ctx); err != nil {
		h.stop(false)
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("start nats-server: %w", err)
	}
	if err := h.enableAccountJetStream(); err != nil {
		h.stop(false)
		return err
	}
	if h.op == nil {
		// Clients without an account land in the global account.
		if err := addJetStreamMappings(h.ns.GlobalAccount()); err != nil {
			h.stop(false)
			return fmt.Errorf("global account: %w", err)
		}
	}
	if err := h.startEnroll(); err != nil {
		h.stop(false)
		return err
	}
	if err := h.startRollouts(); err != nil {
		h.stop(false)
		return err
	}
	if err := h.startConsole(); err != nil {
		h.stop(false)
		return err
	}
	h.log.Info("hub ready", "server_name", h.ns.Name(), "client", h.ClientURL(),
		"leafnodes", h.LeafNodeURL(), "monitor", h.MonitorURL())
	close(h.ready)

	stopped := make(chan struct{})
	go func() {
		h.ns.WaitForShutdown()
		close(stopped)
	}()
	select {
	case <-ctx.Done():
		h.stop(true)
		return nil
	case err := <-h.nlog.fatal:
		h.stop(false)
		return fmt.Errorf("nats-server: %w", err)
	case <-stopped:
		return errors.New("nats-server shut down unexpectedly")
	}
}

// waitListeners waits until every listener accepts connections, returning
// early when nats-server reports a fatal error (a port in use, say) or ctx
// ends.
func (h *Hub) waitListeners(ctx context.Context) error {
	deadline := time.Now().Add(readyTimeout)
	for !h.ns.ReadyForConnections(50 * time.Millisecond) {
		select {
		case err := <-h.nlog.fatal:
			return err
		case <-ctx.Done():
			return ctx.Err()
		default:
		}
		if time.Now().After(deadline) {
			return errors.New("listeners not ready within " + readyTimeout.String())
		}
	}
	return nil
}

func (h *Hub) stop(graceful bool) {
	h.stopConsole()
	h.stopRollouts()
	h.stopEnroll()
	h.mu.Lock()
	lameDuck := h.cfg.LameDuck.Std()
	h.mu.Unlock()
	if graceful && lameDuck > 0 {
		h.log.Info("entering lame duck mode", "duration", lameDuck)
		h.ns.LameDuckShutdown()
	} else {
		h.ns.Shutdown()
	}
	h.ns.WaitForShutdown()
}

func (h *Hub) enableAccountJetStream() error {
	h.mu.Lock()
	cfg := h.cfg
	h.mu.Unlock()
	if !*cfg.JetStream.Enabled {
		return nil
	}
	for _, name := range sortedKeys(cfg.Accounts) {
		if !cfg.Accounts[name].JetStream {
			continue
		}
		acc, err := h.ns.LookupAccount(name)
		if err != nil {
			return fmt.Errorf("account %s: %w", name, err)
		}
		if acc.JetStreamEnabled() {
			continue
		}
		if err := acc.EnableJetStream(nil, nil); err != nil {
			return fmt.Errorf("enable jetstream for account %s: %w", name, err)
		}
	}
	return nil
}

// Reload applies a changed configuration to the running server, as far as
// nats-server supports changing it live (it refuses, for example, a new
// listen port). On error the running configuration is unchanged.
func (h *Hub) Reload(cfg Config) error {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return err
	}
	h.mu.Lock()
	running, dashboard := h.cfg.Operator, h.cfg.Dashboard
	h.mu.Unlock()
	if !reflect.DeepEqual(cfg.Operator, running) {
		return errors.New("reload: operator settings changed: restart the hub to apply them")
	}
	opts, err := cfg.options(h.op)
	if err != nil {
		return err
	}
	if err := h.ns.ReloadOptions(opts); err != nil {
		return fmt.Errorf("reload: %w", err)
	}
	h.ns.SetLoggerV2(h.nlog, opts.Debug, opts.Trace, false)
	h.mu.Lock()
	h.cfg = cfg
	h.mu.Unlock()
	if err := h.enableAccountJetStream(); err != nil {
		return err
	}
	if !reflect.DeepEqual(cfg.Dashboard, dashboard) {
		h.log.Warn("dashboard settings changed: restart the hub to apply them")
	}
	h.log.Info("configuration reloaded")
	return nil
}

// ClientURL is where NATS clients connect (valid once Ready).
func (h *Hub) ClientURL() string { return h.ns.ClientURL() }

// MonitorURL is the base URL of the monitoring endpoints, or "" when off.
func (h *Hub) MonitorURL() string {
	if a := h.ns.MonitorAddr(); a != nil {
		return "http://" + a.String()
	}
	return ""
}

// LeafNodeURL is where leaf nodes connect, or "" when off.
func (h *Hub) LeafNodeURL() string {
	v, err := h.ns.Varz(nil)
	if err != nil || v.LeafNode.Port == 0 {
		return ""
	}
	return "nats://" + net.JoinHostPort(v.LeafNode.Host, strconv.Itoa(v.LeafNode.Port))
}

// ClusterURL is where other nodes of the cluster route to, or "".
func (h *Hub) ClusterURL() string { return tcpURL(h.ns.ClusterAddr()) }

// GatewayURL is where other clusters' gateways connect, or "".
func (h *Hub) GatewayURL() string { return tcpURL(h.ns.GatewayAddr()) }

func tcpURL(a *net.TCPAddr) string {
	if a == nil {
		return ""
	}
	return "nats://" + a.String()
}
