package leaf

import (
	"context"
	"sync"

	"github.com/canopy-iot/canopy/leaf/gpio"
	"github.com/canopy-iot/canopy/leaf/health"
	"github.com/canopy-iot/canopy/leaf/natsd"
)

// The device's own publishers: the GPIO bridge and the health document.
// They publish through an internal client of the local server, and, as
// an internal client's publishes are not offered to the streams (their
// ingest sees network clients' publishes only), also hand each message
// to the streams, like the MQTT bridge does: a stream whose subjects
// cover health or hw.gpio.> keeps them and forwards them to the hub.

// localBus is the GPIO bridge's and the health publisher's view of the
// local server and the streams.
type localBus struct {
	in *natsd.Internal
	n  *Node
}

var (
	_ gpio.Bus   = localBus{}
	_ health.Bus = localBus{}
)

// Publish delivers like a local client's publish (local subscribers,
// MQTT, the hub where it has interest), then appends to the streams whose
// subjects match, without waiting for the disk: the publishers have
// nobody to acknowledge to.
func (b localBus) Publish(subject string, payload []byte) {
	subj := []byte(subject)
	b.in.Publish(subj, nil, nil, payload)
	if s := b.n.streams; s != nil {
		// The only error without waiting is that the streams stopped,
		// which happens after the publishers stopped.
		s.Store(subj, nil, payload, false)
	}
}

func (b localBus) Subscribe(subject string, fn func(subject, reply string, payload []byte)) (func(), error) {
	return b.in.Subscribe(subject, "", func(subj, reply, _, payload []byte) {
		fn(string(subj), string(reply), payload)
	})
}

// newDevice prepares the GPIO bridge and the health publisher that the
// configuration turns on; neither touches anything before Run.
func (n *Node) newDevice() {
	if n.cfg.GPIO.On() {
		n.gpio = gpio.New(n.cfg.GPIO, localBus{n.nats.NewInternal("gpio"), n}, gpio.Options{}, n.log)
	}
	if n.cfg.Health.On() {
		n.health = health.New(n.cfg.Health, n.device, n.cfg.DataDir, localBus{n.nats.NewInternal("health"), n}, n.log)
	}
}

// startDevice starts the GPIO bridge and the health publisher once the
// server and the streams run, and waits until the bridge's pins are set
// up (or found missing) and the first health document is out: what they
// publish at start precedes "leaf ready". The returned function stops
// both and waits for them; they stop before the streams, so what they
// published is kept.
func (n *Node) startDevice() (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	if n.gpio != nil {
		wg.Go(func() {
			if err := n.gpio.Run(ctx); err != nil {
				n.log.Error("GPIO bridge failed", "component", "gpio", "err", err)
			}
		})
		<-n.gpio.Ready()
	}
	if n.health != nil {
		wg.Go(func() { n.health.Run(ctx) })
		<-n.health.Ready()
	}
	return func() {
		cancel()
		wg.Wait()
	}
}
