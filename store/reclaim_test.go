package store

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/canopy-iot/canopy/internal/wait"
)

// fill appends n records of size bytes in batches and returns the first
// sequence.
func fill(tb testing.TB, l *Log, n, size int) uint64 {
	tb.Helper()
	var first uint64
	batch := make([][]byte, 0, 500)
	for i := 0; i < n; i += len(batch) {
		batch = batch[:0]
		for j := i; j < min(n, i+cap(batch)); j++ {
			batch = append(batch, bytes.Repeat([]byte{byte(j)}, size))
		}
		f, err := l.AppendBatch(batch)
		if err != nil {
			tb.Fatal(err)
		}
		if first == 0 {
			first = f
		}
	}
	return first
}

func TestReclaimShrinksAndKeepsEverything(t *testing.T) {
	path := filepath.Join(t.TempDir(), "store.db")
	s := openStore(t, path, quiet(Options{}))
	l := openLog(t, s, "l", Limits{})
	if err := l.Consumer("up"); err != nil {
		t.Fatal(err)
	}
	other := openLog(t, s, "other", Limits{})
	fill(t, other, 100, 100)
	fill(t, l, 20000, 1000)
	full := fileSize(t, path)
	if err := l.Ack("up", 19000); err != nil {
		t.Fatal(err)
	}
	if err := l.Compact(); err != nil {
		t.Fatal(err)
	}
	if got := fileSize(t, path); got != full {
		t.Errorf("deleting changed the file size from %d to %d; bbolt does not shrink", full, got)
	}
	if st := s.Stats(); st.FreeBytes < full/2 {
		t.Errorf("after deleting 95%%: %+v", st)
	}
	before := readAll(t, l)

	// Appends go on while the file is rewritten.
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		appended = map[uint64][]byte{}
	)
	for w := range 4 {
		wg.Go(func() {
			for i := range 50 {
				p := payload("during reclaim %d %d", w, i)
				seq, err := l.Append(p)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				appended[seq] = p
				mu.Unlock()
			}
		})
	}
	if err := s.Reclaim(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	small := fileSize(t, path)
	t.Logf("file: %d bytes full, %d after reclaim", full, small)
	if small > full/4 {
		t.Errorf("reclaim left %d of %d bytes", small, full)
	}
	if st := s.Stats(); st.Reclaims != 1 {
		t.Errorf("stats: %+v", st)
	}
	if _, err := os.Stat(path + reclaimTemp); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("temporary copy left behind: %v", err)
	}
	check := func(l, other *Log) {
		t.Helper()
		after := readAll(t, l)
		for seq, p := range before {
			if !bytes.Equal(after[seq], p) {
				t.Fatalf("record %d lost or changed", seq)
			}
		}
		for seq, p := range appended {
			if !bytes.Equal(after[seq], p) {
				t.Fatalf("record %d appended during reclaim = %q, want %q", seq, after[seq], p)
			}
		}
		if len(after) != len(before)+len(appended) {
			t.Errorf("%d records, want %d", len(after), len(before)+len(appended))
		}
		if n := len(readAll(t, other)); n != 100 {
			t.Errorf("other log has %d records", n)
		}
	}
	check(l, other)
	st := l.Stats()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, path, quiet(Options{}))
	l = openLog(t, s, "l", Limits{})
	check(l, openLog(t, s, "other", Limits{}))
	if got := l.Stats(); got.LastSeq != st.LastSeq || got.Msgs != st.Msgs || l.Acked("up") != 19000 {
		t.Errorf("after reopen: %+v, want %+v", got, st)
	}
}

func TestReclaimInBackground(t *testing.T) {
	path := filepath.Join(t.TempDir(), "store.db")
	s := openStore(t, path, Options{NoSync: true, ReclaimMinFree: 1 << 20, housekeepEvery: 10 * time.Millisecond})
	l := openLog(t, s, "l", Limits{})
	fill(t, l, 4000, 1000)
	time.Sleep(50 * time.Millisecond) // a few background passes
	if st := s.Stats(); st.Reclaims != 0 {
		t.Fatalf("reclaimed a file without free space: %+v", st)
	}
	full := fileSize(t, path)
	// Lower the limit: most of the file is free now.
	l = openLog(t, s, "l", Limits{MaxMsgs: 10})
	wait.For(t, 10*time.Second, func() error {
		if s.Stats().Reclaims == 0 {
			return errors.New("no reclaim yet")
		}
		return nil
	})
	if got := fileSize(t, path); got >= full {
		t.Errorf("file is %d bytes after reclaim, was %d", got, full)
	}
	if seq, err := l.Append([]byte("after")); err != nil || seq != 4001 {
		t.Errorf("append after background reclaim = %d, %v", seq, err)
	}
}

// A reclaim that a crash interrupted leaves a stale copy; Open removes it.
func TestStaleReclaimCopyRemoved(t *testing.T) {
	path := filepath.Join(t.TempDir(), "store.db")
	if err := os.WriteFile(path+reclaimTemp, []byte("half a copy"), 0o600); err != nil {
		t.Fatal(err)
	}
	openStore(t, path, Options{})
	if _, err := os.Stat(path + reclaimTemp); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stale copy still there: %v", err)
	}
}
