package store

import (
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	"go.etcd.io/bbolt"

	"github.com/canopy-iot/canopy/store/internal/layout"
)

// Discard is what a log does when an append would go over MaxMsgs or
// MaxBytes.
type Discard int

const (
	// DiscardOld deletes the oldest records to make room (the zero value).
	DiscardOld Discard = iota
	// DiscardNew refuses the append with ErrFull and keeps what is stored.
	DiscardNew
)

func (d Discard) String() string {
	switch d {
	case DiscardOld:
		return "old"
	case DiscardNew:
		return "new"
	}
	return fmt.Sprintf("Discard(%d)", int(d))
}

// Limits bound a log. The zero value is an unlimited log that drops the
// oldest records should limits be set later. Limits protect the device
// (its SD card, its RAM) rather than the data: records they delete are
// gone even if no consumer acknowledged them, and are counted in
// Stats.Dropped.
type Limits struct {
	// MaxMsgs bounds the number of records. 0: unlimited.
	MaxMsgs int64
	// MaxBytes bounds the payload bytes of the records; a single record
	// larger than this is refused with ErrFull. 0: unlimited.
	MaxBytes int64
	// MaxAge is how long a record is kept after its append. Expired
	// records are deleted by the next append and by a background pass
	// every second, whatever Discard says: refusing new records because
	// old ones expired would help nobody. 0: forever.
	MaxAge time.Duration
	// Discard chooses between dropping the oldest records and refusing
	// new ones when MaxMsgs or MaxBytes would be exceeded. Default
	// DiscardOld.
	Discard Discard
}

func (l Limits) validate() error {
	var errs []error
	if l.MaxMsgs < 0 {
		errs = append(errs, fmt.Errorf("%s: must not be negative (0 means no limit)", nameMaxMsgs))
	}
	if l.MaxBytes < 0 {
		errs = append(errs, fmt.Errorf("%s: must not be negative (0 means no limit)", nameMaxBytes))
	}
	if l.MaxAge < 0 {
		errs = append(errs, fmt.Errorf("%s: must not be negative (0 means no limit)", nameMaxAge))
	}
	if l.Discard != DiscardOld && l.Discard != DiscardNew {
		errs = append(errs, fmt.Errorf("discard: unknown policy %d", int(l.Discard)))
	}
	return errors.Join(errs...)
}

// maxMsgs and maxBytes return the limits as comparable with the state,
// math.MaxUint64 standing for "no limit".
func (l Limits) maxMsgs() uint64  { return unlimitedIfZero(l.MaxMsgs) }
func (l Limits) maxBytes() uint64 { return unlimitedIfZero(l.MaxBytes) }

func unlimitedIfZero(v int64) uint64 {
	if v == 0 {
		return math.MaxUint64
	}
	return uint64(v)
}

// Log is one named, durable, append-only log in a Store. Records are
// deleted only from the front (acknowledged, expired, or over a limit), so
// the present records always run without gaps from FirstSeq to LastSeq.
type Log struct {
	s    *Store
	name string
	key  []byte

	// mu guards limits and state. The committer is the only writer of
	// state; it publishes a transaction's result only after the commit.
	mu     sync.RWMutex
	limits Limits
	state  logState

	warnedAt time.Time // last "records dropped" warning; committer only
}

// logState is a log's state as of the last commit.
type logState struct {
	layout.State
	first   uint64            // first present sequence; Last+1 when empty
	firstAt int64             // append time of first (Unix ns)
	acks    map[string]uint64 // consumer → acknowledged up to; copied on write
}

func (st *logState) minAck() (uint64, bool) {
	if len(st.acks) == 0 {
		return 0, false
	}
	m := uint64(math.MaxUint64)
	for _, a := range st.acks {
		m = min(m, a)
	}
	return m, true
}

