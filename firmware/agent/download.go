package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/canopy-iot/canopy/firmware"
)

// downloadState is what download/<name>/<version>.state keeps: which
// chunks of the .part file are verified. It is written only after the
// .part file is synced, so what it says is on disk; the chunks it lists
// are checked again when a download resumes all the same, since a
// resumed download is rare and a local check costs no network.
type downloadState struct {
	Manifest string `json:"manifest"` // manifestID of the manifest it belongs to
	Have     bitmap `json:"have"`     // verified chunks
	Bytes    int64  `json:"bytes"`    // fetched from the hub so far (not reused locally)
}

// bitmap is a set of chunk indexes, base64 in JSON.
type bitmap []byte

func newBitmap(n int) bitmap     { return make(bitmap, (n+7)/8) }
func (b bitmap) has(i int) bool  { return b[i/8]&(1<<(i%8)) != 0 }
func (b bitmap) set(i int)       { b[i/8] |= 1 << (i % 8) }
func (b bitmap) clear(i int)     { b[i/8] &^= 1 << (i % 8) }
func (b bitmap) fits(n int) bool { return len(b) == (n+7)/8 }

// retryable is a download error that a later attempt may not meet: the
// link is down, the hub did not answer or is unavailable.
type retryable struct{ err error }

func (r retryable) Error() string { return r.err.Error() }
func (r retryable) Unwrap() error { return r.err }

// download is one artifact being downloaded into its .part file.
type download struct {
	a     *Agent
	m     firmware.Manifest
	st    firmware.Status // what progress reports say besides progress
	f     *os.File
	state downloadState
	have  int64 // bytes of verified chunks

	mu           sync.Mutex // the workers' results meet in put
	sincePersist int
	lastPersist  time.Time
	lastReport   time.Time
}

// download fetches m's missing chunks into its .part file until all are
// there and verified, waiting out link cuts, and returns how many bytes
// came from the hub. It returns early when ctx ends or on an error that a
// retry would not cure (a chunk that does not match, a full disk).
func (a *Agent) download(ctx context.Context, st firmware.Status, m firmware.Manifest) (int64, error) {
	d, err := a.openDownload(st, m)
	if err != nil {
		return 0, err
	}
	defer d.f.Close()
	d.reuse()
	if err := d.persist(); err != nil {
		return d.state.Bytes, err
	}
	retry := retryMin
	for {
		missing := d.missing()
		if len(missing) == 0 {
			return d.state.Bytes, nil
		}
		// Taken before the requests: a connection made while they fail
		// is not missed.
		connected := a.conn.wait()
		before := d.have
		err := d.fetch(ctx, missing)
		if perr := d.persist(); perr != nil && err == nil {
			err = perr
		}
		if err == nil {
			continue
		}
		if ctx.Err() != nil {
			return d.state.Bytes, ctx.Err()
		}
		if !errors.As(err, new(retryable)) {
			return d.state.Bytes, err
		}
		if d.have > before {
			retry = retryMin
		}
		a.log.Info("firmware download interrupted; resuming when the hub answers",
			"name", m.Name, "version", m.Version, "progress", d.progress(), "err", err)
		t := time.NewTimer(retry)
		select {
		case <-ctx.Done():
			t.Stop()
			return d.state.Bytes, ctx.Err()
		case <-connected:
			t.Stop()
		case <-t.C:
		}
		retry = min(2*retry, retryMax)
	}
}

