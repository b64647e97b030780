package appliance

import (
	"io"
	"log/slog"
)

// NewLogger returns the root logger of a binary, writing text lines to w at
// the level held in level (which a reload may change).
func NewLogger(w io.Writer, level *slog.LevelVar) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level, ReplaceAttr: levelNames}))
}

// levelNames prints the trace level as TRACE instead of slog's "DEBUG-4".
func levelNames(_ []string, a slog.Attr) slog.Attr {
	if a.Key == slog.LevelKey {
		if l, ok := a.Value.Any().(slog.Level); ok && l < slog.LevelDebug {
			return slog.String(slog.LevelKey, "TRACE")
		}
	}
	return a
}
