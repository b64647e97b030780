package store

import (
	"bytes"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/canopy-iot/canopy/internal/wait"
)

func TestAppendReadAck(t *testing.T) {
	s := openStore(t, "", quiet(Options{}))
	l := openLog(t, s, "telemetry", Limits{})
	if err := l.Consumer("uplink"); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 10; i++ {
		seq, err := l.Append(payload("msg %d", i))
		if err != nil {
			t.Fatal(err)
		}
		if seq != uint64(i) {
			t.Fatalf("append %d got sequence %d", i, seq)
		}
	}
	first, err := l.AppendBatch([][]byte{payload("msg 11"), payload("msg 12")})
	if err != nil || first != 11 {
		t.Fatalf("AppendBatch = %d, %v; want 11", first, err)
	}
	got := readAll(t, l)
	if len(got) != 12 {
		t.Fatalf("read %d records, want 12", len(got))
	}
	for seq, data := range got {
		if want := payload("msg %d", seq); !bytes.Equal(data, want) {
			t.Errorf("record %d = %q, want %q", seq, data, want)
		}
	}

	// Read honours from and max, and stops on fn's error, returning it.
	var part []uint64
	if err := l.Read(5, 3, func(seq uint64, _ time.Time, _ []byte) error { part = append(part, seq); return nil }); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(part, []uint64{5, 6, 7}) {
		t.Errorf("Read(5, 3) delivered %v", part)
	}
	stop := errors.New("stop")
	if err := l.Read(1, 0, func(uint64, time.Time, []byte) error { return stop }); err != stop {
		t.Errorf("Read returned %v, want fn's error", err)
	}

	if err := l.Ack("uplink", 4); err != nil {
		t.Fatal(err)
	}
	if got := l.Acked("uplink"); got != 4 {
		t.Errorf("Acked = %d, want 4", got)
	}
	st := l.Stats()
	if st.Msgs != 8 || st.FirstSeq != 5 || st.LastSeq != 12 || st.AckFloor != 4 {
		t.Errorf("after ack 4: %+v", st)
	}
	if _, _, err := l.Get(3); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get(3) after ack: %v, want ErrNotFound", err)
	}
	if _, data, err := l.Get(5); err != nil || string(data) != "msg 5" {
		t.Errorf("Get(5) = %q, %v", data, err)
	}
	// Reading from a deleted sequence starts at the first present one.
	if got := seqs(t, l); got[0] != 5 || len(got) != 8 {
		t.Errorf("Read(0) after ack delivered %v", got)
	}
}

