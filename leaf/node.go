package leaf

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"

	"github.com/canopy-iot/canopy/leaf/natsd"
	"github.com/canopy-iot/canopy/leaf/stream"
	"github.com/canopy-iot/canopy/leaf/uplink"
	"github.com/canopy-iot/canopy/store"
)

// Node is one running canopy-leaf.
type Node struct {
	cfg     Config
	log     *slog.Logger
	nats    *natsd.Server
	uplink  *uplink.Uplink // nil without a hub
	store   *store.Store   // nil without streams
	streams *stream.Manager
	ready   chan struct{}
}

// storeFile is the streams' store, in the data directory.
const storeFile = "streams.db"

// noLink is the hub link of a leaf without one: never up.
type noLink struct{}

func (noLink) Up() bool { return false }

func (noLink) Generation() uint64 { return 0 }

// New checks cfg (after applying defaults) and prepares the parts without
// binding any port. A nil log discards logs.
func New(cfg Config, log *slog.Logger) (*Node, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ns, err := natsd.New(cfg.NATS, cfg.ServerName, log)
	if err != nil {
		return nil, err
	}
	n := &Node{cfg: cfg, log: log, nats: ns, ready: make(chan struct{})}
	if cfg.Uplink.Enabled() {
		if n.uplink, err = uplink.New(cfg.Uplink, cfg.ServerName, ns, log); err != nil {
			return nil, err
		}
		ns.SetUplink(n.uplink)
	}
	return n, nil
}

// Uplink is the link to the hub, nil when none is configured.
func (n *Node) Uplink() *uplink.Uplink { return n.uplink }

// Ready is closed once every part serves.
func (n *Node) Ready() <-chan struct{} { return n.ready }

// NATSURL is where local NATS clients connect (valid once Ready).
func (n *Node) NATSURL() string { return n.nats.ClientURL() }

// Run serves until ctx ends, then stops every part, letting each finish
// what it has pending. It returns the first part's failure.
func (n *Node) Run(ctx context.Context) error {
	if err := os.MkdirAll(n.cfg.DataDir, 0o750); err != nil {
		return fmt.Errorf("create data dir %s: %w", n.cfg.DataDir, err)
	}
	if len(n.cfg.Streams) > 0 {
		st, err := store.Open(filepath.Join(n.cfg.DataDir, storeFile), store.Options{Logger: n.log.With("component", "store")})
		if err != nil {
			return err
		}
		defer st.Close()
		var link stream.Link = noLink{}
		if n.uplink != nil {
			link = n.uplink
		}
		if n.streams, err = stream.New(n.cfg.Streams, n.cfg.ServerName, st, n.nats, link, n.log); err != nil {
			return err
		}
		n.store = st
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- n.nats.Run(ctx) }()
	select {
	case <-n.nats.Ready():
	case err := <-done:
		return err
	}
	streamsDone := make(chan error, 1)
	if n.streams != nil {
		go func() { streamsDone <- n.streams.Run(ctx) }()
	} else {
		streamsDone <- nil
	}
	uplinkDone := make(chan error, 1)
	if n.uplink != nil {
		// Local clients are served whether or not the hub is reachable:
		// the leaf is ready once its own listener is.
		go func() { uplinkDone <- n.uplink.Run(ctx) }()
	} else {
		uplinkDone <- nil
	}
	n.log.Info("leaf ready", "server_name", n.cfg.ServerName, "nats", n.NATSURL(), "data_dir", n.cfg.DataDir, "uplink", n.cfg.Uplink.URLs)
	close(n.ready)
	err := <-done
	cancel()
	<-uplinkDone
	<-streamsDone
	return err
}

// Reload takes a changed configuration. The log level is applied by the
// caller; every other leaf setting applies at the next start, which the
// log says when it changed.
func (n *Node) Reload(cfg Config) error {
	next := cfg.WithDefaults()
	if err := next.Validate(); err != nil {
		return err
	}
	cur := n.cfg
	cur.LogLevel = next.LogLevel
	if !reflect.DeepEqual(cur, next) {
		n.log.Warn("configuration changed; leaf settings other than log_level apply at the next restart")
	}
	return nil
}

// StreamStats returns the stats of a leaf stream (zero when there is no
// such stream or the node is not running).
func (n *Node) StreamStats(name string) store.Stats {
	if n.streams == nil {
		return store.Stats{}
	}
	st, _ := n.streams.Stats(name)
	return st
}
