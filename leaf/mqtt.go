package leaf

import (
	"errors"
	"fmt"

	"github.com/canopy-iot/canopy/leaf/natsd"
	"github.com/canopy-iot/canopy/mqtt"
	"github.com/canopy-iot/canopy/store"
)

// The MQTT broker is made in New, so that a bad users file or certificate
// fails at start-up checks, but the store and the streams it writes to are
// opened in Run: these adapters reach them once they exist (before the
// broker serves).

// natsBridge is the broker's view of the local NATS server.
type natsBridge struct{ in *natsd.Internal }

func (b natsBridge) Publish(subject, reply, hdr, payload []byte) {
	b.in.Publish(subject, reply, hdr, payload)
}

func (b natsBridge) Subscribe(subject, queue string, fn func(subject, reply, hdr, payload []byte)) (func(), error) {
	return b.in.Subscribe(subject, queue, fn)
}

// nodeStreams is the broker's view of the leaf streams.
type nodeStreams struct{ n *Node }

func (s nodeStreams) Store(subject, hdr, payload []byte, wait bool) (bool, error) {
	if s.n.streams == nil {
		return false, nil
	}
	taken, err := s.n.streams.Store(subject, hdr, payload, wait)
	if errors.Is(err, store.ErrFull) || errors.Is(err, store.ErrDiskFull) {
		err = fmt.Errorf("%w: %w", mqtt.ErrStreamFull, err)
	}
	return taken, err
}

// nodeSessions is the broker's view of its table in the store.
type nodeSessions struct{ n *Node }

func (s nodeSessions) Put(key string, value []byte) error { return s.n.sessions.Put(key, value) }
func (s nodeSessions) Delete(key string) error            { return s.n.sessions.Delete(key) }
func (s nodeSessions) DeletePrefix(prefix string) error   { return s.n.sessions.DeletePrefix(prefix) }
func (s nodeSessions) Range(prefix string, fn func(key string, value []byte) error) error {
	return s.n.sessions.Range(prefix, fn)
}

// sessionsTable names the broker's table in the store.
const sessionsTable = "mqtt"
