// Package logging holds what Canopy's binaries share about logs: the level
// names of the configuration files (trace included, below slog's debug)
// and the root text logger. Any package may import it.
package logging

import (
	"fmt"
	"io"
	"log/slog"
)

// LevelTrace is below slog.LevelDebug: protocol traces.
const LevelTrace = slog.LevelDebug - 4

// Levels are the names accepted by log_level settings.
var Levels = []string{"trace", "debug", "info", "warn", "error"}

// ParseLevel maps a configured level name ("" is info) to its slog level.
func ParseLevel(name string) (slog.Level, error) {
	switch name {
	case "trace":
		return LevelTrace, nil
	case "debug":
		return slog.LevelDebug, nil
	case "info", "":
		return slog.LevelInfo, nil
	case "warn":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("unknown log level %q", name)
}

// New returns a root logger writing text lines to w at the level held in
// level, which a reload may change.
func New(w io.Writer, level *slog.LevelVar) *slog.Logger {
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
