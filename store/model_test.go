package store

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// The model is what a log must contain, computed the simplest way: a map
// of records with the limit rules applied one by one. Records that every
// consumer acknowledged (at or below the floor) are deleted at once in the
// model but, in the store, maybe later, so the model only says what they
// must contain if they are still there.
type modelRec struct {
	at   int64
	data []byte
}

type modelLog struct {
	name    string
	lim     Limits
	recs    map[uint64]modelRec // present records above the floor
	all     map[uint64]modelRec // every record ever appended
	last    uint64
	lastAt  int64
	floor   uint64
	acks    map[string]uint64
	dropped Dropped
	refused uint64
}

func newModelLog(name string) *modelLog {
	return &modelLog{name: name, recs: map[uint64]modelRec{}, all: map[uint64]modelRec{}, acks: map[string]uint64{}}
}

func (m *modelLog) oldest() (uint64, bool) {
	if len(m.recs) == 0 {
		return 0, false
	}
	return slices.Min(slices.Collect(maps.Keys(m.recs))), true
}

func (m *modelLog) size() (n, b uint64) {
	for _, r := range m.recs {
		n, b = n+1, b+uint64(len(r.data))
	}
	return n, b
}

func (m *modelLog) drop(count *uint64) {
	seq, _ := m.oldest()
	delete(m.recs, seq)
	*count++
}

func (m *modelLog) expire(now int64) {
	if m.lim.MaxAge == 0 {
		return
	}
	for {
		seq, ok := m.oldest()
		if !ok || m.recs[seq].at >= now-int64(m.lim.MaxAge) {
			return
		}
		m.drop(&m.dropped.MaxAge)
	}
}

func (m *modelLog) enforce() {
	if m.lim.Discard != DiscardOld {
		return
	}
	for {
		n, b := m.size()
		switch {
		case m.lim.MaxMsgs > 0 && n > uint64(m.lim.MaxMsgs):
			m.drop(&m.dropped.MaxMsgs)
		case m.lim.MaxBytes > 0 && b > uint64(m.lim.MaxBytes):
			m.drop(&m.dropped.MaxBytes)
		default:
			return
		}
	}
}

// append returns the first sequence, or 0 if the batch is refused.
func (m *modelLog) append(now int64, data [][]byte) uint64 {
	m.expire(now)
	var size uint64
	for _, d := range data {
		if m.lim.MaxBytes > 0 && int64(len(d)) > m.lim.MaxBytes {
			m.refused += uint64(len(data))
			return 0
		}
		size += uint64(len(d))
	}
	if m.lim.Discard == DiscardNew {
		n, b := m.size()
		if (m.lim.MaxMsgs > 0 && n+uint64(len(data)) > uint64(m.lim.MaxMsgs)) ||
			(m.lim.MaxBytes > 0 && b+size > uint64(m.lim.MaxBytes)) {
			m.refused += uint64(len(data))
			return 0
		}
	}
	at := max(now, m.lastAt)
	first := m.last + 1
	for _, d := range data {
		m.last++
		r := modelRec{at, bytes.Clone(d)}
		m.recs[m.last], m.all[m.last] = r, r
	}
	m.lastAt = at
	m.enforce()
	return first
}

func (m *modelLog) raiseFloor() {
	if len(m.acks) > 0 {
		m.floor = max(m.floor, slices.Min(slices.Collect(maps.Values(m.acks))))
	}
	for seq := range m.recs {
		if seq <= m.floor {
			delete(m.recs, seq)
		}
	}
}

// ack returns the error class the store must return.
func (m *modelLog) ack(c string, upTo uint64) error {
	cur, ok := m.acks[c]
	switch {
	case !ok:
		return ErrUnknownConsumer
	case upTo > m.last:
		return ErrAckRange
	case upTo > cur:
		m.acks[c] = upTo
		m.raiseFloor()
	}
	return nil
}

