package store

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

func init() {
	helpers["fsize"] = helperFileSizeLimit
	helpers["tablefsize"] = helperTableFileSizeLimit
}

// mountTmpfs mounts a tmpfs of size bytes on a temporary directory, or
// skips the test when that is not permitted (it needs root, or
// CAP_SYS_ADMIN).
func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size="+size); err != nil {
		t.Skipf("cannot mount a %s tmpfs to fill up (%v): the disk-full test needs root", size, err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, 0); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	return dir
}

// TestDiskFull fills a small file system. The append that does not fit
// must fail with ErrDiskFull (wrapping ENOSPC), everything appended before
// must stay readable, through a reopen, and the file must stay consistent.
// Once acknowledgements free pages, appends work again.
func TestDiskFull(t *testing.T) {
	path := filepath.Join(mountTmpfs(t, "2m"), "store.db")
	s := openStore(t, path, quiet(Options{}))
	l := openLog(t, s, "l", Limits{})
	if err := l.Consumer("up"); err != nil {
		t.Fatal(err)
	}
	var (
		stored  = map[uint64][]byte{}
		fullErr error
	)
	for i := 0; i < 10000 && fullErr == nil; i++ {
		p := bytes.Repeat(payload("%06d", i), 300/6)
		seq, err := l.Append(p)
		if err != nil {
			fullErr = err
			break
		}
		stored[seq] = p
	}
	if !errors.Is(fullErr, ErrDiskFull) || !errors.Is(fullErr, syscall.ENOSPC) {
		t.Fatalf("append on a full file system: %v, want ErrDiskFull wrapping ENOSPC", fullErr)
	}
	t.Logf("%d records stored, then: %v", len(stored), fullErr)
	// Still full, still the same error; a batch fails as a whole.
	if _, err := l.AppendBatch([][]byte{make([]byte, 4000), make([]byte, 4000)}); !errors.Is(err, ErrDiskFull) {
		t.Errorf("second append: %v", err)
	}
	st := l.Stats()
	if st.Msgs != uint64(len(stored)) || st.LastSeq != uint64(len(stored)) {
		t.Errorf("stats after disk full: %+v, %d records stored", st, len(stored))
	}
	check := func(l *Log) {
		t.Helper()
		got := readAll(t, l)
		if len(got) != len(stored) {
			t.Errorf("%d records readable, %d stored", len(got), len(stored))
		}
		for seq, p := range stored {
			if !bytes.Equal(got[seq], p) {
				t.Fatalf("record %d changed", seq)
			}
		}
	}
	check(l)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	checkFile(t, path)

	s = openStore(t, path, quiet(Options{}))
	l = openLog(t, s, "l", Limits{})
	check(l)
	// Acknowledging most records frees pages inside the file, which later
	// appends reuse without growing it.
	if err := l.Ack("up", st.LastSeq-10); err != nil {
		t.Fatalf("ack on a full disk: %v", err)
	}
	if err := l.Compact(); err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		if _, err := l.Append(bytes.Repeat([]byte{'z'}, 300)); err != nil {
			t.Fatalf("append %d after freeing space: %v", i, err)
		}
	}
}

