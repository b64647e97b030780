// Package logging holds what Canopy's binaries share about logs: the level
// names of the configuration files (trace included, below slog's debug)
// and the root text logger. Any package may import it.
package logging

import (
	"fmt"
	"io"
	"log/slog"
	"os"
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
// level, which a reload may change. Lines written to the journal (see
// ToJournal) carry no time: journald stamps each line itself.
func New(w io.Writer, level *slog.LevelVar) *slog.Logger {
	replace := levelNames
	if ToJournal(w) {
		replace = func(groups []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey && len(groups) == 0 {
				return slog.Attr{}
			}
			return levelNames(groups, a)
		}
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level, ReplaceAttr: replace}))
}

// EnvJournalStream is set by systemd for a service whose standard output
// or error is connected to the journal: "<device>:<inode>" of that stream.
const EnvJournalStream = "JOURNAL_STREAM"

// ToJournal reports whether w is the journal stream systemd connected the
// process to: an *os.File whose device and inode are those in
// $JOURNAL_STREAM (a redirected stream of a process that inherited the
// variable is not).
func ToJournal(w io.Writer) bool {
	v := os.Getenv(EnvJournalStream)
	f, ok := w.(*os.File)
	if v == "" || !ok {
		return false
	}
	id, ok := fileID(f)
	return ok && id == v
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
