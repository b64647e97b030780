//go:build linux

package store

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/canopy-iot/canopy/internal/wait"
)

// rssFile is the process's resident file-backed memory, in bytes.
func rssFile(t *testing.T) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) == 3 && f[0] == "RssFile:" {
			kb, err := strconv.ParseInt(f[1], 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatal("no RssFile in /proc/self/status")
	return 0
}

// Reading a large backlog maps the file's pages into the process; the
// store releases them (they stay in the page cache) once enough was read,
// at its next commit, so that its resident memory does not grow with the
// file.
func TestMappedPagesReleased(t *testing.T) {
	s := openStore(t, "", Options{NoSync: true})
	l, err := s.Log("backlog", Limits{})
	if err != nil {
		t.Fatal(err)
	}
	const total = 48 << 20
	rec := bytes.Repeat([]byte("r"), 1024)
	batch := make([][]byte, 256)
	for i := range batch {
		batch[i] = rec
	}
	for range total / (len(rec) * len(batch)) {
		if _, err := l.AppendBatch(batch); err != nil {
			t.Fatal(err)
		}
	}
	// The appends were released along the way; reading everything maps
	// the pages again.
	s.touched.Store(0)
	before := rssFile(t)
	read := 0
	if err := l.Read(1, 0, func(_ uint64, _ time.Time, data []byte) error { read += len(data); return nil }); err != nil {
		t.Fatal(err)
	}
	mapped := rssFile(t)
	if read != total || mapped-before < total/2 {
		t.Fatalf("read %d bytes; resident file pages %d → %d: the read did not map the file", read, before, mapped)
	}
	// A commit gives the committer its turn; it releases the pages
	// after answering the append.
	if _, err := l.Append([]byte("next")); err != nil {
		t.Fatal(err)
	}
	wait.For(t, 5*time.Second, func() error {
		if after := rssFile(t); mapped-after < total/2 {
			return fmt.Errorf("resident file pages %d after the read, %d after the next commit: not released", mapped, after)
		}
		return nil
	})
}
