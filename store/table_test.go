package store

import (
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// openTable opens a table and fails the test on error.
func openTable(tb testing.TB, s *Store, name string) *Table {
	tb.Helper()
	t, err := s.Table(name)
	if err != nil {
		tb.Fatal(err)
	}
	return t
}

// tableContents returns every key and value of t whose key starts with
// prefix.
func tableContents(tb testing.TB, t *Table, prefix string) map[string]string {
	tb.Helper()
	out := make(map[string]string)
	err := t.Range(prefix, func(k string, v []byte) error {
		out[k] = string(v)
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	return out
}

func put(tb testing.TB, t *Table, key, value string) {
	tb.Helper()
	if err := t.Put(key, []byte(value)); err != nil {
		tb.Fatal(err)
	}
}

func TestTablePutGetDelete(t *testing.T) {
	s := openStore(t, "", quiet(Options{}))
	tb := openTable(t, s, "sessions")
	put(t, tb, "a", "1")
	put(t, tb, "b", "2")
	put(t, tb, "a", "3") // overwrite
	put(t, tb, "empty", "")

	for _, tc := range []struct {
		key   string
		value string
		ok    bool
	}{
		{"a", "3", true},
		{"b", "2", true},
		{"empty", "", true},
		{"missing", "", false},
	} {
		v, ok, err := tb.Get(tc.key)
		if err != nil || ok != tc.ok || string(v) != tc.value {
			t.Errorf("Get(%q) = %q, %t, %v; want %q, %t", tc.key, v, ok, err, tc.value, tc.ok)
		}
	}

	// Get returns a copy, and Put does not keep the caller's slice.
	v, _, _ := tb.Get("a")
	v[0] = 'x'
	buf := []byte("4")
	if err := tb.Put("c", buf); err != nil {
		t.Fatal(err)
	}
	buf[0] = 'y'
	if got := tableContents(t, tb, ""); got["a"] != "3" || got["c"] != "4" {
		t.Errorf("stored values changed through caller slices: %q", got)
	}

	if err := tb.Delete("b"); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := tb.Get("b"); ok {
		t.Error("b still there after Delete")
	}
	// Deleting a missing key, or putting what is stored, is not an error
	// and costs no commit.
	before := s.Stats().Commits
	if err := tb.Delete("b"); err != nil {
		t.Errorf("delete missing key: %v", err)
	}
	if err := tb.DeletePrefix("nothing/"); err != nil {
		t.Errorf("delete missing prefix: %v", err)
	}
	put(t, tb, "a", "3")
	if n := s.Stats().Commits - before; n != 0 {
		t.Errorf("writes that changed nothing took %d commits", n)
	}
	want := map[string]string{"a": "3", "c": "4", "empty": ""}
	if got := tableContents(t, tb, ""); !maps.Equal(got, want) {
		t.Errorf("table = %q, want %q", got, want)
	}
}

func TestTableRange(t *testing.T) {
	s := openStore(t, "", quiet(Options{}))
	tb := openTable(t, s, "t")
	keys := []string{"s/b/2", "s/a/1", "s/a/2", "s/a", "r/x", "s/a/10", "s0", "\xff"}
	for _, k := range keys {
		put(t, tb, k, "v:"+k)
	}
	other := openTable(t, s, "other")
	put(t, other, "s/a/1", "elsewhere")

	for _, tc := range []struct {
		prefix string
		want   []string
	}{
		{"", []string{"r/x", "s/a", "s/a/1", "s/a/10", "s/a/2", "s/b/2", "s0", "\xff"}},
		{"s/", []string{"s/a", "s/a/1", "s/a/10", "s/a/2", "s/b/2"}},
		{"s/a/", []string{"s/a/1", "s/a/10", "s/a/2"}},
		{"s/a/1", []string{"s/a/1", "s/a/10"}},
		{"q", nil},
		{"\xff\xff", nil},
	} {
		var got []string
		err := tb.Range(tc.prefix, func(k string, v []byte) error {
			if string(v) != "v:"+k {
				t.Errorf("Range(%q): %q holds %q", tc.prefix, k, v)
			}
			got = append(got, k)
			return nil
		})
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("Range(%q) = %q, %v; want %q", tc.prefix, got, err, tc.want)
		}
	}

	// fn's error stops the range and comes back unchanged.
	stop := errors.New("stop")
	n := 0
	err := tb.Range("", func(string, []byte) error {
		n++
		if n == 2 {
			return stop
		}
		return nil
	})
	if err != stop || n != 2 {
		t.Errorf("Range stopped after %d calls with %v", n, err)
	}
}

// Range runs fn outside any transaction, over more keys than one chunk
// holds: fn may write to the table it ranges over.
func TestTableRangeWhileWriting(t *testing.T) {
	s := openStore(t, "", quiet(Options{NoSync: true}))
	tb := openTable(t, s, "t")
	const n = 3*readChunkRecords + 7
	for i := range n {
		put(t, tb, fmt.Sprintf("k/%05d", i), fmt.Sprint(i))
	}
	seen := 0
	err := tb.Range("k/", func(k string, v []byte) error {
		if want := fmt.Sprintf("k/%05d", seen); k != want {
			return fmt.Errorf("key %q, want %q", k, want)
		}
		seen++
		if err := tb.Delete(k); err != nil {
			return err
		}
		return tb.Put("z/"+k, v)
	})
	if err != nil || seen != n {
		t.Fatalf("Range saw %d of %d keys: %v", seen, n, err)
	}
	if got := tableContents(t, tb, "k/"); len(got) != 0 {
		t.Errorf("%d keys left under k/", len(got))
	}
	if got := tableContents(t, tb, "z/"); len(got) != n || got["z/k/00042"] != "42" {
		t.Errorf("%d keys moved to z/, z/k/00042 = %q", len(got), got["z/k/00042"])
	}
}

func TestTableDeletePrefix(t *testing.T) {
	s := openStore(t, "", quiet(Options{}))
	tb := openTable(t, s, "sessions")
	for i := range 500 {
		put(t, tb, fmt.Sprintf("c/dev1/%d", i), "x")
	}
	put(t, tb, "c/dev10/1", "keep")
	put(t, tb, "c/dev", "keep")
	put(t, tb, "r/t", "keep")

	before := s.Stats().Commits
	if err := tb.DeletePrefix("c/dev1/"); err != nil {
		t.Fatal(err)
	}
	if n := s.Stats().Commits - before; n != 1 {
		t.Errorf("DeletePrefix took %d commits, want 1", n)
	}
	want := map[string]string{"c/dev10/1": "keep", "c/dev": "keep", "r/t": "keep"}
	if got := tableContents(t, tb, ""); !maps.Equal(got, want) {
		t.Errorf("after DeletePrefix: %q, want %q", got, want)
	}
	if err := tb.DeletePrefix(""); err != nil {
		t.Fatal(err)
	}
	if got := tableContents(t, tb, ""); len(got) != 0 {
		t.Errorf("DeletePrefix(\"\") left %q", got)
	}
}

func TestTablePersists(t *testing.T) {
	path := filepath.Join(t.TempDir(), "store.db")
	s := openStore(t, path, quiet(Options{}))
	tb := openTable(t, s, "t")
	// A log of the same name is another thing.
	l := openLog(t, s, "t", Limits{})
	if _, err := l.Append([]byte("record")); err != nil {
		t.Fatal(err)
	}
	put(t, tb, "gone", "x")
	put(t, tb, "k", "v")
	if err := tb.Delete("gone"); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	checkFile(t, path)

	s = openStore(t, path, quiet(Options{}))
	tb = openTable(t, s, "t")
	if got := tableContents(t, tb, ""); !maps.Equal(got, map[string]string{"k": "v"}) {
		t.Errorf("after reopen: %q", got)
	}
	if got := readAll(t, openLog(t, s, "t", Limits{})); string(got[1]) != "record" {
		t.Errorf("log t after reopen: %q", got[1])
	}
	// Two handles on one table see the same data.
	put(t, openTable(t, s, "t"), "k2", "v2")
	if v, ok, err := tb.Get("k2"); !ok || string(v) != "v2" || err != nil {
		t.Errorf("Get through the other handle = %q, %t, %v", v, ok, err)
	}
}

// Puts from many goroutines, mixed with appends, share transactions.
func TestTableGroupCommit(t *testing.T) {
	path := filepath.Join(t.TempDir(), "store.db")
	s := openStore(t, path, quiet(Options{CommitMaxWait: 20 * time.Millisecond}))
	tb := openTable(t, s, "t")
	l := openLog(t, s, "l", Limits{})
	const writers, each = 64, 20
	before := s.Stats()
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				k := fmt.Sprintf("w%02d/%02d", w, i)
				var err error
				if w%4 == 0 {
					_, err = l.Append([]byte(k))
				} else {
					err = tb.Put(k, []byte(k))
				}
				if err != nil {
					t.Error(err)
					return
				}
				if w%4 == 0 {
					continue
				}
				// Durable means visible: the value is there when Put returns.
				if v, ok, err := tb.Get(k); !ok || string(v) != k || err != nil {
					t.Errorf("Get(%q) right after its Put = %q, %t, %v", k, v, ok, err)
				}
			}
		})
	}
	wg.Wait()
	after := s.Stats()
	commits, writes := after.Commits-before.Commits, uint64(writers*each)
	t.Logf("%d puts and appends in %d commits", writes, commits)
	if commits > writes/8 {
		t.Errorf("%d writes took %d commits: table writes are not grouped", writes, commits)
	}
	if n := after.Appended - before.Appended; n != writes/4 {
		t.Errorf("Appended counts %d, want %d: puts must not count as appends", n, writes/4)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, path, quiet(Options{}))
	got := tableContents(t, openTable(t, s, "t"), "")
	if len(got) != int(writes)*3/4 {
		t.Errorf("%d keys after reopen, want %d", len(got), writes*3/4)
	}
	for k, v := range got {
		if k != v {
			t.Errorf("after reopen %q = %q", k, v)
		}
	}
}

