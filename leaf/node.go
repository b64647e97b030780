package leaf

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"sync/atomic"
	"time"

	"github.com/canopy-iot/canopy/leaf/downlink"
	"github.com/canopy-iot/canopy/leaf/gpio"
	"github.com/canopy-iot/canopy/leaf/health"
	"github.com/canopy-iot/canopy/leaf/natsd"
	"github.com/canopy-iot/canopy/leaf/stream"
	"github.com/canopy-iot/canopy/leaf/uplink"
	"github.com/canopy-iot/canopy/mqtt"
	"github.com/canopy-iot/canopy/store"
)

// Node is one running canopy-leaf.
type Node struct {
	cfg      Config
	device   string // the device id at the hub (Config.DeviceID)
	log      *slog.Logger
	nats     *natsd.Server
	uplink   *uplink.Uplink // nil without a hub
	mqtt     *mqtt.Broker   // nil when MQTT is off
	store    *store.Store   // nil without streams or MQTT
	streams  *stream.Manager
	sessions *store.Table       // the MQTT broker's
	gpio     *gpio.Bridge       // nil without pins
	health   *health.Publisher  // nil when off
	commands *downlink.Downlink // nil without a hub or when off
	firmware *firmwarePart      // nil without a hub or when off
	ready    chan struct{}

	monitor atomic.Pointer[monitor] // nil when off or not listening
	started time.Time               // set by Run
}

// storeFile is the store of the streams and of MQTT's retained messages
// and sessions, in the data directory.
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
	device, err := cfg.DeviceID()
	if err != nil {
		return nil, err
	}
	if device != cfg.ServerName {
		// server_name defaults to the credentials' device id, so it was
		// set, and it is not what the hub knows the device by.
		log.Warn("server_name differs from the device id in uplink.credentials; the credentials' device id is used at the hub",
			"server_name", cfg.ServerName, "device", device)
	}
	ns, err := natsd.New(cfg.NATS, cfg.ServerName, log)
	if err != nil {
		return nil, err
	}
	n := &Node{cfg: cfg, device: device, log: log, nats: ns, ready: make(chan struct{})}
	if cfg.Uplink.Enabled() {
		if n.uplink, err = uplink.New(cfg.Uplink, device, ns, log); err != nil {
			return nil, err
		}
		ns.SetUplink(n.uplink)
		if cfg.Commands.On() {
			// The device's commands come down from the command stream;
			// a plain subscription at the hub would bring each twice.
			n.uplink.KeepLocal("cmd." + device + ".>")
		}
		// The device's own services answer local clients only: the hub
		// neither may nor should reach them.
		n.uplink.KeepLocal("$CANOPY.>")
		for name, ic := range cfg.Firmware.Installers {
			if ic.ServeLocal {
				n.uplink.KeepLocal("firmware." + name + ".get")
			}
		}
	}
	if cfg.MQTT.On() {
		opts := mqtt.Options{
			NATS:     natsBridge{ns.NewBridge("mqtt")},
			Streams:  nodeStreams{n},
			Sessions: nodeSessions{n},
		}
		if n.mqtt, err = mqtt.New(cfg.MQTT, opts, log); err != nil {
			return nil, err
		}
	}
	n.newDevice()
	return n, nil
}

// Uplink is the link to the hub, nil when none is configured.
func (n *Node) Uplink() *uplink.Uplink { return n.uplink }

// Ready is closed once every part serves.
func (n *Node) Ready() <-chan struct{} { return n.ready }

// NATSURL is where local NATS clients connect (valid once Ready).
func (n *Node) NATSURL() string { return n.nats.ClientURL() }

// MQTT is the MQTT broker (its addresses are valid once Ready), nil when
// MQTT is off.
func (n *Node) MQTT() *mqtt.Broker { return n.mqtt }

