package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/canopy-iot/canopy/firmware/agent"
	"github.com/canopy-iot/canopy/hub"
	"github.com/canopy-iot/canopy/hub/fleet"
	"github.com/canopy-iot/canopy/internal/config"
	"github.com/canopy-iot/canopy/internal/faultproxy"
	"github.com/canopy-iot/canopy/internal/wait"
	"github.com/canopy-iot/canopy/leaf"
	"github.com/canopy-iot/canopy/leaf/natsd"
	"github.com/canopy-iot/canopy/leaf/stream"
	"github.com/canopy-iot/canopy/leaf/uplink"
	"github.com/canopy-iot/canopy/mqtt"
	"github.com/canopy-iot/canopy/store"
)

// Names the demo gives things.
const (
	tenantName   = "demo"
	streamName   = "sensors"      // each leaf's stream
	streamFilter = "sensors.>"    // what it keeps: MQTT sensors/<sensor>
	firmwareName = "demo-app"     // the firmware rolled out
	firmwareFile = "demo-app.bin" // where each leaf installs it, in its data dir
	firmwareRate = 128 << 10      // bytes per second each leaf downloads
)

// Bounds on start-up and shutdown: generous, for a loaded machine.
const (
	startTimeout = 60 * time.Second
	stopTimeout  = 30 * time.Second
)

// hubNode is the running hub with its key directory.
type hubNode struct {
	h      *hub.Hub
	keys   *fleet.Keys
	admin  *hub.Admin
	dir    string
	cancel context.CancelFunc
	done   chan error
}

// startHub makes a key directory under dir, runs a hub in operator mode
// with JetStream on it, and adds tenant with its assets, as `canopy-hub
// init`, the hub and `canopy-hub tenant add` do.
func startHub(ctx context.Context, dir, tenant string, log *slog.Logger) (*hubNode, error) {
	keys, err := fleet.Init(filepath.Join(dir, "keys"), log)
	if err != nil {
		return nil, fmt.Errorf("key directory: %w", err)
	}
	// The leaves reach the hub only through their links, which the demo
	// cuts: the hub must not tell them its own address, which they would
	// use when their link is down, as they would use another node's.
	cfg := hub.Config{
		Listen:     "127.0.0.1:0",
		HTTPListen: "127.0.0.1:0",
		LeafNodes:  hub.LeafNodes{Listen: "127.0.0.1:0", NoAdvertise: true},
		JetStream:  hub.JetStream{StoreDir: filepath.Join(dir, "jetstream")},
		Operator:   hub.Operator{KeyDir: keys.Dir(), EnrollListen: "off"},
	}
	configureDashboard(&cfg)
	h, err := hub.New(cfg, log)
	if err != nil {
		return nil, fmt.Errorf("hub: %w", err)
	}
	runCtx, cancel := context.WithCancel(context.Background())
	n := &hubNode{h: h, keys: keys, dir: dir, cancel: cancel, done: make(chan error, 1)}
	go func() { n.done <- h.Run(runCtx) }()
	select {
	case <-h.Ready():
	case err := <-n.done:
		cancel()
		return nil, fmt.Errorf("hub stopped before it was ready: %w", err)
	case <-time.After(startTimeout):
		n.stop()
		return nil, fmt.Errorf("hub not ready after %v", startTimeout)
	case <-ctx.Done():
		n.stop()
		return nil, ctx.Err()
	}
	n.admin = hub.NewAdmin(h.ClientURL(), nil, keys)
	_, accountJWT, err := keys.AddTenant(tenant, fleet.DefaultLimits())
	if err == nil {
		_, err = n.admin.PushAccount(accountJWT)
	}
	if err == nil {
		err = n.admin.EnsureTenantAssets(ctx, tenant, 1)
	}
	if err != nil {
		n.stop()
		return nil, fmt.Errorf("tenant %s: %w", tenant, err)
	}
	return n, nil
}

// stop shuts the hub down and waits for it, within stopTimeout.
func (n *hubNode) stop() error {
	n.cancel()
	select {
	case err := <-n.done:
		return err
	case <-time.After(stopTimeout):
		return fmt.Errorf("hub did not stop within %v", stopTimeout)
	}
}

// deviceCreds issues a device of tenant and writes its credentials to a
// file in dir.
func (n *hubNode) deviceCreds(tenant, device, dir string) (string, error) {
	creds, err := n.keys.AddDevice(tenant, device)
	if err != nil {
		return "", fmt.Errorf("device %s: %w", device, err)
	}
	return writeSecret(filepath.Join(dir, device+".creds"), creds)
}

// adminCreds writes credentials of tenant's administrator to a file in
// dir, valid for ttl.
func (n *hubNode) adminCreds(tenant, dir string, ttl time.Duration) (string, error) {
	creds, err := n.keys.AdminCreds(tenant, ttl)
	if err != nil {
		return "", fmt.Errorf("tenant %s admin credentials: %w", tenant, err)
	}
	return writeSecret(filepath.Join(dir, tenant+"-admin.creds"), creds)
}

