package mqtt

import (
	"log/slog"
	"time"

	"github.com/canopy-iot/canopy/internal/logging"
)

// warnEvery logs a warning that a misbehaving client could repeat
// thousands of times a second at most every warnInterval, with the number
// suppressed meanwhile.
type warnEvery struct {
	log   *slog.Logger
	every logging.Every
}

const warnInterval = 10 * time.Second

func (w *warnEvery) warn(msg string, args ...any) {
	ok, suppressed := w.every.Allow()
	if !ok {
		return
	}
	if suppressed > 0 {
		args = append(args, "suppressed", suppressed)
	}
	w.log.Warn(msg, args...)
}
