package store

import (
	"fmt"
	"maps"
	"sync"
	"time"

	"go.etcd.io/bbolt"

	"github.com/canopy-iot/canopy/store/internal/layout"
)

// All writes go through one goroutine, the committer. It takes whatever
// requests are queued (appends, acks, consumer changes, deletions from
// every log, table writes), applies them in one bbolt transaction, commits
// it with one fsync, publishes the new state of each log it touched and
// only then answers every request. That is group commit: N concurrent
// appenders cost one fsync instead of N. Requests that arrive while a
// commit is running queue up and form the next batch; in addition, after a
// batch of several requests the committer waits up to CommitMaxWait for as
// many to gather again before committing, so that appenders released
// together commit together. A lone appender never waits.

// Bounds of one transaction, so that memory stays small on a device.
const (
	maxBatchRequests = 1024
	maxBatchBytes    = 4 << 20
)

// trimChunk bounds the records deleted by one acknowledgement or one
// background pass; deleting costs memory for every touched page. A
// variable so that tests can make backlogs with few records.
var trimChunk = 4096

type opKind uint8

const (
	opInit opKind = iota
	opAppend
	opAck
	opConsumer
	opRemoveConsumer
	opTrim
	opReclaim
	opTableInit
	opTablePut
	opTableDelete
	opTableDeletePrefix
)

type request struct {
	kind  opKind
	log   *Log
	table *Table
	data  [][]byte
	one   [1][]byte // backs data for a single Append or a table value
	name  string    // consumer; table key or prefix
	full  bool      // opTrim: also age and limits, not only acknowledged records
	seq   uint64    // opAck: position; result: first appended sequence, or 1 if a trim left work
	err   error
	done  chan struct{} // receives once the request is answered
}

var requestPool = sync.Pool{New: func() any { return &request{done: make(chan struct{}, 1)} }}

func newRequest(kind opKind, l *Log) *request {
	r := requestPool.Get().(*request)
	r.kind, r.log = kind, l
	return r
}

// release returns r to the pool, dropping what it referenced.
func (r *request) release() {
	done := r.done
	*r = request{done: done}
	requestPool.Put(r)
}

func (r *request) bytes() int {
	n := 0
	for _, d := range r.data {
		n += len(d)
	}
	return n
}

// do submits a request of a kind that carries no payload and waits for it.
func (s *Store) do(kind opKind, l *Log, name string) (uint64, error) {
	r := newRequest(kind, l)
	r.name, r.full = name, true
	err := s.submit(r)
	seq := r.seq
	r.release()
	return seq, err
}

func (s *Store) commitLoop() {
	defer close(s.done)
	tick := time.NewTicker(s.opts.housekeepEvery)
	defer tick.Stop()
	var (
		company  = 1 // requests in the last batch: how many to wait for
		batchBuf []*request
	)
	for {
		var first *request
		select {
		case first = <-s.reqs:
		case <-s.quit:
			s.drain()
			return
		default:
			// Idle: finish deletions that acknowledgements left for
			// later, then sleep.
			if s.housekeep(false) {
				continue
			}
			select {
			case first = <-s.reqs:
			case <-tick.C:
				s.housekeep(true)
				s.releaseMappedIfDue()
				continue
			case <-s.quit:
				s.drain()
				return
			}
		}
		batchBuf = s.gather(append(batchBuf[:0], first), company)
		company = len(batchBuf)
		s.commit(batchBuf)
		clear(batchBuf) // do not keep requests (and payloads) alive
		s.releaseMappedIfDue()
	}
}

// gather adds queued requests to batch. When the queue is empty it waits,
// at most CommitMaxWait, until batch is as large as company.
func (s *Store) gather(batch []*request, company int) []*request {
	size := batch[0].bytes()
	var timeout <-chan time.Time
	for len(batch) < maxBatchRequests && size < maxBatchBytes {
		var r *request
		select {
		case r = <-s.reqs:
		default:
			if len(batch) >= company || s.opts.CommitMaxWait < 0 {
				return batch
			}
			if timeout == nil {
				t := time.NewTimer(s.opts.CommitMaxWait)
				defer t.Stop()
				timeout = t.C
			}
			select {
			case r = <-s.reqs:
			case <-timeout:
				return batch
			case <-s.quit:
				return batch
			}
		}
		batch = append(batch, r)
		size += r.bytes()
	}
	return batch
}