func TestAckRules(t *testing.T) {
	s := openStore(t, "", quiet(Options{}))
	l := openLog(t, s, "l", Limits{})
	for range 5 {
		if _, err := l.Append([]byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Ack("nobody", 1); !errors.Is(err, ErrUnknownConsumer) {
		t.Errorf("ack by unregistered consumer: %v", err)
	}
	for _, c := range []string{"a", "b"} {
		if err := l.Consumer(c); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Ack("a", 6); !errors.Is(err, ErrAckRange) {
		t.Errorf("ack beyond last: %v", err)
	}
	if err := l.Ack("a", 4); err != nil {
		t.Fatal(err)
	}
	// Going back is a harmless no-op.
	if err := l.Ack("a", 2); err != nil || l.Acked("a") != 4 {
		t.Errorf("ack backwards: %v, acked %d", err, l.Acked("a"))
	}
	// b has acknowledged nothing: all records stay.
	if st := l.Stats(); st.Msgs != 5 || st.AckFloor != 0 {
		t.Errorf("with b behind: %+v", st)
	}
	if err := l.Ack("b", 3); err != nil {
		t.Fatal(err)
	}
	if st := l.Stats(); st.Msgs != 2 || st.FirstSeq != 4 || st.AckFloor != 3 {
		t.Errorf("after b acked 3: %+v", st)
	}
	// A late consumer starts at the floor; removing b lets a's position rule.
	if err := l.Consumer("c"); err != nil {
		t.Fatal(err)
	}
	if got := l.Acked("c"); got != 3 {
		t.Errorf("new consumer starts at %d, want the floor 3", got)
	}
	if err := l.RemoveConsumer("b"); err != nil {
		t.Fatal(err)
	}
	if err := l.Ack("c", 5); err != nil {
		t.Fatal(err)
	}
	if st := l.Stats(); st.Msgs != 1 || st.FirstSeq != 5 || st.AckFloor != 4 {
		t.Errorf("after removing b and c acking 5: %+v", st)
	}
	// Without consumers, records stay until limits remove them.
	for _, c := range []string{"a", "c"} {
		if err := l.RemoveConsumer(c); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := l.Append([]byte("y")); err != nil {
		t.Fatal(err)
	}
	// Removing a left c, which had acknowledged everything.
	if st := l.Stats(); st.Msgs != 1 || st.FirstSeq != 6 || st.AckFloor != 5 {
		t.Errorf("without consumers: %+v", st)
	}
}

func TestSequencesSurviveReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "store.db")
	s := openStore(t, path, quiet(Options{}))
	l := openLog(t, s, "l", Limits{})
	if err := l.Consumer("up"); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := l.Append([]byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	// Delete everything: the next sequence must still be 4, not 1.
	if err := l.Ack("up", 3); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Append([]byte("late")); !errors.Is(err, ErrClosed) {
		t.Errorf("append after close: %v", err)
	}

	s = openStore(t, path, quiet(Options{}))
	l = openLog(t, s, "l", Limits{})
	st := l.Stats()
	if st.Msgs != 0 || st.LastSeq != 3 || st.FirstSeq != 4 || l.Acked("up") != 3 {
		t.Errorf("reopened: %+v, acked %d", st, l.Acked("up"))
	}
	if seq, err := l.Append([]byte("y")); err != nil || seq != 4 {
		t.Errorf("append after reopen = %d, %v; want 4", seq, err)
	}
	// Logs are independent.
	m := openLog(t, s, "other", Limits{})
	if seq, err := m.Append([]byte("z")); err != nil || seq != 1 {
		t.Errorf("other log's first append = %d, %v", seq, err)
	}
}

func TestGroupCommit(t *testing.T) {
	path := filepath.Join(t.TempDir(), "store.db")
	s := openStore(t, path, quiet(Options{CommitMaxWait: 20 * time.Millisecond}))
	l := openLog(t, s, "l", Limits{})
	const writers, each = 64, 20
	before := s.Stats().Commits
	var wg sync.WaitGroup
	got := make([][]uint64, writers)
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				seq, err := l.Append(payload("w%d-%d", w, i))
				if err != nil {
					t.Error(err)
					return
				}
				// Committed means visible: the record is there the moment
				// Append returns.
				if _, data, err := l.Get(seq); err != nil || string(data) != string(payload("w%d-%d", w, i)) {
					t.Errorf("record %d right after its append: %q, %v", seq, data, err)
				}
				got[w] = append(got[w], seq)
			}
		})
	}
	wg.Wait()
	commits := s.Stats().Commits - before
	t.Logf("%d appends in %d commits", writers*each, commits)
	if commits > writers*each/8 {
		t.Errorf("%d appends took %d commits: group commit is not grouping", writers*each, commits)
	}
	// Each writer's records are in its order; all sequences are distinct.
	all := map[uint64]bool{}
	for w := range writers {
		if !slices.IsSorted(got[w]) {
			t.Errorf("writer %d got sequences out of order: %v", w, got[w])
		}
		for _, s := range got[w] {
			all[s] = true
		}
	}
	if len(all) != writers*each {
		t.Errorf("%d distinct sequences for %d appends", len(all), writers*each)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, path, quiet(Options{}))
	l = openLog(t, s, "l", Limits{})
	recs := readAll(t, l)
	for w := range writers {
		for i, seq := range got[w] {
			if string(recs[seq]) != string(payload("w%d-%d", w, i)) {
				t.Errorf("after reopen, record %d = %q", seq, recs[seq])
			}
		}
	}
}