// check compares the store's log with the model.
func (m *modelLog) check(t *testing.T, l *Log, now time.Time, afterTrim bool) {
	t.Helper()
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf("log %s: "+format, append([]any{m.name}, args...)...)
	}
	type rec struct {
		seq  uint64
		at   time.Time
		data []byte
	}
	var got []rec
	if err := l.Read(0, 0, func(seq uint64, at time.Time, data []byte) error {
		got = append(got, rec{seq, at, bytes.Clone(data)})
		return nil
	}); err != nil {
		fail("read: %v", err)
	}
	st := l.Stats()
	var nBytes, above uint64
	for i, r := range got {
		if i > 0 && r.seq != got[i-1].seq+1 {
			fail("record %d follows %d: a gap", r.seq, got[i-1].seq)
		}
		want, ok := m.all[r.seq]
		if !ok || !bytes.Equal(r.data, want.data) || r.at.UnixNano() != want.at {
			fail("record %d = %q at %v, want %q at %v (appended: %v)", r.seq, r.data, r.at.UnixNano(), want.data, want.at, ok)
		}
		if r.seq > m.floor {
			if _, ok := m.recs[r.seq]; !ok {
				fail("record %d is present, the model deleted it", r.seq)
			}
			above++
		}
		nBytes += uint64(len(r.data))
	}
	if above != uint64(len(m.recs)) {
		fail("%d unacknowledged records present, model has %d", above, len(m.recs))
	}
	wantFirst := m.last + 1
	if len(got) > 0 {
		wantFirst = got[0].seq
	}
	if st.Msgs != uint64(len(got)) || st.Bytes != nBytes || st.FirstSeq != wantFirst || st.LastSeq != m.last {
		fail("stats %+v; read %d records of %d bytes from %d, model last %d", st, len(got), nBytes, wantFirst, m.last)
	}
	if st.Dropped != m.dropped || st.Refused != m.refused || st.AckFloor != m.floor {
		fail("stats %+v; model dropped %+v, refused %d, floor %d", st, m.dropped, m.refused, m.floor)
	}
	for c, a := range m.acks {
		if got := l.Acked(c); got != a {
			fail("consumer %s acked %d, model %d", c, got, a)
		}
	}
	if m.lim.Discard == DiscardOld {
		if (m.lim.MaxMsgs > 0 && st.Msgs > uint64(m.lim.MaxMsgs)) || (m.lim.MaxBytes > 0 && st.Bytes > uint64(m.lim.MaxBytes)) {
			fail("over limits %+v: %+v", m.lim, st)
		}
	}
	if afterTrim && m.lim.MaxAge > 0 && above > 0 {
		if oldest, _ := m.oldest(); now.Sub(time.Unix(0, m.recs[oldest].at)) > m.lim.MaxAge {
			fail("record %d older than max_age %v", oldest, m.lim.MaxAge)
		}
	}
	if len(got) > 0 {
		r := got[rand.IntN(len(got))]
		if at, data, err := l.Get(r.seq); err != nil || !bytes.Equal(data, r.data) || !at.Equal(r.at) {
			fail("Get(%d) = %q, %v", r.seq, data, err)
		}
	}
	if _, _, err := l.Get(m.last + 1); !errors.Is(err, ErrNotFound) {
		fail("Get beyond last: %v", err)
	}
}

func randomLimits(r *rand.Rand) Limits {
	return Limits{
		MaxMsgs:  []int64{0, 0, 5, 20, 60}[r.IntN(5)],
		MaxBytes: []int64{0, 0, 400, 3000}[r.IntN(4)],
		MaxAge:   []time.Duration{0, 0, 10 * time.Second, time.Minute}[r.IntN(4)],
		Discard:  Discard(r.IntN(2)),
	}
}

func TestRandomizedAgainstModel(t *testing.T) {
	steps := 1500
	if testing.Short() {
		steps = 300
	}
	for seed := range uint64(4) {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			runModel(t, seed, steps)
		})
	}
}