func TestTableInvalidArguments(t *testing.T) {
	s := openStore(t, "", quiet(Options{}))
	for _, name := range []string{"", strings.Repeat("x", maxNameLen+1)} {
		if _, err := s.Table(name); err == nil {
			t.Errorf("Table accepted a name of %d bytes", len(name))
		}
	}
	tb := openTable(t, s, "t")
	long := strings.Repeat("k", MaxKeyLen+1)
	for _, tc := range []struct {
		name string
		err  error
		want error
	}{
		{"put empty key", tb.Put("", []byte("v")), ErrInvalidKey},
		{"put long key", tb.Put(long, []byte("v")), ErrInvalidKey},
		{"put large value", tb.Put("k", make([]byte, MaxValueLen+1)), ErrValueTooLarge},
		{"delete empty key", tb.Delete(""), ErrInvalidKey},
		{"delete long key", tb.Delete(long), ErrInvalidKey},
		{"get empty key", func() error { _, _, err := tb.Get(""); return err }(), ErrInvalidKey},
	} {
		if !errors.Is(tc.err, tc.want) || !strings.Contains(fmt.Sprint(tc.err), "table t: ") {
			t.Errorf("%s: %v, want %v naming the table", tc.name, tc.err, tc.want)
		}
	}
	// The longest key and the largest value are fine.
	maxKey := strings.Repeat("k", MaxKeyLen)
	if err := tb.Put(maxKey, make([]byte, MaxValueLen)); err != nil {
		t.Errorf("put at the bounds: %v", err)
	}
	if v, ok, err := tb.Get(maxKey); !ok || len(v) != MaxValueLen || err != nil {
		t.Errorf("get at the bounds: %d bytes, %t, %v", len(v), ok, err)
	}
	if got := tableContents(t, tb, ""); len(got) != 1 {
		t.Errorf("invalid writes left %d keys", len(got))
	}
}

