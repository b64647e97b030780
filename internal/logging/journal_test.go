package logging

import (
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A line written to the stream $JOURNAL_STREAM names has no time= (journald
// stamps it); any other stream keeps it.
func TestJournalLinesHaveNoTime(t *testing.T) {
	dir := t.TempDir()
	journal, err := os.Create(filepath.Join(dir, "journal"))
	if err != nil {
		t.Fatal(err)
	}
	defer journal.Close()
	other, err := os.Create(filepath.Join(dir, "other"))
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	id, ok := fileID(journal)
	if !ok {
		t.Skip("no device and inode for files on this platform")
	}
	cases := []struct {
		name, env string
		w         *os.File
		wantTime  bool
	}{
		{"journal", id, journal, false},
		{"unset", "", journal, true},
		{"redirected", id, other, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Setenv(EnvJournalStream, c.env)
			if err := c.w.Truncate(0); err != nil {
				t.Fatal(err)
			}
			if _, err := c.w.Seek(0, 0); err != nil {
				t.Fatal(err)
			}
			var level slog.LevelVar
			level.Set(LevelTrace)
			New(c.w, &level).Log(t.Context(), LevelTrace, "hello", "n", 1)
			b, err := os.ReadFile(c.w.Name())
			if err != nil {
				t.Fatal(err)
			}
			line := string(b)
			if got := strings.HasPrefix(line, "time="); got != c.wantTime {
				t.Fatalf("time attribute %v, want %v: %q", got, c.wantTime, line)
			}
			if !strings.Contains(line, `level=TRACE msg=hello n=1`) {
				t.Fatalf("line %q", line)
			}
		})
	}
}