// openDownload opens m's .part file and its state, starting over when
// the state belongs to another manifest or is unreadable.
func (a *Agent) openDownload(st firmware.Status, m firmware.Manifest) (*download, error) {
	part := a.dir.partPath(m)
	if err := os.MkdirAll(a.dir.downloadDir(m.Name), 0o750); err != nil {
		return nil, fmt.Errorf("download: %w", err)
	}
	f, err := os.OpenFile(part, os.O_RDWR|os.O_CREATE, 0o640)
	if err != nil {
		return nil, fmt.Errorf("download: %w", err)
	}
	d := &download{a: a, m: m, st: st, f: f, lastPersist: time.Now()}
	n := len(m.Chunks)
	resumed := false
	if b, err := os.ReadFile(a.dir.statePath(m)); err == nil {
		var s downloadState
		fi, serr := f.Stat()
		if json.Unmarshal(b, &s) == nil && s.Manifest == manifestID(m) && s.Have.fits(n) && serr == nil && fi.Size() == m.Size {
			d.state, resumed = s, true
		}
	}
	if !resumed {
		d.state = downloadState{Manifest: manifestID(m), Have: newBitmap(n)}
		if err := f.Truncate(0); err == nil {
			err = f.Truncate(m.Size)
		}
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("download: %s: %w", part, err)
		}
		return d, nil
	}
	buf := make([]byte, m.ChunkSize)
	verified := 0
	for i := range n {
		if !d.state.Have.has(i) {
			continue
		}
		b := buf[:m.ChunkLen(i)]
		if _, err := f.ReadAt(b, m.ChunkOffset(i)); err != nil || m.CheckChunk(i, b) != nil {
			d.state.Have.clear(i)
			continue
		}
		d.have += int64(len(b))
		verified++
	}
	a.log.Info("resuming firmware download", "name", m.Name, "version", m.Version, "chunks", verified, "of", n, "bytes", d.state.Bytes)
	return d, nil
}

// reuse copies the chunks that the installed version of the firmware
// shares with m from its artifact: they need no network.
func (d *download) reuse() {
	m := d.m
	rec, ok := d.a.dir.readInstalled(m.Name)
	if !ok || rec.m.Version == m.Version || rec.m.ChunkSize <= 0 {
		return
	}
	art, err := os.Open(d.a.dir.installedArtifact(m.Name))
	if err != nil {
		return
	}
	defer art.Close()
	at := make(map[string]int, len(rec.m.Chunks))
	for j, h := range rec.m.Chunks {
		if _, dup := at[h]; !dup {
			at[h] = j
		}
	}
	reused := 0
	buf := make([]byte, max(m.ChunkSize, rec.m.ChunkSize))
	for _, i := range d.missing() {
		j, ok := at[m.Chunks[i]]
		if !ok || rec.m.ChunkLen(j) != m.ChunkLen(i) {
			continue
		}
		b := buf[:m.ChunkLen(i)]
		// The installed artifact is checked chunk by chunk, like the
		// network's: its manifest is only a hint of where to look.
		if _, err := art.ReadAt(b, rec.m.ChunkOffset(j)); err != nil && !errors.Is(err, io.EOF) {
			return
		}
		if m.CheckChunk(i, b) != nil {
			continue
		}
		if err := d.put(i, b, false); err != nil {
			return // the fetch meets the same error and reports it
		}
		reused++
	}
	if reused > 0 {
		d.a.log.Info("reusing chunks of the installed firmware", "name", m.Name, "version", m.Version, "installed", rec.m.Version, "chunks", reused, "of", len(m.Chunks))
	}
}

func (d *download) missing() []int {
	var out []int
	for i := range d.m.Chunks {
		if !d.state.Have.has(i) {
			out = append(out, i)
		}
	}
	return out
}

type chunkResult struct {
	i    int
	data []byte
	err  error
}

// fetch requests the missing chunks, a few at a time so that the link's
// round trips overlap, and writes each as it arrives. After the first
// error it requests no more, keeps what arrives and returns that error.
func (d *download) fetch(ctx context.Context, missing []int) error {
	window := min(max(maxInFlightSize/d.m.ChunkSize, 1), maxInFlight)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	next := make(chan int)
	results := make(chan chunkResult, window)
	var wg sync.WaitGroup
	for range window {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				data, err := d.get(ctx, i)
				results <- chunkResult{i: i, data: data, err: err}
			}
		}()
	}
	go func() {
		defer close(next)
		for _, i := range missing {
			select {
			case next <- i:
			case <-ctx.Done():
				return
			}
		}
	}()
	go func() { wg.Wait(); close(results) }()
	var first error
	for r := range results {
		err := r.err
		if err == nil {
			err = d.put(r.i, r.data, true)
		}
		if err != nil && first == nil {
			first = err
			cancel()
		}
	}
	return first
}

