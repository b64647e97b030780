package hub

import (
	"context"
	"fmt"
	"github.com/canopy-iot/canopy/internal/logging"
	"log/slog"
	"sync"
)

// natsLogger routes nats-server's log calls into slog. nats-server calls
// Fatalf where it would otherwise exit the process (a listener that cannot
// bind, a corrupt JetStream store); the first such error is kept and Run
// returns it, so only main decides to exit.
type natsLogger struct {
	log   *slog.Logger
	once  sync.Once
	fatal chan error // buffered, capacity 1
}

func newNATSLogger(log *slog.Logger) *natsLogger {
	return &natsLogger{log: log.With("component", "nats"), fatal: make(chan error, 1)}
}

func (l *natsLogger) emit(level slog.Level, format string, v []any) {
	if !l.log.Enabled(context.Background(), level) {
		return
	}
	l.log.Log(context.Background(), level, fmt.Sprintf(format, v...))
}

func (l *natsLogger) Noticef(format string, v ...any) { l.emit(slog.LevelInfo, format, v) }
func (l *natsLogger) Warnf(format string, v ...any)   { l.emit(slog.LevelWarn, format, v) }
func (l *natsLogger) Errorf(format string, v ...any)  { l.emit(slog.LevelError, format, v) }
func (l *natsLogger) Debugf(format string, v ...any)  { l.emit(slog.LevelDebug, format, v) }
func (l *natsLogger) Tracef(format string, v ...any)  { l.emit(logging.LevelTrace, format, v) }

func (l *natsLogger) Fatalf(format string, v ...any) {
	err := fmt.Errorf(format, v...)
	l.log.Error("nats-server fatal error", "err", err)
	l.once.Do(func() { l.fatal <- err })
}