// drain answers what was queued before Close.
func (s *Store) drain() {
	for {
		select {
		case r := <-s.reqs:
			s.commit([]*request{r})
		default:
			return
		}
	}
}

// commit applies batch in one transaction and answers every request.
func (s *Store) commit(batch []*request) {
	var reclaim []*request
	defer func() {
		for _, r := range reclaim {
			r.err = s.reclaim()
		}
		for _, r := range batch {
			r.done <- struct{}{}
		}
	}()
	t := &txn{s: s, now: s.opts.Now().UnixNano(), works: make(map[*Log]*work)}
	need := 0
	for _, r := range batch {
		if r.kind != opAppend {
			continue
		}
		for _, d := range r.data {
			need += layout.KeyLen + layout.RecordOverhead + len(d)
		}
	}
	t.arena = make([]byte, 0, need)
	tx, err := s.db.Begin(true)
	if err != nil {
		s.failAll(batch, ioError(err))
		return
	}
	t.tx = tx
	for _, r := range batch {
		switch r.kind {
		case opInit:
			r.err = t.init(r.log)
		case opAppend:
			r.seq, r.err = t.append(r.log, r.data)
		case opAck:
			r.err = t.ack(r.log, r.name, r.seq)
		case opConsumer:
			r.err = t.addConsumer(r.log, r.name)
		case opRemoveConsumer:
			r.err = t.removeConsumer(r.log, r.name)
		case opTrim:
			var more bool
			more, r.err = t.trim(r.log, r.full)
			r.seq = 0
			if more {
				r.seq = 1
			}
		case opReclaim:
			reclaim = append(reclaim, r)
		case opTableInit:
			r.err = t.tableInit(r.table)
		case opTablePut:
			var value []byte
			if len(r.data) > 0 {
				value = r.data[0]
			}
			r.err = t.tablePut(r.table, r.name, value)
		case opTableDelete:
			r.err = t.tableDelete(r.table, r.name)
		case opTableDeletePrefix:
			r.err = t.tableDeletePrefix(r.table, r.name)
		}
		if t.abort != nil {
			break
		}
	}
	if t.abort == nil {
		t.flush()
	}
	if t.abort != nil {
		_ = tx.Rollback()
		s.failAll(batch, t.abort)
		return
	}
	if len(t.order) == 0 && t.tableWrites == 0 {
		// Nothing was written (a batch of reclaims, of no-op acks, of
		// deletions of missing keys): spare the disk an empty commit and
		// its fsync.
		_ = tx.Rollback()
		return
	}
	if err := tx.Commit(); err != nil {
		s.failAll(batch, ioError(err))
		return
	}
	s.commits.Add(1)
	s.appended.Add(t.appended)
	s.touched.Add(int64(need))
	for _, w := range t.order {
		w.log.mu.Lock()
		w.log.state = w.st
		w.log.mu.Unlock()
		if w.init {
			s.logList = append(s.logList, w.log)
		}
		if w.st.Dropped != w.dropped {
			s.warnDropped(w)
		}
	}
}

func (s *Store) failAll(batch []*request, err error) {
	for _, r := range batch {
		if r.kind != opReclaim {
			r.seq, r.err = 0, err
		}
	}
}

// warnDropped logs that a limit deleted unacknowledged records, at most
// once a minute per log; Stats has the exact counts.
func (s *Store) warnDropped(w *work) {
	now := time.Now()
	if now.Sub(w.log.warnedAt) < time.Minute {
		return
	}
	w.log.warnedAt = now
	d := w.st.Dropped
	s.log.Warn("records dropped by limits", "log", w.log.name,
		nameMaxMsgs, d[layout.DroppedMaxMsgs], nameMaxBytes, d[layout.DroppedMaxBytes], nameMaxAge, d[layout.DroppedMaxAge])
}