// get fetches chunk i with a direct get by sequence and checks it.
func (d *download) get(ctx context.Context, i int) ([]byte, error) {
	m := d.m
	if err := d.a.limit.wait(ctx, m.ChunkLen(i)); err != nil {
		return nil, retryable{err}
	}
	seq := m.Seqs[i]
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	hdr, data, err := d.a.f.Request(ctx, chunkSubject, fmt.Appendf(nil, `{"seq":%d}`, seq))
	if err != nil {
		return nil, retryable{fmt.Errorf("chunk %d (stream sequence %d): %w", i, seq, err)}
	}
	st, err := parseStatus(hdr)
	if err != nil {
		return nil, fmt.Errorf("chunk %d (stream sequence %d): %w", i, seq, err)
	}
	switch {
	case st.code == 0:
	case st.code >= 500: // JetStream unavailable (e.g. no leader yet)
		return nil, retryable{fmt.Errorf("chunk %d (stream sequence %d): the hub answered %s", i, seq, st)}
	case st.code == 404:
		return nil, fmt.Errorf("chunk %d (stream sequence %d) is not in the hub's firmware store (%s): the artifact was deleted or the manifest does not belong to it", i, seq, st)
	default:
		return nil, fmt.Errorf("chunk %d (stream sequence %d): the hub answered %s", i, seq, st)
	}
	if got := headerValue(hdr, "Nats-Sequence"); got != "" && got != strconv.FormatUint(seq, 10) {
		// A late reply to another request: ask again.
		return nil, retryable{fmt.Errorf("chunk %d: got stream sequence %s, want %d", i, got, seq)}
	}
	if err := m.CheckChunk(i, data); err != nil {
		return nil, fmt.Errorf("the hub's copy of %s %s does not match its signed manifest: %w", m.Name, m.Version, err)
	}
	return data, nil
}

// put writes verified chunk i into the .part file; fetched says it came
// from the hub. The state is persisted every persistChunks chunks or
// persistEvery, and progress reported every progressEvery.
func (d *download) put(i int, data []byte, fetched bool) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, err := d.f.WriteAt(data, d.m.ChunkOffset(i)); err != nil {
		return fmt.Errorf("write %s: %w", d.f.Name(), err)
	}
	d.state.Have.set(i)
	d.have += int64(len(data))
	if fetched {
		d.state.Bytes += int64(len(data))
	}
	d.sincePersist++
	if d.sincePersist >= persistChunks || time.Since(d.lastPersist) >= persistEvery {
		if err := d.persistLocked(); err != nil {
			return err
		}
	}
	if time.Since(d.lastReport) >= progressEvery {
		d.lastReport = time.Now()
		st := d.st
		st.Progress, st.Bytes = d.progressLocked(), d.state.Bytes
		d.a.report(st)
	}
	return nil
}

func (d *download) persist() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.persistLocked()
}

// persistLocked syncs the .part file, then writes the state: the state
// never lists a chunk that is not on disk.
func (d *download) persistLocked() error {
	if err := d.f.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", d.f.Name(), err)
	}
	b, err := json.Marshal(d.state)
	if err != nil {
		return err
	}
	if err := writeFileAtomic(d.a.dir.statePath(d.m), b, 0o640); err != nil {
		return err
	}
	d.sincePersist, d.lastPersist = 0, time.Now()
	return nil
}

func (d *download) progress() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.progressLocked()
}

func (d *download) progressLocked() int {
	if d.m.Size == 0 {
		return 100
	}
	return int(d.have * 100 / d.m.Size)
}

// limiter is a token bucket on bytes: it lets rate bytes a second
// through, with bursts of up to a second's worth. A nil limiter lets
// everything through.
type limiter struct {
	mu     sync.Mutex
	rate   float64
	tokens float64
	last   time.Time
}

func newLimiter(rate int64) *limiter {
	if rate <= 0 {
		return nil
	}
	return &limiter{rate: float64(rate), tokens: float64(rate), last: time.Now()}
}

// wait takes n bytes from the bucket, waiting until they were earned.
// The bucket may go into debt: a chunk larger than a second's worth
// passes and the next waits longer.
func (l *limiter) wait(ctx context.Context, n int64) error {
	if l == nil {
		return nil
	}
	l.mu.Lock()
	now := time.Now()
	l.tokens = min(l.tokens+now.Sub(l.last).Seconds()*l.rate, l.rate)
	l.last = now
	l.tokens -= float64(n)
	debt := -l.tokens
	l.mu.Unlock()
	if debt <= 0 {
		return nil
	}
	t := time.NewTimer(time.Duration(debt / l.rate * float64(time.Second)))
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
