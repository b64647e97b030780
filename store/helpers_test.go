package store

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"go.etcd.io/bbolt"

	"github.com/canopy-iot/canopy/store/internal/layout"
)

// openStore opens the store at path (a fresh file in a temporary directory
// when path is empty). Cleanup closes it and checks the file.
func openStore(tb testing.TB, path string, opts Options) *Store {
	tb.Helper()
	if path == "" {
		path = filepath.Join(tb.TempDir(), "store.db")
	}
	s, err := Open(path, opts)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := s.Close(); err != nil {
			tb.Errorf("close: %v", err)
		}
		checkFile(tb, path)
	})
	return s
}

// openLog opens a log and fails the test on error.
func openLog(tb testing.TB, s *Store, name string, lim Limits) *Log {
	tb.Helper()
	l, err := s.Log(name, lim)
	if err != nil {
		tb.Fatal(err)
	}
	return l
}

// checkFile checks a closed store file: bbolt's own consistency check
// (every page reachable once, no page both used and free), then the
// store's invariants for every log: records without gaps ending at or
// below Last, counts and bytes as in the state, cursors not beyond Last and
// the acknowledgement floor equal to the slowest cursor.
func checkFile(tb testing.TB, path string) {
	tb.Helper()
	if err := verifyFile(path); err != nil {
		tb.Errorf("store file %s: %v", path, err)
	}
}

func verifyFile(path string) error {
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{ReadOnly: true, Timeout: 5 * time.Second})
	if err != nil {
		return err
	}
	defer db.Close()
	return db.View(func(tx *bbolt.Tx) error {
		var errs []error
		for err := range tx.Check() {
			errs = append(errs, err)
		}
		logs := tx.Bucket(bucketLogs)
		if logs == nil {
			return errors.Join(append(errs, errors.New("no logs bucket"))...)
		}
		err := logs.ForEachBucket(func(name []byte) error {
			if err := verifyLog(logs.Bucket(name)); err != nil {
				errs = append(errs, fmt.Errorf("log %s: %w", name, err))
			}
			return nil
		})
		errs = append(errs, err)
		if tables := tx.Bucket(bucketTables); tables != nil {
			errs = append(errs, verifyTables(tables))
		}
		return errors.Join(errs...)
	})
}

// verifyTables checks that the tables bucket holds only tables, and those
// only keys and values within the bounds Put enforces.
func verifyTables(tables *bbolt.Bucket) error {
	return tables.ForEach(func(name, _ []byte) error {
		tb := tables.Bucket(name)
		if tb == nil {
			return fmt.Errorf("tables: %q is a value, not a table", name)
		}
		return tb.ForEach(func(k, v []byte) error {
			switch {
			case v == nil:
				return fmt.Errorf("table %s: %q is a bucket", name, k)
			case len(k) == 0 || len(k) > MaxKeyLen:
				return fmt.Errorf("table %s: key of %d bytes", name, len(k))
			case len(v) > MaxValueLen:
				return fmt.Errorf("table %s: %q holds %d bytes", name, k, len(v))
			}
			return nil
		})
	})
}

func verifyLog(lb *bbolt.Bucket) error {
	v := lb.Get(keyState)
	if v == nil {
		return errors.New("no state")
	}
	st, err := layout.ParseState(v)
	if err != nil {
		return err
	}
	var (
		msgs, bytes, prev uint64
		lastAt            int64
	)
	err = lb.Bucket(bucketMsgs).ForEach(func(k, v []byte) error {
		seq, err := layout.Seq(k)
		if err != nil {
			return err
		}
		at, data, err := layout.ParseRecord(v)
		if err != nil {
			return err
		}
		if prev != 0 && seq != prev+1 {
			return fmt.Errorf("record %d follows %d", seq, prev)
		}
		if at < lastAt {
			return fmt.Errorf("record %d appended at %d, before its predecessor (%d)", seq, at, lastAt)
		}
		prev, lastAt = seq, at
		msgs++
		bytes += uint64(len(data))
		return nil
	})
	if err != nil {
		return err
	}
	if prev > st.Last {
		return fmt.Errorf("record %d beyond last sequence %d", prev, st.Last)
	}
	if msgs > 0 && prev != st.Last {
		return fmt.Errorf("last record %d, last sequence %d", prev, st.Last)
	}
	if msgs != st.Msgs || bytes != st.Bytes {
		return fmt.Errorf("%d records of %d bytes, state says %d of %d", msgs, bytes, st.Msgs, st.Bytes)
	}
	if st.Acked > st.Last {
		return fmt.Errorf("ack floor %d beyond last sequence %d", st.Acked, st.Last)
	}
	minAck, n := ^uint64(0), 0
	err = lb.Bucket(bucketAcks).ForEach(func(k, v []byte) error {
		a, err := layout.ParseUint64(v)
		if err != nil {
			return err
		}
		if a > st.Last {
			return fmt.Errorf("consumer %s acked %d, beyond last sequence %d", k, a, st.Last)
		}
		minAck, n = min(minAck, a), n+1
		return nil
	})
	if err != nil {
		return err
	}
	if n > 0 && minAck != st.Acked {
		return fmt.Errorf("ack floor %d, slowest consumer at %d", st.Acked, minAck)
	}
	return nil
}

// fakeClock is a settable Options.Now.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// readAll returns the log's records from seq 1 on, as seq → payload.
func readAll(tb testing.TB, l *Log) map[uint64][]byte {
	tb.Helper()
	out := make(map[uint64][]byte)
	err := l.Read(0, 0, func(seq uint64, _ time.Time, data []byte) error {
		out[seq] = bytes.Clone(data)
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	return out
}

// seqs returns the sequences Read delivers from 0, in order.
func seqs(tb testing.TB, l *Log) []uint64 {
	tb.Helper()
	var out []uint64
	err := l.Read(0, 0, func(seq uint64, _ time.Time, _ []byte) error {
		out = append(out, seq)
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	return out
}

// quiet options for tests that reason about exactly what the store
// deletes: nothing happens behind their back.
func quiet(o Options) Options {
	o.noBackground = true
	return o
}

// payload returns a recognizable payload.
func payload(format string, args ...any) []byte { return []byte(fmt.Sprintf(format, args...)) }

func fileSize(tb testing.TB, path string) int64 {
	tb.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		tb.Fatal(err)
	}
	return fi.Size()
}