// housekeep deletes what may be deleted in every log: with full, records
// that are acknowledged, expired or over limits, and then reclaims the file
// if it is mostly free; without, only acknowledged records, so that it can
// run whenever the committer is idle. It reports whether it did anything.
func (s *Store) housekeep(full bool) bool {
	now := time.Now()
	if s.opts.noBackground || (!full && now.Before(s.retryAt)) {
		return false
	}
	var batch []*request
	for _, l := range s.logList {
		if l.trimPending(full, s.opts.Now().UnixNano()) {
			r := &request{kind: opTrim, log: l, full: full, done: make(chan struct{}, 1)}
			batch = append(batch, r)
		}
	}
	if len(batch) > 0 {
		s.commit(batch)
		for _, r := range batch {
			if r.err != nil {
				// The layer that handles an error logs it: nobody waits
				// for this one. Back off so that a full disk is not
				// hammered by the idle loop.
				s.log.Warn("deleting records failed", "log", r.log.name, "err", r.err)
				s.retryAt = now.Add(s.opts.housekeepEvery)
				break
			}
		}
	}
	if full && s.opts.ReclaimMinFree > 0 && now.After(s.reclaimAt) {
		size, free := fileUsage(s.db, s.path)
		if free > s.opts.ReclaimMinFree && free > size/2 {
			if err := s.reclaim(); err != nil {
				s.log.Warn("reclaiming file space failed", "err", err)
				s.reclaimAt = now.Add(reclaimRetry)
			}
		}
	}
	return len(batch) > 0
}

// trimPending reports whether l has records to delete. Only the committer
// calls it, and only the committer writes the state, so no lock is needed.
func (l *Log) trimPending(full bool, now int64) bool {
	return trimPending(&l.state, l.currentLimits(), full, now)
}

func trimPending(st *logState, lim Limits, full bool, now int64) bool {
	if st.Msgs == 0 {
		return false
	}
	if st.first <= st.Acked {
		return true
	}
	if !full {
		return false
	}
	if lim.MaxAge > 0 && st.firstAt < now-int64(lim.MaxAge) {
		return true
	}
	return lim.Discard == DiscardOld && (st.Msgs > lim.maxMsgs() || st.Bytes > lim.maxBytes())
}

// txn is one write transaction of the committer.
type txn struct {
	s           *Store
	tx          *bbolt.Tx
	now         int64 // Unix ns, one reading for the whole transaction
	works       map[*Log]*work
	order       []*work
	arena       []byte // keys and values put in this transaction; bbolt keeps references until commit
	appended    uint64
	tableWrites int // table writes that changed the file
	// abort is set by a storage error; the whole transaction is rolled
	// back and every request in it fails with this error. Errors that
	// concern one request only (ErrFull, ErrAckRange, ...) are returned
	// before that request writes anything and leave the others alone.
	abort error
}

// work is a log's state inside a transaction.
type work struct {
	log        *Log
	st         logState
	lb         *bbolt.Bucket
	msgs       *bbolt.Bucket
	acks       *bbolt.Bucket
	dirty      bool // st must be written
	acksCopied bool // st.acks is this transaction's own copy
	init       bool // the log was opened in this transaction
	dropped    [layout.NumDropped]uint64
}

func (t *txn) fail(err error) error {
	if t.abort == nil {
		t.abort = err
	}
	return err
}

func (t *txn) alloc(n int) []byte {
	if cap(t.arena)-len(t.arena) < n {
		t.arena = make([]byte, 0, max(n, 4096))
	}
	b := t.arena[len(t.arena) : len(t.arena) : len(t.arena)+n]
	t.arena = t.arena[:len(t.arena)+n]
	return b
}