func TestTableClosedStore(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "store.db"), quiet(Options{}))
	if err != nil {
		t.Fatal(err)
	}
	tb := openTable(t, s, "t")
	put(t, tb, "k", "v")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	_, errTable := s.Table("t")
	_, _, errGet := tb.Get("k")
	for name, err := range map[string]error{
		"Table":        errTable,
		"Put":          tb.Put("k", []byte("v2")),
		"Delete":       tb.Delete("k"),
		"DeletePrefix": tb.DeletePrefix(""),
		"Get":          errGet,
		"Range":        tb.Range("", func(string, []byte) error { return nil }),
	} {
		if !errors.Is(err, ErrClosed) {
			t.Errorf("%s on a closed store: %v, want ErrClosed", name, err)
		}
	}
}

func TestReclaimKeepsTables(t *testing.T) {
	path := filepath.Join(t.TempDir(), "store.db")
	s := openStore(t, path, quiet(Options{NoSync: true}))
	l := openLog(t, s, "l", Limits{})
	if err := l.Consumer("up"); err != nil {
		t.Fatal(err)
	}
	a, b := openTable(t, s, "a"), openTable(t, s, "b")
	want := map[string]string{}
	for i := range 300 {
		k, v := fmt.Sprintf("k%04d", i), strings.Repeat(fmt.Sprint(i), 50)
		put(t, a, k, v)
		want[k] = v
	}
	put(t, b, "only", "one")
	// Many deleted records make the file mostly free.
	last := fill(t, l, 5000, 1000) + 4999
	if err := l.Ack("up", last); err != nil {
		t.Fatal(err)
	}
	if err := l.Compact(); err != nil {
		t.Fatal(err)
	}
	full := fileSize(t, path)
	if err := s.Reclaim(); err != nil {
		t.Fatal(err)
	}
	if got := fileSize(t, path); got >= full/2 {
		t.Errorf("reclaim left %d of %d bytes", got, full)
	}
	check := func(a, b *Table) {
		t.Helper()
		if got := tableContents(t, a, ""); !maps.Equal(got, want) {
			t.Errorf("table a after reclaim: %d keys, want %d", len(got), len(want))
		}
		if got := tableContents(t, b, ""); !maps.Equal(got, map[string]string{"only": "one"}) {
			t.Errorf("table b after reclaim: %q", got)
		}
	}
	// The handles opened before the reclaim read and write the new file.
	check(a, b)
	put(t, b, "after", "reclaim")
	if err := b.Delete("after"); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	checkFile(t, path)
	s = openStore(t, path, quiet(Options{}))
	check(openTable(t, s, "a"), openTable(t, s, "b"))
}