// Log opens the log called name, creating it if it does not exist, and
// applies limits to it before returning. Calling Log again for the same name
// returns the same *Log with the new limits. Limits are not stored in the
// file: whoever opens the log says what they are.
func (s *Store) Log(name string, limits Limits) (*Log, error) {
	if err := validName(name); err != nil {
		return nil, fmt.Errorf("open log %q: %w", name, err)
	}
	if err := limits.validate(); err != nil {
		return nil, fmt.Errorf("open log %s: %w", name, err)
	}
	s.openMu.Lock()
	defer s.openMu.Unlock()
	s.logsMu.Lock()
	l := s.logs[name]
	s.logsMu.Unlock()
	if l == nil {
		l = &Log{s: s, name: name, key: []byte(name), limits: limits}
		if _, err := s.do(opInit, l, ""); err != nil {
			return nil, fmt.Errorf("open log %s: %w", name, err)
		}
		s.logsMu.Lock()
		s.logs[name] = l
		s.logsMu.Unlock()
	} else {
		l.mu.Lock()
		l.limits = limits
		l.mu.Unlock()
	}
	// Limits may have been lowered: apply them now rather than at the
	// next append, so that the log is within them when Log returns.
	if err := l.Compact(); err != nil {
		return nil, err
	}
	return l, nil
}

func validName(name string) error {
	if name == "" || len(name) > maxNameLen {
		return fmt.Errorf("name must be 1 to %d bytes", maxNameLen)
	}
	return nil
}

// Name returns the log's name.
func (l *Log) Name() string { return l.name }

// Append stores data as the next record and returns its sequence number.
// It returns only once the record is on disk. Appends from concurrent
// goroutines are committed together, in the order the store receives them.
// data may be reused as soon as Append returns.
func (l *Log) Append(data []byte) (seq uint64, err error) {
	r := newRequest(opAppend, l)
	r.one[0] = data
	r.data = r.one[:]
	err = l.s.submit(r)
	seq = r.seq
	r.release()
	if err != nil {
		return 0, fmt.Errorf("append to log %s: %w", l.name, err)
	}
	return seq, nil
}

// AppendBatch stores the records in data, in order and atomically: all of
// them or, on error, none. They get consecutive sequence numbers starting
// at first. With DiscardNew, the batch is refused as a whole if it does not
// fit. An empty batch stores nothing and returns 0.
func (l *Log) AppendBatch(data [][]byte) (first uint64, err error) {
	if len(data) == 0 {
		return 0, nil
	}
	r := newRequest(opAppend, l)
	r.data = data
	err = l.s.submit(r)
	first = r.seq
	r.release()
	if err != nil {
		return 0, fmt.Errorf("append to log %s: %w", l.name, err)
	}
	return first, nil
}

// Reading copies records out of the file in chunks of this many records or
// bytes (at least one record), so that fn runs outside any transaction: a
// callback that blocks, or appends, must not hold bbolt's file mapping.
const (
	readChunkRecords = 256
	readChunkBytes   = 1 << 20
)