// Run serves until ctx ends, then stops every part, letting each finish
// what it has pending. It returns the first part's failure.
func (n *Node) Run(ctx context.Context) error {
	n.started = time.Now()
	if err := os.MkdirAll(n.cfg.DataDir, 0o750); err != nil {
		return fmt.Errorf("create data dir %s: %w", n.cfg.DataDir, err)
	}
	pullCommands := n.uplink != nil && n.cfg.Commands.On()
	if len(n.cfg.Streams) > 0 || n.mqtt != nil || pullCommands {
		st, err := store.Open(filepath.Join(n.cfg.DataDir, storeFile), store.Options{Logger: n.log.With("component", "store")})
		if err != nil {
			return err
		}
		defer st.Close()
		n.store = st
	}
	if len(n.cfg.Streams) > 0 {
		var link stream.Link = noLink{}
		if n.uplink != nil {
			link = n.uplink
		}
		var err error
		if n.streams, err = stream.New(n.cfg.Streams, n.device, n.store, n.nats, link, n.log); err != nil {
			return err
		}
	}
	if n.mqtt != nil {
		var err error
		if n.sessions, err = n.store.Table(sessionsTable); err != nil {
			return err
		}
	}
	if pullCommands {
		var err error
		if n.commands, err = downlink.New(n.cfg.Commands, n.device, n.store, n.nats, n.uplink, n.log); err != nil {
			return err
		}
	}
	// The parts run under their own context, so that the broker can stop
	// first: what it has accepted reaches NATS and the streams before they
	// stop.
	parts, stopParts := context.WithCancel(context.Background())
	defer stopParts()
	done := make(chan error, 1)
	go func() { done <- n.nats.Run(parts) }()
	select {
	case <-n.nats.Ready():
	case err := <-done:
		return err
	}
	streamsDone := make(chan error, 1)
	if n.streams != nil {
		go func() { streamsDone <- n.streams.Run(parts) }()
	} else {
		streamsDone <- nil
	}
	commandsDone := make(chan error, 1)
	if n.commands != nil {
		go func() { commandsDone <- n.commands.Run(parts) }()
	} else {
		commandsDone <- nil
	}
	uplinkDone := make(chan error, 1)
	if n.uplink != nil {
		// Local clients are served whether or not the hub is reachable:
		// the leaf is ready once its own listener is.
		go func() { uplinkDone <- n.uplink.Run(parts) }()
	} else {
		uplinkDone <- nil
	}
	stopAll := func(err error) error {
		// The agent reports through the uplink: it stops first.
		n.firmware.stop()
		stopParts()
		if e := <-done; err == nil {
			err = e
		}
		<-uplinkDone
		<-streamsDone
		if e := <-commandsDone; err == nil {
			err = e
		}
		return err
	}
	if err := n.startFirmware(); err != nil {
		return stopAll(err)
	}
	stopServing, err := n.serveLocalFirmware()
	if err != nil {
		return stopAll(err)
	}
	defer stopServing()
	mqttCtx, stopMQTT := context.WithCancel(context.Background())
	defer stopMQTT()
	mqttDone := make(chan error, 1)
	if n.mqtt != nil {
		go func() { mqttDone <- n.mqtt.Run(mqttCtx) }()
		select {
		case <-n.mqtt.Ready():
		case err := <-mqttDone:
			return stopAll(err)
		}
	}
	stopMonitor := n.startMonitor()
	defer stopMonitor()
	attrs := []any{"server_name", n.cfg.ServerName, "device", n.device, "nats", n.NATSURL(), "data_dir", n.cfg.DataDir, "uplink", n.cfg.Uplink.URLs}
	if n.mqtt != nil {
		attrs = append(attrs, "mqtt", n.mqtt.Addr())
	}
	if u := n.MonitorURL(); u != "" {
		attrs = append(attrs, "monitor", u)
	}
	stopDevice := n.startDevice()
	beatCtx, stopBeat := context.WithCancel(context.Background())
	beatDone := make(chan struct{})
	if n.uplink != nil && n.cfg.Uplink.Credentials != "" {
		go func() {
			defer close(beatDone)
			n.runHeartbeat(beatCtx, n.nats.NewInternal("heartbeat"), n.cfg.Heartbeat.Std())
		}()
	} else {
		close(beatDone)
	}
	n.log.Info("leaf ready", attrs...)
	close(n.ready)
	err = nil
	restart := false
	select {
	case <-ctx.Done():
	case err = <-done:
		done <- err // for stopAll
		err = nil
	case err = <-mqttDone:
		mqttDone <- err
		err = nil
	case <-n.firmware.restarting():
		// A self-update swapped the binary: the service manager starts
		// the new one.
		restart = true
	}
	stopBeat()
	<-beatDone
	stopDevice()
	if n.mqtt != nil {
		stopMQTT()
		err = <-mqttDone
	}
	if err = stopAll(err); err == nil && restart {
		err = ErrRestart
	}
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
