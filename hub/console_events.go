package hub

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"
)

// The console's event stream (GET /api/events, Server-Sent Events):
//
//	event: fleet       the FleetSnapshot, on connect and on every change,
//	                   at most once per eventInterval
//	event: telemetry   TelemetryEvent, every eventInterval while
//	                   telemetry flows
//	: keepalive        every keepaliveInterval, so that proxies keep the
//	                   stream open
//
// One goroutine (consoleEvents.run) computes each event once and hands it
// to every open stream.

const (
	eventInterval     = time.Second
	keepaliveInterval = 15 * time.Second
	// eventWriteTimeout drops a client that stops reading.
	eventWriteTimeout = 30 * time.Second
	// eventQueue is how many events a stream may lag behind before it is
	// closed (the browser reconnects and starts from a fresh snapshot).
	eventQueue = 16
)

// TelemetryEvent is the data of the "telemetry" event: each device's
// messages during the last second and its last numeric value.
type TelemetryEvent struct {
	T       int64           `json:"t"` // unix milliseconds
	Devices []TelemetryRate `json:"devices"`
}

type sseEvent struct {
	name string
	data []byte
}

type consoleEvents struct {
	log      *slog.Logger
	model    *consoleModel // nil: no fleet changes, no telemetry
	snapshot func(time.Time) FleetSnapshot

	mu   sync.Mutex
	subs map[chan sseEvent]struct{}
}

func newConsoleEvents(log *slog.Logger, model *consoleModel, snapshot func(time.Time) FleetSnapshot) *consoleEvents {
	return &consoleEvents{log: log, model: model, snapshot: snapshot, subs: map[chan sseEvent]struct{}{}}
}

func (e *consoleEvents) subscribe() chan sseEvent {
	ch := make(chan sseEvent, eventQueue)
	e.mu.Lock()
	e.subs[ch] = struct{}{}
	e.mu.Unlock()
	return ch
}

func (e *consoleEvents) unsubscribe(ch chan sseEvent) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, ok := e.subs[ch]; ok {
		delete(e.subs, ch)
		close(ch)
	}
}

func (e *consoleEvents) listeners() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.subs)
}

// broadcast queues ev on every stream, closing those too far behind.
func (e *consoleEvents) broadcast(ev sseEvent) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for ch := range e.subs {
		select {
		case ch <- ev:
		default:
			delete(e.subs, ch)
			close(ch)
		}
	}
}

// run produces the events until ctx ends.
func (e *consoleEvents) run(ctx context.Context) {
	var changed <-chan struct{}
	if e.model != nil {
		changed = e.model.changed
	}
	tick := time.NewTicker(eventInterval)
	defer tick.Stop()
	var last []byte // the last snapshot sent, without its time
	var lastSent time.Time
	dirty := false
	sendFleet := func(now time.Time) {
		dirty = false
		lastSent = now
		if e.listeners() == 0 {
			last = nil // a new stream gets its own snapshot anyway
			return
		}
		s := e.snapshot(now)
		s.Server.Now = time.Time{}
		b, err := json.Marshal(s)
		if err != nil || bytes.Equal(b, last) {
			return
		}
		last = b
		s.Server.Now = now.UTC().Truncate(time.Second)
		if b, err = json.Marshal(s); err == nil {
			e.broadcast(sseEvent{name: "fleet", data: b})
		}
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-changed:
			if now := time.Now(); now.Sub(lastSent) >= eventInterval {
				sendFleet(now)
			} else {
				dirty = true
			}
		case now := <-tick.C:
			if dirty {
				sendFleet(now)
			}
			if e.model == nil {
				continue
			}
			// Taken even without listeners, so a new stream does not
			// see a second's worth of counts piled up.
			rates := e.model.takeTelemetry()
			if len(rates) == 0 || e.listeners() == 0 {
				continue
			}
			if b, err := json.Marshal(TelemetryEvent{T: now.UnixMilli(), Devices: rates}); err == nil {
				e.broadcast(sseEvent{name: "telemetry", data: b})
			}
		}
	}
}

func (c *consoleServer) serveEvents(w http.ResponseWriter, r *http.Request) {
	rc := http.NewResponseController(w)
	// The stream outlives the server's read timeout; writes get their
	// own deadline below.
	rc.SetReadDeadline(time.Time{})
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no") // nginx: do not buffer the stream
	ch := c.events.subscribe()
	defer c.events.unsubscribe(ch)
	write := func(ev sseEvent) error {
		rc.SetWriteDeadline(time.Now().Add(eventWriteTimeout))
		var err error
		if ev.name == "" {
			_, err = w.Write([]byte(": keepalive\n\n"))
		} else {
			_, err = fmt.Fprintf(w, "event: %s\ndata: %s\n\n", ev.name, ev.data)
		}
		if err != nil {
			return err
		}
		return rc.Flush()
	}
	first, err := json.Marshal(c.snapshot(time.Now()))
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	if write(sseEvent{name: "fleet", data: first}) != nil {
		return
	}
	keepalive := time.NewTicker(keepaliveInterval)
	defer keepalive.Stop()
	for {
		var ev sseEvent
		select {
		case <-r.Context().Done():
			return
		case <-c.quit:
			return
		case e, ok := <-ch:
			if !ok {
				return
			}
			ev = e
		case <-keepalive.C:
		}
		if write(ev) != nil {
			return
		}
	}
}