// A single appender must not pay CommitMaxWait for company that never comes.
func TestLoneAppendDoesNotWait(t *testing.T) {
	s := openStore(t, "", quiet(Options{NoSync: true, CommitMaxWait: time.Second}))
	l := openLog(t, s, "l", Limits{})
	start := time.Now()
	for range 20 {
		if _, err := l.Append([]byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("20 lone appends took %v with CommitMaxWait 1s", d)
	}
}

func TestLimitsDropOldest(t *testing.T) {
	clock := newFakeClock()
	s := openStore(t, "", quiet(Options{Now: clock.Now}))

	msgs := openLog(t, s, "msgs", Limits{MaxMsgs: 3})
	for i := 1; i <= 5; i++ {
		if _, err := msgs.Append(payload("%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	if st := msgs.Stats(); st.Msgs != 3 || st.FirstSeq != 3 || st.Dropped.MaxMsgs != 2 || st.Dropped.Total() != 2 {
		t.Errorf("max_msgs 3 after 5 appends: %+v", st)
	}

	byteLog := openLog(t, s, "bytes", Limits{MaxBytes: 25})
	for range 4 {
		if _, err := byteLog.Append(make([]byte, 10)); err != nil {
			t.Fatal(err)
		}
	}
	if st := byteLog.Stats(); st.Msgs != 2 || st.Bytes != 20 || st.Dropped.MaxBytes != 2 {
		t.Errorf("max_bytes 25 after 4×10 bytes: %+v", st)
	}
	if _, err := byteLog.Append(make([]byte, 26)); !errors.Is(err, ErrFull) || !strings.Contains(err.Error(), "max_bytes") {
		t.Errorf("record over max_bytes: %v", err)
	}
	if st := byteLog.Stats(); st.Msgs != 2 || st.Refused != 1 {
		t.Errorf("after refusing a too large record: %+v", st)
	}

	age := openLog(t, s, "age", Limits{MaxAge: time.Minute})
	for range 3 {
		if _, err := age.Append([]byte("old")); err != nil {
			t.Fatal(err)
		}
	}
	clock.Advance(30 * time.Second)
	if st := age.Stats(); st.OldestAge != 30*time.Second {
		t.Errorf("oldest age %v, want 30s", st.OldestAge)
	}
	if _, err := age.Append([]byte("new")); err != nil {
		t.Fatal(err)
	}
	clock.Advance(31 * time.Second)
	// The next append expires the three old records, not the new one.
	if _, err := age.Append([]byte("newer")); err != nil {
		t.Fatal(err)
	}
	if st := age.Stats(); st.Msgs != 2 || st.FirstSeq != 4 || st.Dropped.MaxAge != 3 {
		t.Errorf("max_age: %+v", st)
	}
	// Without appends, Compact (and the background pass) expire records.
	clock.Advance(time.Hour)
	if err := age.Compact(); err != nil {
		t.Fatal(err)
	}
	if st := age.Stats(); st.Msgs != 0 || st.Dropped.MaxAge != 5 || st.LastSeq != 5 {
		t.Errorf("max_age after an hour: %+v", st)
	}

	// A batch larger than the limit keeps its newest records.
	first, err := msgs.AppendBatch([][]byte{[]byte("a"), []byte("b"), []byte("c"), []byte("d")})
	if err != nil || first != 6 {
		t.Fatalf("batch = %d, %v", first, err)
	}
	if got := seqs(t, msgs); !slices.Equal(got, []uint64{7, 8, 9}) {
		t.Errorf("after a batch of 4 into max_msgs 3: %v", got)
	}
}

func TestLimitsDiscardNew(t *testing.T) {
	s := openStore(t, "", quiet(Options{}))
	l := openLog(t, s, "l", Limits{MaxMsgs: 3, MaxBytes: 100, Discard: DiscardNew})
	if err := l.Consumer("up"); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := l.Append([]byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	_, err := l.Append([]byte("refused"))
	if !errors.Is(err, ErrFull) || !strings.Contains(err.Error(), "max_msgs 3") {
		t.Fatalf("append over max_msgs: %v", err)
	}
	if _, err := l.AppendBatch([][]byte{[]byte("a"), []byte("b")}); !errors.Is(err, ErrFull) {
		t.Fatalf("batch over max_msgs: %v", err)
	}
	st := l.Stats()
	if st.Msgs != 3 || st.LastSeq != 3 || st.Refused != 3 || st.Dropped.Total() != 0 {
		t.Errorf("after refusals: %+v", st)
	}
	// Acknowledged records make room.
	if err := l.Ack("up", 1); err != nil {
		t.Fatal(err)
	}
	if seq, err := l.Append([]byte("fits")); err != nil || seq != 4 {
		t.Errorf("append after ack = %d, %v", seq, err)
	}
	// Bytes too.
	if err := l.Ack("up", 2); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Append(make([]byte, 98)); !errors.Is(err, ErrFull) || !strings.Contains(err.Error(), "max_bytes 100") {
		t.Errorf("append over max_bytes: %v", err)
	}
	if got := seqs(t, l); !slices.Equal(got, []uint64{3, 4}) {
		t.Errorf("records %v", got)
	}
	// Raising the limit lets appends in again.
	l = openLog(t, s, "l", Limits{MaxMsgs: 10, Discard: DiscardNew})
	if _, err := l.AppendBatch([][]byte{[]byte("a"), []byte("b")}); err != nil {
		t.Errorf("batch after raising the limit: %v", err)
	}
}

// Lowering a limit applies it at once, with DiscardOld.
func TestLoweredLimits(t *testing.T) {
	s := openStore(t, "", quiet(Options{}))
	l := openLog(t, s, "l", Limits{})
	batch := make([][]byte, 1000)
	for i := range batch {
		batch[i] = []byte("0123456789")
	}
	for range 10 {
		if _, err := l.AppendBatch(batch); err != nil {
			t.Fatal(err)
		}
	}
	l = openLog(t, s, "l", Limits{MaxMsgs: 10})
	if st := l.Stats(); st.Msgs != 10 || st.FirstSeq != 9991 || st.Dropped.MaxMsgs != 9990 {
		t.Errorf("after lowering max_msgs to 10: %+v", st)
	}
}

func TestAckBacklogDeletedInBackground(t *testing.T) {
	s := openStore(t, "", Options{NoSync: true, housekeepEvery: time.Hour})
	l := openLog(t, s, "l", Limits{})
	if err := l.Consumer("up"); err != nil {
		t.Fatal(err)
	}
	batch := make([][]byte, 1000)
	for i := range batch {
		batch[i] = []byte("record")
	}
	for range 3 * trimChunk / len(batch) {
		if _, err := l.AppendBatch(batch); err != nil {
			t.Fatal(err)
		}
	}
	last := l.Stats().LastSeq
	if err := l.Ack("up", last); err != nil {
		t.Fatal(err)
	}
	wait.For(t, 5*time.Second, func() error {
		if st := l.Stats(); st.Msgs != 0 {
			return errors.New("records left")
		}
		return nil
	})
	if st := l.Stats(); st.FirstSeq != last+1 || st.Bytes != 0 || st.Dropped.Total() != 0 {
		t.Errorf("after acking everything: %+v", st)
	}
}

func TestSeqAtAndTimes(t *testing.T) {
	clock := newFakeClock()
	s := openStore(t, "", quiet(Options{Now: clock.Now}))
	l := openLog(t, s, "l", Limits{})
	t0 := clock.Now()
	if seq, err := l.SeqAt(t0); err != nil || seq != 1 {
		t.Errorf("SeqAt on an empty log = %d, %v; want 1", seq, err)
	}
	for i := range 10 {
		if _, err := l.Append(payload("%d", i)); err != nil {
			t.Fatal(err)
		}
		clock.Advance(time.Second)
	}
	for _, c := range []struct {
		at   time.Time
		want uint64
	}{
		{t0.Add(-time.Hour), 1},
		{t0, 1},
		{t0.Add(time.Millisecond), 2},
		{t0.Add(5 * time.Second), 6},
		{t0.Add(9 * time.Second), 10},
		{t0.Add(10 * time.Second), 11},
	} {
		if seq, err := l.SeqAt(c.at); err != nil || seq != c.want {
			t.Errorf("SeqAt(t0+%v) = %d, %v; want %d", c.at.Sub(t0), seq, err, c.want)
		}
	}
	at, _, err := l.Get(3)
	if err != nil || !at.Equal(t0.Add(2*time.Second)) {
		t.Errorf("Get(3) time = %v, %v", at, err)
	}
	// A clock stepped back stamps records with the last time seen.
	clock.Advance(-time.Hour)
	seq, err := l.Append([]byte("late"))
	if err != nil {
		t.Fatal(err)
	}
	if at, _, _ := l.Get(seq); !at.Equal(t0.Add(9 * time.Second)) {
		t.Errorf("record appended after the clock stepped back has time %v", at.Sub(t0))
	}
}

func TestInvalidArguments(t *testing.T) {
	s := openStore(t, "", quiet(Options{}))
	for _, lim := range []Limits{{MaxMsgs: -1}, {MaxBytes: -1}, {MaxAge: -time.Second}, {Discard: 7}} {
		if _, err := s.Log("l", lim); err == nil {
			t.Errorf("Log accepted %+v", lim)
		}
	}
	if _, err := s.Log("", Limits{}); err == nil {
		t.Error("Log accepted an empty name")
	}
	l := openLog(t, s, "l", Limits{})
	if err := l.Consumer(strings.Repeat("x", 300)); err == nil {
		t.Error("Consumer accepted a 300-byte name")
	}
	if first, err := l.AppendBatch(nil); first != 0 || err != nil {
		t.Errorf("empty batch = %d, %v", first, err)
	}
}
