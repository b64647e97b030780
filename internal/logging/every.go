package logging

import (
	"sync"
	"time"
)

// Every rate-limits a log line that a misbehaving peer or a full disk
// could repeat thousands of times a second: the first occurrence is
// logged, then at most one per Interval, with the number suppressed
// meanwhile. The zero value logs every occurrence; it is safe for
// concurrent use.
type Every struct {
	Interval time.Duration

	mu         sync.Mutex
	last       time.Time
	suppressed int
}

// Allow counts an occurrence. It reports whether to log this one, and how
// many were not logged since the last one that was.
func (e *Every) Allow() (ok bool, suppressed int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	now := time.Now()
	if !e.last.IsZero() && now.Sub(e.last) < e.Interval {
		e.suppressed++
		return false, 0
	}
	suppressed = e.suppressed
	e.last, e.suppressed = now, 0
	return true, suppressed
}