func runModel(t *testing.T, seed uint64, steps int) {
	// Small deletion chunks leave acknowledged records behind, so that
	// limits and the background pass meet them.
	defer func(n int) { trimChunk = n }(trimChunk)
	trimChunk = 1 + int(seed%3)
	r := rand.New(rand.NewPCG(seed, 0x5eed))
	clock := newFakeClock()
	path := filepath.Join(t.TempDir(), "store.db")
	opts := quiet(Options{NoSync: true, Now: clock.Now})
	s := openStore(t, path, opts)
	models := []*modelLog{newModelLog("a"), newModelLog("b")}
	logs := make([]*Log, len(models))
	for i, m := range models {
		logs[i] = openLog(t, s, m.name, m.lim)
	}
	consumers := []string{"up", "archive", "debug"}
	for step := range steps {
		i := r.IntN(len(models))
		m, l := models[i], logs[i]
		now := clock.Now()
		afterTrim := false
		var what string
		switch op := r.IntN(100); {
		case op < 45:
			n := 1 + r.IntN(3)
			if r.IntN(4) > 0 {
				n = 1
			}
			batch := make([][]byte, n)
			for j := range batch {
				batch[j] = bytes.Repeat([]byte{byte('a' + step%26)}, r.IntN(300))
			}
			what = fmt.Sprintf("append %d", n)
			want := m.append(now.UnixNano(), batch)
			first, err := l.AppendBatch(batch)
			switch {
			case want == 0 && !errors.Is(err, ErrFull):
				t.Fatalf("step %d: %s: got %d, %v; the model refuses", step, what, first, err)
			case want != 0 && (err != nil || first != want):
				t.Fatalf("step %d: %s: got %d, %v; want %d", step, what, first, err, want)
			}
			afterTrim = true
		case op < 65:
			c := consumers[r.IntN(len(consumers))]
			upTo := m.acks[c] + uint64(r.IntN(15))
			if r.IntN(10) == 0 {
				upTo = m.last + 1
			}
			what = fmt.Sprintf("ack %s %d", c, upTo)
			want := m.ack(c, upTo)
			if err := l.Ack(c, upTo); !errors.Is(err, want) {
				t.Fatalf("step %d: %s: %v, want %v", step, what, err, want)
			}
		case op < 70:
			c := consumers[r.IntN(len(consumers))]
			what = "consumer " + c
			if _, ok := m.acks[c]; !ok {
				m.acks[c] = m.floor
			}
			if err := l.Consumer(c); err != nil {
				t.Fatalf("step %d: %s: %v", step, what, err)
			}
		case op < 73:
			c := consumers[r.IntN(len(consumers))]
			what = "remove consumer " + c
			delete(m.acks, c)
			m.raiseFloor()
			if err := l.RemoveConsumer(c); err != nil {
				t.Fatalf("step %d: %s: %v", step, what, err)
			}
		case op < 80:
			m.lim = randomLimits(r)
			what = fmt.Sprintf("limits %+v", m.lim)
			m.expire(now.UnixNano())
			m.enforce()
			var err error
			if logs[i], err = s.Log(m.name, m.lim); err != nil {
				t.Fatalf("step %d: %s: %v", step, what, err)
			}
			afterTrim = true
		case op < 88:
			d := time.Duration(r.IntN(20)) * time.Second
			if r.IntN(10) == 0 {
				d = -d // a clock stepped back
			}
			what = fmt.Sprint("clock +", d)
			clock.Advance(d)
		case op < 92:
			what = "compact"
			m.expire(now.UnixNano())
			m.enforce()
			if err := l.Compact(); err != nil {
				t.Fatalf("step %d: %s: %v", step, what, err)
			}
			afterTrim = true
		case op < 94:
			what = "reclaim"
			if err := s.Reclaim(); err != nil {
				t.Fatalf("step %d: %s: %v", step, what, err)
			}
		default:
			what = "reopen"
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			if err := verifyFile(path); err != nil {
				t.Fatalf("step %d: file: %v", step, err)
			}
			s = openStore(t, path, opts)
			for j, m := range models {
				m.expire(clock.Now().UnixNano())
				m.enforce()
				logs[j] = openLog(t, s, m.name, m.lim)
			}
			afterTrim = true
		}
		for j, m := range models {
			m.check(t, logs[j], clock.Now(), afterTrim && j == i)
		}
		if t.Failed() {
			t.Fatalf("step %d: after %s", step, what)
		}
	}
	t.Logf("seed %d: log a %+v, log b %+v", seed, logs[0].Stats(), logs[1].Stats())
}