// work returns l's state in this transaction, starting from the last
// committed one.
func (t *txn) work(l *Log) (*work, error) {
	if w := t.works[l]; w != nil {
		return w, nil
	}
	lb := t.tx.Bucket(bucketLogs).Bucket(l.key)
	if lb == nil {
		return nil, t.fail(fmt.Errorf("%w: bucket of log %s missing", layout.ErrCorrupt, l.name))
	}
	w := &work{log: l, st: l.state, lb: lb, msgs: lb.Bucket(bucketMsgs), acks: lb.Bucket(bucketAcks)}
	if w.msgs == nil || w.acks == nil {
		return nil, t.fail(fmt.Errorf("%w: buckets of log %s missing", layout.ErrCorrupt, l.name))
	}
	w.dropped = w.st.Dropped
	w.msgs.FillPercent = 1 // keys only grow: fill pages completely
	t.works[l] = w
	t.order = append(t.order, w)
	return w, nil
}

// flush writes the state of every log the transaction changed.
func (t *txn) flush() {
	for _, w := range t.order {
		if w.dirty {
			if err := w.lb.Put(keyState, layout.MarshalState(w.st.State)); err != nil {
				t.fail(ioError(err))
				return
			}
		}
	}
}

// init creates l's buckets if needed and loads its state from the file.
func (t *txn) init(l *Log) error {
	logs := t.tx.Bucket(bucketLogs)
	lb := logs.Bucket(l.key)
	created := lb == nil
	var err error
	if created {
		if lb, err = logs.CreateBucket(l.key); err != nil {
			return t.fail(ioError(err))
		}
	}
	msgs, err := lb.CreateBucketIfNotExists(bucketMsgs)
	if err != nil {
		return t.fail(ioError(err))
	}
	acks, err := lb.CreateBucketIfNotExists(bucketAcks)
	if err != nil {
		return t.fail(ioError(err))
	}
	w := &work{log: l, lb: lb, msgs: msgs, acks: acks, dirty: created, init: true, acksCopied: true}
	w.st.acks = make(map[string]uint64)
	if v := lb.Get(keyState); v != nil {
		if w.st.State, err = layout.ParseState(v); err != nil {
			return err
		}
	}
	err = acks.ForEach(func(k, v []byte) error {
		a, err := layout.ParseUint64(v)
		if err != nil {
			return fmt.Errorf("cursor %s: %w", k, err)
		}
		w.st.acks[string(k)] = a
		return nil
	})
	if err != nil {
		return err
	}
	w.st.first = w.st.Last + 1
	if k, v := msgs.Cursor().First(); k != nil {
		if w.st.first, err = layout.Seq(k); err != nil {
			return err
		}
		if w.st.firstAt, _, err = layout.ParseRecord(v); err != nil {
			return fmt.Errorf("record %d: %w", w.st.first, err)
		}
	}
	// Records run without gaps from first to Last; anything else means
	// the file was not written by this code.
	if w.st.Msgs != w.st.Last+1-w.st.first {
		return fmt.Errorf("%w: log %s holds %d records from %d to %d", layout.ErrCorrupt, l.name, w.st.Msgs, w.st.first, w.st.Last)
	}
	w.dropped = w.st.Dropped
	msgs.FillPercent = 1
	t.works[l] = w
	t.order = append(t.order, w)
	return nil
}

