package mqtt

import (
	"log/slog"
	"sync"
	"time"
)

// warnEvery rate-limits a warning that a misbehaving client could repeat
// thousands of times a second: the first one is logged, then at most one
// every warnInterval, with the number suppressed meanwhile.
type warnEvery struct {
	log *slog.Logger

	mu         sync.Mutex
	last       time.Time
	suppressed int
}

const warnInterval = 10 * time.Second

func (w *warnEvery) warn(msg string, args ...any) {
	w.mu.Lock()
	now := time.Now()
	if now.Sub(w.last) < warnInterval {
		w.suppressed++
		w.mu.Unlock()
		return
	}
	n := w.suppressed
	w.last, w.suppressed = now, 0
	w.mu.Unlock()
	if n > 0 {
		args = append(args, "suppressed", n)
	}
	w.log.Warn(msg, args...)
}
