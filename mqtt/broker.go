package mqtt

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"math"
	"net"
	"os"
	"time"

	mochi "github.com/mochi-mqtt/server/v2"

	"github.com/canopy-iot/canopy/mqtt/session"
)

// Options are the broker's connections to the rest of the leaf.
type Options struct {
	// NATS is the local NATS server (required).
	NATS NATS
	// Streams takes publishes on leaf streams' subjects; nil without
	// streams.
	Streams Streams
	// Sessions keeps retained messages and persistent sessions across
	// restarts; nil keeps them in memory only.
	Sessions session.Table
}

// Broker is the leaf's MQTT broker.
type Broker struct {
	cfg    Config
	log    *slog.Logger
	srv    *mochi.Server
	bridge *bridge
	flow   *flowHook
	stats  *statsHook
	tlsCfg *tls.Config // TLS listener's, loaded by New
	wssCfg *tls.Config // WebSocket listener's, nil for ws://
	tcp    *listener
	tls    *listener
	ws     *listener
	ready  chan struct{}
}

// New checks cfg (after defaults) and reads the files it names (users,
// certificates), so that a bad one is an error here; it binds no port.
// Serving starts with Run.
func New(cfg Config, opts Options, log *slog.Logger) (*Broker, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("component", "mqtt")
	caps := mochi.NewDefaultServerCapabilities()
	caps.MaximumPacketSize = uint32(cfg.MaxPacketSize)
	caps.MaximumClientWritesPending = int32(cfg.MaxPending)
	caps.MaximumInflight = uint16(cfg.MaxInflight)
	caps.ReceiveMaximum = uint16(min(cfg.MaxInflight, math.MaxUint16))
	caps.MaximumSessionExpiryInterval = uint32(cfg.MaxSessionExpiry.Std() / time.Second)
	caps.MaximumMessageExpiryInterval = int64(cfg.MaxMessageExpiry.Std() / time.Second)
	srv := mochi.New(&mochi.Options{
		Capabilities: caps,
		Logger:       log,
		// $SYS topics are refreshed for subscribers only; once a minute
		// is plenty on a device.
		SysTopicResendInterval: 60,
	})
	b := &Broker{cfg: cfg, log: log, srv: srv, ready: make(chan struct{})}
	auth, err := newAuth(cfg, log)
	if err != nil {
		return nil, err
	}
	if err := srv.AddHook(auth, nil); err != nil {
		return nil, fmt.Errorf("mqtt: %w", err)
	}
	b.flow = newFlow(srv, log)
	if opts.Sessions != nil {
		sessions := session.NewHook(opts.Sessions, log)
		if err := srv.AddHook(sessions, nil); err != nil {
			return nil, fmt.Errorf("mqtt: %w", err)
		}
		b.flow.complete = sessions.OnQosComplete
	}
	if err := srv.AddHook(b.flow, nil); err != nil {
		return nil, fmt.Errorf("mqtt: %w", err)
	}
	b.stats = &statsHook{}
	if err := srv.AddHook(b.stats, nil); err != nil {
		return nil, fmt.Errorf("mqtt: %w", err)
	}
	b.bridge = newBridge(srv, opts.NATS, opts.Streams, log)
	if err := srv.AddHook(b.bridge, nil); err != nil {
		return nil, fmt.Errorf("mqtt: %w", err)
	}
	if cfg.TLS.Listen != "" {
		if b.tlsCfg, err = serverTLS(cfg.TLS.CertFile, cfg.TLS.KeyFile, cfg.TLS.ClientCAFile, cfg.TLS.RequireClientCert); err != nil {
			return nil, fmt.Errorf("mqtt tls: %w", err)
		}
	}
	if ws := cfg.WebSocket; ws.Listen != "" && ws.CertFile != "" {
		// wss:// shares the TLS listener's client CA, if any.
		if b.wssCfg, err = serverTLS(ws.CertFile, ws.KeyFile, cfg.TLS.ClientCAFile, false); err != nil {
			return nil, fmt.Errorf("mqtt websocket: %w", err)
		}
	}
	return b, nil
}