// append stores data as the next records of l, applying its limits.
func (t *txn) append(l *Log, data [][]byte) (uint64, error) {
	w, err := t.work(l)
	if err != nil {
		return 0, err
	}
	lim := l.currentLimits()
	if err := t.expire(w, lim, -1); err != nil {
		return 0, err
	}
	n, size := uint64(len(data)), uint64(0)
	for _, d := range data {
		if lim.MaxBytes > 0 && int64(len(d)) > lim.MaxBytes {
			w.st.Refused += n
			w.dirty = true
			return 0, fmt.Errorf("%w: record of %d bytes is over %s %d", ErrFull, len(d), nameMaxBytes, lim.MaxBytes)
		}
		size += uint64(len(d))
	}
	if lim.Discard == DiscardNew {
		if err := t.makeRoom(w, lim, n, size); err != nil {
			return 0, err
		}
	}
	at := max(t.now, w.st.LastAt)
	first := w.st.Last + 1
	for i, d := range data {
		seq := first + uint64(i)
		k := layout.AppendKey(t.alloc(layout.KeyLen), seq)
		v := layout.AppendRecord(t.alloc(layout.RecordOverhead+len(d)), at, d)
		if err := w.msgs.Put(k, v); err != nil {
			return 0, t.fail(ioError(err))
		}
	}
	if w.st.Msgs == 0 {
		w.st.first, w.st.firstAt = first, at
	}
	w.st.Last += n
	w.st.LastAt = at
	w.st.Msgs += n
	w.st.Bytes += size
	w.dirty = true
	t.appended += n
	if lim.Discard == DiscardOld {
		if err := t.enforce(w, lim, -1); err != nil {
			return 0, err
		}
	}
	return first, nil
}

// makeRoom, for DiscardNew, deletes acknowledged records if that makes n
// records of size bytes fit, and fails with ErrFull if they still do not.
// Records that every consumer acknowledged are not worth refusing for.
func (t *txn) makeRoom(w *work, lim Limits, n, size uint64) error {
	over := func() (string, int64) {
		switch {
		case w.st.Msgs+n > lim.maxMsgs():
			return nameMaxMsgs, lim.MaxMsgs
		case w.st.Bytes+size > lim.maxBytes():
			return nameMaxBytes, lim.MaxBytes
		}
		return "", 0
	}
	for name, _ := over(); name != "" && w.st.Msgs > 0 && w.st.first <= w.st.Acked; name, _ = over() {
		if err := t.deleteFirst(w, -1); err != nil {
			return err
		}
	}
	if name, limit := over(); name != "" {
		w.st.Refused += n
		w.dirty = true
		return fmt.Errorf("%w: %s %d reached", ErrFull, name, limit)
	}
	return nil
}

// enforce, for DiscardOld, deletes the oldest records until l is within
// MaxMsgs and MaxBytes, at most budget of them (negative: no bound).
func (t *txn) enforce(w *work, lim Limits, budget int) error {
	for ; budget != 0; budget-- {
		reason := -1
		switch {
		case w.st.Msgs > lim.maxMsgs():
			reason = layout.DroppedMaxMsgs
		case w.st.Bytes > lim.maxBytes():
			reason = layout.DroppedMaxBytes
		default:
			return nil
		}
		if err := t.deleteFirst(w, reason); err != nil {
			return err
		}
	}
	return nil
}

// expire deletes records older than MaxAge, at most budget of them
// (negative: no bound).
func (t *txn) expire(w *work, lim Limits, budget int) error {
	if lim.MaxAge <= 0 {
		return nil
	}
	cutoff := t.now - int64(lim.MaxAge)
	for ; budget != 0 && w.st.Msgs > 0 && w.st.firstAt < cutoff; budget-- {
		if err := t.deleteFirst(w, layout.DroppedMaxAge); err != nil {
			return err
		}
	}
	return nil
}

// trimAcked deletes records every consumer acknowledged, at most budget.
func (t *txn) trimAcked(w *work, budget int) (int, error) {
	n := 0
	for ; n < budget && w.st.Msgs > 0 && w.st.first <= w.st.Acked; n++ {
		if err := t.deleteFirst(w, -1); err != nil {
			return n, err
		}
	}
	return n, nil
}

// trim deletes, in a bounded amount, acknowledged records and, with full,
// expired ones and those over limits. It reports whether work is left.
func (t *txn) trim(l *Log, full bool) (bool, error) {
	w, err := t.work(l)
	if err != nil {
		return false, err
	}
	n, err := t.trimAcked(w, trimChunk)
	if err != nil {
		return false, err
	}
	if full && n < trimChunk {
		lim := l.currentLimits()
		before := w.st.Msgs
		if err := t.expire(w, lim, trimChunk-n); err != nil {
			return false, err
		}
		n += int(before - w.st.Msgs)
		if lim.Discard == DiscardOld && n < trimChunk {
			if err := t.enforce(w, lim, trimChunk-n); err != nil {
				return false, err
			}
		}
	}
	return trimPending(&w.st, l.currentLimits(), full, t.now), nil
}