// Read calls fn for up to limit records (limit <= 0: all) in sequence order,
// starting at from or, if it was deleted, at the first record after it. It
// stops early, returning fn's error unchanged, when fn fails. data is valid
// only until fn returns. Records appended while Read runs are included.
func (l *Log) Read(from uint64, limit int, fn func(seq uint64, at time.Time, data []byte) error) error {
	type rec struct {
		seq  uint64
		at   int64
		data []byte
	}
	var (
		recs  []rec
		arena []byte
	)
	for n := 0; limit <= 0 || n < limit; {
		want := readChunkRecords
		if limit > 0 {
			want = min(want, limit-n)
		}
		recs, arena = recs[:0], arena[:0]
		err := l.s.view(func(tx *bbolt.Tx) error {
			msgs, err := l.msgs(tx)
			if err != nil {
				return err
			}
			c := msgs.Cursor()
			for k, v := c.Seek(layout.Key(from)); k != nil && len(recs) < want; k, v = c.Next() {
				if len(recs) > 0 && len(arena)+len(v) > readChunkBytes {
					break
				}
				seq, err := layout.Seq(k)
				if err != nil {
					return err
				}
				at, data, err := layout.ParseRecord(v)
				if err != nil {
					return fmt.Errorf("record %d: %w", seq, err)
				}
				off := len(arena)
				arena = append(arena, data...)
				recs = append(recs, rec{seq, at, arena[off:len(arena):len(arena)]})
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("read log %s: %w", l.name, err)
		}
		l.s.touched.Add(int64(len(arena)))
		if len(recs) == 0 {
			return nil
		}
		for _, r := range recs {
			if err := fn(r.seq, time.Unix(0, r.at), r.data); err != nil {
				return err
			}
		}
		n += len(recs)
		from = recs[len(recs)-1].seq + 1
	}
	return nil
}

// Get returns record seq: its append time and a copy of its payload, or
// ErrNotFound when it does not exist or was deleted.
func (l *Log) Get(seq uint64) (at time.Time, data []byte, err error) {
	err = l.s.view(func(tx *bbolt.Tx) error {
		msgs, err := l.msgs(tx)
		if err != nil {
			return err
		}
		v := msgs.Get(layout.Key(seq))
		if v == nil {
			return fmt.Errorf("%w: %d", ErrNotFound, seq)
		}
		ns, d, err := layout.ParseRecord(v)
		if err != nil {
			return fmt.Errorf("record %d: %w", seq, err)
		}
		at, data = time.Unix(0, ns), append([]byte(nil), d...)
		return nil
	})
	if err != nil {
		return time.Time{}, nil, fmt.Errorf("get from log %s: %w", l.name, err)
	}
	return at, data, nil
}

// SeqAt returns the sequence of the first present record appended at or
// after t, or LastSeq+1 (the next record's) when there is none, so that
// reading from it gives everything since t. Append times never decrease
// along a log (a clock stepped back stamps records with the last time seen),
// which is what lets this be a binary search.
func (l *Log) SeqAt(t time.Time) (uint64, error) {
	target := t.UnixNano()
	var seq uint64
	err := l.s.view(func(tx *bbolt.Tx) error {
		msgs, err := l.msgs(tx)
		if err != nil {
			return err
		}
		c := msgs.Cursor()
		// atOrAfter reports whether the first record at or after s was
		// appended at or after t (or there is none); it is monotonic in s.
		atOrAfter := func(s uint64) (bool, uint64, error) {
			k, v := c.Seek(layout.Key(s))
			if k == nil {
				return true, 0, nil
			}
			found, err := layout.Seq(k)
			if err != nil {
				return false, 0, err
			}
			at, _, err := layout.ParseRecord(v)
			return at >= target, found, err
		}
		fk, _ := c.First()
		lk, _ := c.Last()
		if fk == nil {
			seq = l.stats().LastSeq + 1
			return nil
		}
		lo, _ := layout.Seq(fk)
		hi, _ := layout.Seq(lk)
		hi++ // atOrAfter(hi) holds: no record there
		for lo < hi {
			mid := lo + (hi-lo)/2
			ok, _, err := atOrAfter(mid)
			if err != nil {
				return err
			}
			if ok {
				hi = mid
			} else {
				lo = mid + 1
			}
		}
		_, found, err := atOrAfter(lo)
		if err != nil {
			return err
		}
		if found == 0 {
			found = l.stats().LastSeq + 1
		}
		seq = found
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("search log %s: %w", l.name, err)
	}
	return seq, nil
}

func (l *Log) msgs(tx *bbolt.Tx) (*bbolt.Bucket, error) {
	if lb := tx.Bucket(bucketLogs).Bucket(l.key); lb != nil {
		if b := lb.Bucket(bucketMsgs); b != nil {
			return b, nil
		}
	}
	return nil, fmt.Errorf("%w: buckets of log %s missing", layout.ErrCorrupt, l.name)
}

// Consumer registers a consumer of the log, by name. From then on records
// are deleted only after it acknowledged them (or a limit removed them). A
// new consumer starts where the log's acknowledgements are (Stats.AckFloor):
// records every earlier consumer acknowledged may already be gone.
// Registering a consumer again changes nothing.
func (l *Log) Consumer(name string) error {
	if err := validName(name); err != nil {
		return fmt.Errorf("log %s: consumer %q: %w", l.name, name, err)
	}
	if _, err := l.s.do(opConsumer, l, name); err != nil {
		return fmt.Errorf("log %s: add consumer %s: %w", l.name, name, err)
	}
	return nil
}

// RemoveConsumer forgets a consumer, so that the log no longer waits for
// it. What it had acknowledged stays acknowledged. Removing an unknown
// consumer changes nothing.
func (l *Log) RemoveConsumer(name string) error {
	if _, err := l.s.do(opRemoveConsumer, l, name); err != nil {
		return fmt.Errorf("log %s: remove consumer %s: %w", l.name, name, err)
	}
	return nil
}

// Ack records, durably, that consumer has processed every record up to
// and including upTo. Acknowledgements only move forward: acking at or below
// the consumer's position changes nothing and is not an error, so that a
// repeated acknowledgement is harmless. Acking beyond LastSeq fails with
// ErrAckRange; an unregistered consumer gets ErrUnknownConsumer.
//
// Records that every consumer has now acknowledged are deleted in the same
// transaction, up to a few thousand of them; a larger backlog is deleted by
// the following transactions in the background (Compact waits for it).
func (l *Log) Ack(consumer string, upTo uint64) error {
	r := newRequest(opAck, l)
	r.name, r.seq = consumer, upTo
	err := l.s.submit(r)
	r.release()
	if err != nil {
		return fmt.Errorf("log %s: ack %d for %s: %w", l.name, upTo, consumer, err)
	}
	return nil
}

// Acked returns how far consumer has acknowledged: 0 when it has not yet
// acknowledged anything or is not registered.
func (l *Log) Acked(consumer string) uint64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.state.acks[consumer]
}

// Compact deletes now, instead of in the background, every record that
// may go: those acknowledged by every consumer, those older than MaxAge and,
// with DiscardOld, those over MaxMsgs or MaxBytes. It deletes in
// transactions of bounded size, so appends interleave with it. It does not
// shrink the file: freed pages are reused by later appends, and Store.Reclaim
// gives them back to the file system.
func (l *Log) Compact() error {
	for {
		more, err := l.s.do(opTrim, l, "")
		if err != nil {
			return fmt.Errorf("compact log %s: %w", l.name, err)
		}
		if more == 0 {
			return nil
		}
	}
}

// Dropped counts records deleted by a limit before every consumer had
// acknowledged them, by limit.
type Dropped struct {
	MaxMsgs  uint64
	MaxBytes uint64
	MaxAge   uint64
}

// Total returns the number of records dropped by any limit.
func (d Dropped) Total() uint64 { return d.MaxMsgs + d.MaxBytes + d.MaxAge }

// Stats describe a log as of its last commit.
type Stats struct {
	Msgs      uint64        // records present
	Bytes     uint64        // payload bytes present
	FirstSeq  uint64        // first present record; LastSeq+1 when the log is empty
	LastSeq   uint64        // last sequence assigned, even if that record was deleted since
	FirstTime time.Time     // append time of FirstSeq; zero when empty
	OldestAge time.Duration // age of FirstSeq by Options.Now; 0 when empty
	AckFloor  uint64        // every record up to here was acknowledged by all consumers
	Dropped   Dropped       // records deleted by a limit before all consumers acknowledged them
	Refused   uint64        // records refused by a DiscardNew limit or for being over MaxBytes
}

// Stats returns the log's counters. It does no I/O.
func (l *Log) Stats() Stats {
	st := l.stats()
	if st.Msgs > 0 {
		st.OldestAge = max(0, l.s.opts.Now().Sub(st.FirstTime))
	}
	return st
}

func (l *Log) stats() Stats {
	l.mu.RLock()
	defer l.mu.RUnlock()
	st := l.state
	s := Stats{
		Msgs:     st.Msgs,
		Bytes:    st.Bytes,
		FirstSeq: st.first,
		LastSeq:  st.Last,
		AckFloor: st.Acked,
		Dropped: Dropped{
			MaxMsgs:  st.Dropped[layout.DroppedMaxMsgs],
			MaxBytes: st.Dropped[layout.DroppedMaxBytes],
			MaxAge:   st.Dropped[layout.DroppedMaxAge],
		},
		Refused: st.Refused,
	}
	if st.Msgs > 0 {
		s.FirstTime = time.Unix(0, st.firstAt)
	}
	return s
}

func (l *Log) currentLimits() Limits {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.limits
}