func (b *Broker) listen() error {
	var err error
	if b.tcp, err = bind("tcp", "mqtt", b.cfg.Listen, nil); err != nil {
		return err
	}
	if b.cfg.TLS.Listen != "" {
		if b.tls, err = bind("tls", "mqtts", b.cfg.TLS.Listen, b.tlsCfg); err != nil {
			return err
		}
	}
	if ws := b.cfg.WebSocket; ws.Listen != "" {
		proto := "ws"
		if b.wssCfg != nil {
			proto = "wss"
		}
		if b.ws, err = bind("websocket", proto, ws.Listen, b.wssCfg); err != nil {
			return err
		}
		b.ws.ws = true
	}
	return nil
}

func bind(id, protocol, addr string, tc *tls.Config) (*listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("mqtt %s listener: %w", id, err)
	}
	if tc != nil {
		ln = tls.NewListener(ln, tc)
	}
	return &listener{id: id, protocol: protocol, ln: ln}, nil
}

func serverTLS(certFile, keyFile, clientCAFile string, require bool) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("load certificate %s: %w", certFile, err)
	}
	tc := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if clientCAFile != "" {
		pem, err := os.ReadFile(clientCAFile)
		if err != nil {
			return nil, fmt.Errorf("client CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("client CA %s: no PEM certificate in it", clientCAFile)
		}
		tc.ClientCAs = pool
		tc.ClientAuth = tls.VerifyClientCertIfGiven
		if require {
			tc.ClientAuth = tls.RequireAndVerifyClientCert
		}
	}
	return tc, nil
}

func (b *Broker) listeners() []*listener {
	var ls []*listener
	for _, l := range []*listener{b.tcp, b.tls, b.ws} {
		if l != nil {
			ls = append(ls, l)
		}
	}
	return ls
}

func (b *Broker) closeListeners() {
	for _, l := range b.listeners() {
		_ = l.ln.Close()
	}
}

// Run serves until ctx ends, then disconnects every client (persistent
// sessions stay in the store) and returns.
func (b *Broker) Run(ctx context.Context) error {
	if err := b.listen(); err != nil {
		b.closeListeners()
		return err
	}
	for _, l := range b.listeners() {
		if err := b.srv.AddListener(l); err != nil {
			b.closeListeners()
			return fmt.Errorf("mqtt: %w", err)
		}
	}
	// Serve restores retained messages and sessions from the store before
	// it accepts anyone.
	if err := b.srv.Serve(); err != nil {
		b.closeListeners()
		return fmt.Errorf("mqtt: %w", err)
	}
	b.bridge.start()
	sweepCtx, stopSweep := context.WithCancel(context.Background())
	defer stopSweep()
	go b.flow.sweep(sweepCtx)
	addrs := []any{}
	for _, l := range b.listeners() {
		addrs = append(addrs, l.id, l.protocol+"://"+l.Address())
	}
	b.log.Info("MQTT broker ready", addrs...)
	close(b.ready)
	<-ctx.Done()
	err := b.srv.Close()
	b.bridge.stop()
	if err != nil {
		return fmt.Errorf("mqtt: close: %w", err)
	}
	return nil
}

// Dropped counts the messages given up for clients: queues full, QoS 1/2
// messages expired or refused.
func (b *Broker) Dropped() int64 { return b.flow.dropped.Load() }

// Ready is closed once the broker serves.
func (b *Broker) Ready() <-chan struct{} { return b.ready }

// Addr is the plain TCP listener's address (host:port), once Ready.
func (b *Broker) Addr() string { return b.tcp.Address() }

// TLSAddr is the TLS listener's address once Ready, "" without one.
func (b *Broker) TLSAddr() string {
	if b.tls == nil {
		return ""
	}
	return b.tls.Address()
}

// WebSocketAddr is the WebSocket listener's address once Ready, ""
// without one.
func (b *Broker) WebSocketAddr() string {
	if b.ws == nil {
		return ""
	}
	return b.ws.Address()
}