// deleteFirst deletes the oldest record of w. reason is the limit that
// deletes it (a layout.Dropped* index), or -1 for an acknowledged record;
// a record goes into the dropped counts only if some consumer still
// needed it.
func (t *txn) deleteFirst(w *work, reason int) error {
	var kb [layout.KeyLen]byte
	k := layout.AppendKey(kb[:0], w.st.first)
	v := w.msgs.Get(k)
	if v == nil {
		return t.fail(fmt.Errorf("%w: log %s: record %d missing", layout.ErrCorrupt, w.log.name, w.st.first))
	}
	size := uint64(len(v) - layout.RecordOverhead)
	if err := w.msgs.Delete(k); err != nil {
		return t.fail(ioError(err))
	}
	if reason >= 0 && w.st.first > w.st.Acked {
		w.st.Dropped[reason]++
	}
	w.st.first++
	w.st.Msgs--
	w.st.Bytes -= size
	w.st.firstAt = 0
	if w.st.Msgs > 0 {
		next := w.msgs.Get(layout.AppendKey(kb[:0], w.st.first))
		at, _, err := layout.ParseRecord(next)
		if err != nil {
			return t.fail(fmt.Errorf("log %s: record %d: %w", w.log.name, w.st.first, err))
		}
		w.st.firstAt = at
	}
	w.dirty = true
	return nil
}

// setAck records a consumer's position, copying the map on first change
// so that the published state stays untouched until commit.
func (t *txn) setAck(w *work, consumer string, seq uint64, remove bool) error {
	if !w.acksCopied {
		w.st.acks = maps.Clone(w.st.acks)
		if w.st.acks == nil {
			w.st.acks = make(map[string]uint64)
		}
		w.acksCopied = true
	}
	var err error
	if remove {
		delete(w.st.acks, consumer)
		err = w.acks.Delete([]byte(consumer))
	} else {
		w.st.acks[consumer] = seq
		err = w.acks.Put([]byte(consumer), layout.Uint64(seq))
	}
	if err != nil {
		return t.fail(ioError(err))
	}
	// The floor never goes down: what all consumers acknowledged stays
	// acknowledged, even when the last of them is removed.
	if m, ok := w.st.minAck(); ok && m > w.st.Acked {
		w.st.Acked = m
	}
	w.dirty = true
	return nil
}

func (t *txn) ack(l *Log, consumer string, upTo uint64) error {
	w, err := t.work(l)
	if err != nil {
		return err
	}
	cur, ok := w.st.acks[consumer]
	switch {
	case !ok:
		return ErrUnknownConsumer
	case upTo > w.st.Last:
		return fmt.Errorf("%w %d", ErrAckRange, w.st.Last)
	case upTo <= cur:
		return nil
	}
	if err := t.setAck(w, consumer, upTo, false); err != nil {
		return err
	}
	_, err = t.trimAcked(w, trimChunk)
	return err
}

func (t *txn) addConsumer(l *Log, consumer string) error {
	w, err := t.work(l)
	if err != nil {
		return err
	}
	if _, ok := w.st.acks[consumer]; ok {
		return nil
	}
	return t.setAck(w, consumer, w.st.Acked, false)
}

func (t *txn) removeConsumer(l *Log, consumer string) error {
	w, err := t.work(l)
	if err != nil {
		return err
	}
	if _, ok := w.st.acks[consumer]; !ok {
		return nil
	}
	if err := t.setAck(w, consumer, 0, true); err != nil {
		return err
	}
	_, err = t.trimAcked(w, trimChunk)
	return err
}