// helperFileSizeLimit appends under a 1MiB RLIMIT_FSIZE until an append
// fails, printing "a <seq>" for each append that returned, then the error
// ("err <is ErrDiskFull> <text>"), then how many records it can still read.
func helperFileSizeLimit(path, _ string) int {
	// Writing past the limit raises SIGXFSZ, which would kill the process
	// before the write could return EFBIG.
	signal.Ignore(syscall.SIGXFSZ)
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &syscall.Rlimit{Cur: 1 << 20, Max: 1 << 20}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	s, err := Open(path, Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	l, err := s.Log("l", Limits{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println("ready")
	for i := 0; ; i++ {
		seq, err := l.Append(bytes.Repeat(payload("%06d", i), 50))
		if err != nil {
			fmt.Printf("err %t %v\n", errors.Is(err, ErrDiskFull), err)
			break
		}
		fmt.Printf("a %d\n", seq)
	}
	n := 0
	if err := l.Read(0, 0, func(uint64, time.Time, []byte) error { n++; return nil }); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Printf("read %d\n", n)
	if err := s.Close(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// helperOutput runs a helper to its end and returns what it printed.
func helperOutput(t *testing.T, name, path string) []byte {
	t.Helper()
	cmd, _, out := startHelper(t, name, path, "")
	all, err := io.ReadAll(out)
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("helper: %v\n%s", err, all)
	}
	return all
}

// TestFileSizeLimit is the disk-full test without root: a file size
// limit makes writes fail with EFBIG, which the store reports as
// ErrDiskFull just like ENOSPC.
func TestFileSizeLimit(t *testing.T) {
	path := filepath.Join(t.TempDir(), "store.db")
	all := helperOutput(t, "fsize", path)
	var (
		appended []uint64
		full     bool
		read     = -1
	)
	for line := range bytes.Lines(all) {
		var seq uint64
		switch {
		case bytes.HasPrefix(line, []byte("a ")):
			if _, err := fmt.Sscanf(string(line), "a %d", &seq); err != nil {
				t.Fatal(err)
			}
			appended = append(appended, seq)
		case bytes.HasPrefix(line, []byte("err ")):
			t.Logf("append %d: %s", len(appended)+1, line[4:])
			full = bytes.HasPrefix(line, []byte("err true "))
		case bytes.HasPrefix(line, []byte("read ")):
			if _, err := fmt.Sscanf(string(line), "read %d", &read); err != nil {
				t.Fatal(err)
			}
		}
	}
	if !full {
		t.Fatal("the append over the file size limit did not fail with ErrDiskFull")
	}
	if read != len(appended) || len(appended) == 0 {
		t.Errorf("%d appends returned, %d records readable after the failure", len(appended), read)
	}
	s := openStore(t, path, quiet(Options{}))
	l := openLog(t, s, "l", Limits{})
	got := readAll(t, l)
	for i, seq := range appended {
		if want := bytes.Repeat(payload("%06d", i), 50); !bytes.Equal(got[seq], want) {
			t.Fatalf("record %d after reopen = %.20q, want %.20q", seq, got[seq], want)
		}
	}
	if len(got) != len(appended) {
		t.Errorf("%d records after reopen, %d appended", len(got), len(appended))
	}
}

// helperTableFileSizeLimit is helperFileSizeLimit for a table: it puts
// new keys under a 1MiB RLIMIT_FSIZE until a Put fails, printing "p <i>"
// for each Put that returned, then the error, then how many keys it can
// still read.
func helperTableFileSizeLimit(path, _ string) int {
	signal.Ignore(syscall.SIGXFSZ)
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &syscall.Rlimit{Cur: 1 << 20, Max: 1 << 20}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	s, err := Open(path, Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	tb, err := s.Table("t")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println("ready")
	for i := 0; ; i++ {
		if err := tb.Put(fmt.Sprintf("k%06d", i), bytes.Repeat(payload("%06d", i), 50)); err != nil {
			fmt.Printf("err %t %v\n", errors.Is(err, ErrDiskFull), err)
			break
		}
		fmt.Printf("p %d\n", i)
	}
	n := 0
	if err := tb.Range("", func(string, []byte) error { n++; return nil }); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Printf("read %d\n", n)
	if err := s.Close(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// TestTableFileSizeLimit: a Put that does not fit fails with ErrDiskFull,
// and every Put that returned before it is still there after a reopen.
func TestTableFileSizeLimit(t *testing.T) {
	path := filepath.Join(t.TempDir(), "store.db")
	all := helperOutput(t, "tablefsize", path)
	var (
		put  int
		full bool
		read = -1
	)
	for line := range bytes.Lines(all) {
		switch {
		case bytes.HasPrefix(line, []byte("p ")):
			put++
		case bytes.HasPrefix(line, []byte("err ")):
			t.Logf("put %d: %s", put+1, line[4:])
			full = bytes.HasPrefix(line, []byte("err true table t: put \"k"))
		case bytes.HasPrefix(line, []byte("read ")):
			if _, err := fmt.Sscanf(string(line), "read %d", &read); err != nil {
				t.Fatal(err)
			}
		}
	}
	if !full {
		t.Fatal("the put over the file size limit did not fail with ErrDiskFull naming the table and key")
	}
	if read != put || put == 0 {
		t.Errorf("%d puts returned, %d keys readable after the failure", put, read)
	}
	s := openStore(t, path, quiet(Options{}))
	tb := openTable(t, s, "t")
	for i := range put {
		v, ok, err := tb.Get(fmt.Sprintf("k%06d", i))
		if want := bytes.Repeat(payload("%06d", i), 50); !ok || err != nil || !bytes.Equal(v, want) {
			t.Fatalf("key %d after reopen = %.20q, %t, %v", i, v, ok, err)
		}
	}
	if n := len(tableContents(t, tb, "")); n != put {
		t.Errorf("%d keys after reopen, %d put", n, put)
	}
}