// connect connects to the hub with a credentials file.
func (n *hubNode) connect(creds string) (*nats.Conn, error) {
	nc, err := nats.Connect(n.h.ClientURL(), nats.UserCredentials(creds), nats.Name("canopy-demo"))
	if err != nil {
		return nil, fmt.Errorf("connect to the hub at %s: %w", n.h.ClientURL(), err)
	}
	return nc, nil
}

func writeSecret(path string, data []byte) (string, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", fmt.Errorf("create %s: %w", filepath.Dir(path), err)
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		return "", fmt.Errorf("write %s: %w", path, err)
	}
	return path, nil
}

// leafNode is one running leaf and the link it reaches the hub through.
type leafNode struct {
	name    string
	node    *leaf.Node
	link    *faultproxy.Proxy
	dataDir string
	fwPath  string // where the firmware's file installer puts the artifact
	cancel  context.CancelFunc
	done    chan error
}

// startLeaf runs a leaf named by its credentials, in dataDir, linked to
// the hub through a proxy that can be cut: MQTT on, a stream of its
// sensors' readings sent up to the hub, the firmware agent following the
// tenant's rollouts with a file installer, heartbeats every 2s. It waits
// until the link is up.
func startLeaf(ctx context.Context, h *hub.Hub, name, creds, dataDir, firmwareKey string, log *slog.Logger) (*leafNode, error) {
	u, err := url.Parse(h.LeafNodeURL())
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("hub leafnode URL %q: %v", h.LeafNodeURL(), err)
	}
	l, err := faultproxy.Start(u.Host)
	if err != nil {
		return nil, err
	}
	on := true
	fwPath := filepath.Join(dataDir, firmwareFile)
	cfg := leaf.Config{
		DataDir: dataDir,
		NATS:    natsd.Config{Listen: "127.0.0.1:0"},
		MQTT:    mqtt.Config{Listen: "127.0.0.1:0"},
		Monitor: leaf.MonitorConfig{Listen: "127.0.0.1:0"},
		Uplink:  uplink.Config{URLs: []string{"nats://" + l.Addr()}, Credentials: creds},
		Streams: []stream.Config{{Name: streamName, Subjects: []string{streamFilter}}},
		// Often enough that the hub's view follows the demo.
		Heartbeat: config.Duration(2 * time.Second),
		Firmware: agent.Config{
			Enabled:     &on,
			TrustedKeys: []string{firmwareKey},
			Poll:        config.Duration(2 * time.Second),
			// Slow enough that the download shows, as on a thin link.
			RateLimit:  config.Size(firmwareRate),
			Installers: map[string]agent.InstallerConfig{firmwareName: {Type: agent.TypeFile, Path: fwPath}},
		},
	}
	node, err := leaf.New(cfg, log.With("leaf", name))
	if err != nil {
		l.Close()
		return nil, fmt.Errorf("leaf %s: %w", name, err)
	}
	runCtx, cancel := context.WithCancel(context.Background())
	n := &leafNode{name: name, node: node, link: l, dataDir: dataDir, fwPath: fwPath, cancel: cancel, done: make(chan error, 1)}
	go func() { n.done <- node.Run(runCtx) }()
	select {
	case <-node.Ready():
	case err := <-n.done:
		n.done <- err
		n.stop()
		return nil, fmt.Errorf("leaf %s stopped before it was ready: %w", name, err)
	case <-time.After(startTimeout):
		n.stop()
		return nil, fmt.Errorf("leaf %s not ready after %v", name, startTimeout)
	}
	err = wait.Until(ctx, startTimeout, func() error {
		if s := node.Uplink().Stats(); !s.Connected {
			return fmt.Errorf("uplink not connected: %s", s.LastError)
		}
		return nil
	})
	if err != nil {
		n.stop()
		return nil, fmt.Errorf("leaf %s: %w", name, err)
	}
	return n, nil
}

// stats are the leaf stream's counters.
func (n *leafNode) stats() store.Stats { return n.node.StreamStats(streamName) }

// backlog is how many of the stream's messages the hub has not
// acknowledged yet.
func (n *leafNode) backlog() uint64 {
	st := n.stats()
	if st.LastSeq < st.AckFloor {
		return 0
	}
	return st.LastSeq - st.AckFloor
}

// stop shuts the leaf down, then its link, within stopTimeout.
func (n *leafNode) stop() error {
	n.cancel()
	var err error
	select {
	case err = <-n.done:
	case <-time.After(stopTimeout):
		err = fmt.Errorf("did not stop within %v", stopTimeout)
	}
	n.link.Close()
	if err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("leaf %s: %w", n.name, err)
	}
	return nil
}
