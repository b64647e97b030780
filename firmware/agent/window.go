package agent

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// window is a daily maintenance window in local time, as minutes since
// midnight: [start, end), wrapping midnight when end < start; start ==
// end is the whole day. The zero window (unset) is no window.
type window struct {
	set        bool
	start, end int
}

// parseWindow reads "HH:MM-HH:MM".
func parseWindow(s string) (window, error) {
	from, to, ok := strings.Cut(s, "-")
	if !ok {
		return window{}, fmt.Errorf("maintenance window %q: want HH:MM-HH:MM", clip(s))
	}
	start, err := parseClock(from)
	if err != nil {
		return window{}, fmt.Errorf("maintenance window %q: %w", clip(s), err)
	}
	end, err := parseClock(to)
	if err != nil {
		return window{}, fmt.Errorf("maintenance window %q: %w", clip(s), err)
	}
	return window{set: true, start: start, end: end}, nil
}

func parseClock(s string) (int, error) {
	h, m, ok := strings.Cut(strings.TrimSpace(s), ":")
	hh, herr := strconv.Atoi(h)
	mm, merr := strconv.Atoi(m)
	if !ok || herr != nil || merr != nil || len(h) != 2 || len(m) != 2 || hh < 0 || hh > 23 || mm < 0 || mm > 59 {
		return 0, fmt.Errorf("%q is not a time of day HH:MM (00:00 to 23:59)", clip(s))
	}
	return hh*60 + mm, nil
}

func (w window) zero() bool { return !w.set }

// contains reports whether t (in its own location: the device's local
// time) is inside the window.
func (w window) contains(t time.Time) bool {
	if !w.set {
		return true
	}
	m := t.Hour()*60 + t.Minute()
	switch {
	case w.start == w.end:
		return true
	case w.start < w.end:
		return m >= w.start && m < w.end
	default: // wraps midnight
		return m >= w.start || m < w.end
	}
}
