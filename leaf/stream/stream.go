package stream

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/canopy-iot/canopy/leaf/natsd"
	"github.com/canopy-iot/canopy/leaf/subject"
	"github.com/canopy-iot/canopy/store"
)

// hubConsumer is the log consumer whose cursor is the hub's acknowledgement.
const hubConsumer = "hub"

// Sync timing.
const (
	ackTimeout  = 5 * time.Second        // resend from the cursor when the oldest message waits longer
	retryPause  = 500 * time.Millisecond // after the hub refused or had no interest
	linkPoll    = 50 * time.Millisecond  // how often a stalled syncer checks the link
	ingestQueue = 4096                   // messages waiting for their append, per stream
	appendBatch = 512                    // most messages appended in one transaction
)

// Link is what a stream needs from the uplink.
type Link interface {
	Up() bool
	// Generation changes whenever the link was re-established.
	Generation() uint64
}

// Manager runs the leaf's streams.
type Manager struct {
	filters subject.Index[*Stream] // every stream's subject filters
	device  string
	log     *slog.Logger
	in      *natsd.Internal
	link    Link
	streams []*Stream
	stopped chan struct{} // closed when Run returns: nobody appends any more
	// replaySlots bounds the replay requests served at once.
	replaySlots chan struct{}
}

// ErrStopped refuses a message offered after the streams stopped.
var ErrStopped = errors.New("streams stopped")

// Stream is one leaf stream.
type Stream struct {
	cfg      Config
	m        *Manager
	log      *store.Log
	prefix   string // hub subject prefix, device filled in
	queue    chan ingested
	appended chan struct{} // signalled after each append
	acks     chan ack
	inbox    string      // _INBOX.<device>.<random>.<stream>: under the device's _INBOX.<device>.>
	lastResp chan []byte // header blocks of the answers to the last-upstream query
	refusals refusalLog  // append loop only
	// cursor is the last sequence the hub acknowledged, for cursorLoop to
	// save; cursorSet is signalled when it moves.
	cursor    atomic.Uint64
	cursorSet chan struct{}
}

// refusalLog rate-limits the warning for messages a stream refused (a
// full log under discard: new, a full disk): once per change of reason,
// then at most every refusalLogEvery with the number refused meanwhile.
type refusalLog struct {
	last    string
	at      time.Time
	pending int
}

const refusalLogEvery = 10 * time.Second

func (s *Stream) warnRefused(err error, n int) {
	r := &s.refusals
	r.pending += n
	if err.Error() == r.last && time.Since(r.at) < refusalLogEvery {
		return
	}
	s.m.log.Warn("stream refused messages", "stream", s.cfg.Name, "err", err, "msgs", r.pending)
	r.last, r.at, r.pending = err.Error(), time.Now(), 0
}

type ingested struct {
	rec   []byte
	reply []byte     // a copy; nil without a reply
	done  chan error // told the append's outcome; nil when nobody waits
}

type ack struct {
	seq uint64
	err string // the hub refused the message
}

// New opens (or creates) the logs of the configured streams in st.
// device is the device's name; srv carries local messages; link tells
// whether the hub is reachable.
func New(cfgs []Config, device string, st *store.Store, srv *natsd.Server, link Link, log *slog.Logger) (*Manager, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m := &Manager{device: device, log: log.With("component", "stream"), link: link, in: srv.NewInternal("streams"), stopped: make(chan struct{}), replaySlots: make(chan struct{}, replayWorkers)}
	for _, c := range cfgs {
		c = c.WithDefaults()
		limits := store.Limits{MaxMsgs: c.MaxMsgs, MaxBytes: int64(c.MaxBytes), MaxAge: c.MaxAge.Std()}
		if c.Discard == "new" {
			limits.Discard = store.DiscardNew
		}
		l, err := st.Log(c.Name, limits)
		if err != nil {
			return nil, fmt.Errorf("stream %s: %w", c.Name, err)
		}
		if err := l.Consumer(hubConsumer); err != nil {
			return nil, fmt.Errorf("stream %s: %w", c.Name, err)
		}
		s := &Stream{
			cfg: c, m: m, log: l,
			prefix:    strings.ReplaceAll(c.Upstream.Subject, "{device}", device),
			queue:     make(chan ingested, ingestQueue),
			appended:  make(chan struct{}, 1),
			acks:      make(chan ack, 2*c.Window),
			lastResp:  make(chan []byte, 1),
			cursorSet: make(chan struct{}, 1),
			inbox:     "_INBOX." + device + "." + randomToken() + "." + c.Name,
		}
		m.streams = append(m.streams, s)
		for _, f := range c.Subjects {
			if err := m.filters.Insert(&subject.Sub[*Stream]{Client: s, Subject: f}); err != nil {
				return nil, fmt.Errorf("stream %s: subject %q: %w", c.Name, f, err)
			}
		}
	}
	srv.SetIngest(m)
	return m, nil
}

func randomToken() string {
	b := make([]byte, 8)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// Run appends and syncs until ctx ends.
func (m *Manager) Run(ctx context.Context) error {
	defer close(m.stopped)
	defer m.in.Close()
	var wg sync.WaitGroup
	for _, s := range m.streams {
		unsub, err := m.in.Subscribe(s.inbox+".*", "", s.onAck)
		if err != nil {
			return fmt.Errorf("stream %s: %w", s.cfg.Name, err)
		}
		defer unsub()
		unsubLast, err := m.in.Subscribe(s.inbox+".last.reply", "", func(_, _, hdr, _ []byte) {
			// A direct get answers with the stored message; its headers
			// (or a status) are all the check needs.
			select {
			case s.lastResp <- append([]byte(nil), hdr...):
			default:
			}
		})
		if err != nil {
			return fmt.Errorf("stream %s: %w", s.cfg.Name, err)
		}
		defer unsubLast()
		unsubReplay, err := m.in.Subscribe(ReplayPrefix+s.cfg.Name+".*", "", func(subj, reply, _, payload []byte) {
			s.serveReplay(subj, reply, payload)
		})
		if err != nil {
			return fmt.Errorf("stream %s: %w", s.cfg.Name, err)
		}
		defer unsubReplay()
		wg.Add(3)
		go func() { defer wg.Done(); s.appendLoop(ctx) }()
		go func() { defer wg.Done(); s.syncLoop(ctx) }()
		go func() { defer wg.Done(); s.cursorLoop(ctx) }()
	}
	wg.Wait()
	// Wait for replay requests in progress; later ones are answered busy.
	for range replayWorkers {
		m.replaySlots <- struct{}{}
	}
	return nil
}

// Ingest implements natsd.Ingest: a local publish on a stream's subjects is
// queued for its append (blocking the publisher while the queue is full:
// durability comes before speed). It reports whether a stream took it.
func (m *Manager) Ingest(subj, reply, hdr, payload []byte) bool {
	// Offered every local publish: the filter index answers from its cache
	// without allocating.
	res := m.filters.MatchBytes(subj)
	var buf [4]*Stream
	taken := buf[:0]
	for _, f := range res.Plain {
		s := f.Client
		if slices.Contains(taken, s) {
			continue // two filters of one stream match
		}
		taken = append(taken, s)
		in := ingested{rec: encode(subj, hdr, payload)}
		if len(reply) > 0 {
			in.reply = append([]byte(nil), reply...)
		}
		s.queue <- in
	}
	return len(taken) > 0
}

// Store appends a message published by a local protocol bridge (MQTT) to
// every stream whose subjects match, and, when wait is set, returns only
// once it is on disk in all of them, with the first refusal (a full stream
// under discard: new, a full disk). It reports whether a stream took it.
func (m *Manager) Store(subj, hdr, payload []byte, wait bool) (taken bool, err error) {
	res := m.filters.MatchBytes(subj)
	var buf [4]*Stream
	streams := buf[:0]
	var done chan error
	for _, f := range res.Plain {
		s := f.Client
		if slices.Contains(streams, s) {
			continue
		}
		streams = append(streams, s)
		if wait && done == nil {
			done = make(chan error, len(res.Plain))
		}
		select {
		case s.queue <- ingested{rec: encode(subj, hdr, payload), done: done}:
		case <-m.stopped:
			return true, ErrStopped
		}
	}
	if done != nil {
		for range streams {
			select {
			case e := <-done:
				if e != nil && err == nil {
					err = e
				}
			case <-m.stopped:
				return true, ErrStopped
			}
		}
	}
	return len(streams) > 0, err
}

// appendLoop appends what was ingested, many messages per transaction, and
// answers publishers that asked once their messages are on disk.
func (s *Stream) appendLoop(ctx context.Context) {
	batch := make([]ingested, 0, appendBatch)
	recs := make([][]byte, 0, appendBatch)
	for {
		select {
		case <-ctx.Done():
			return
		case in := <-s.queue:
			batch = append(batch[:0], in)
		}
	more:
		for len(batch) < appendBatch {
			select {
			case in := <-s.queue:
				batch = append(batch, in)
			default:
				break more
			}
		}
		recs = recs[:0]
		for _, in := range batch {
			recs = append(recs, in.rec)
		}
		first, err := s.log.AppendBatch(recs)
		if err != nil {
			s.warnRefused(err, len(batch))
		}
		for i, in := range batch {
			if in.done != nil {
				in.done <- err
			}
			if in.reply != nil {
				s.m.in.Publish(in.reply, nil, nil, s.pubAck(first+uint64(i), err))
			}
		}
		select {
		case s.appended <- struct{}{}:
		default:
		}
	}
}

// pubAck is the answer to a publisher, shaped as JetStream's so that
// nats.go's js.Publish accepts it.
func (s *Stream) pubAck(seq uint64, err error) []byte {
	if err == nil {
		b, _ := json.Marshal(struct {
			Stream string `json:"stream"`
			Seq    uint64 `json:"seq"`
		}{s.cfg.Name, seq})
		return b
	}
	code := 500
	if errors.Is(err, store.ErrFull) || errors.Is(err, store.ErrDiskFull) {
		code = 503
	}
	b, _ := json.Marshal(map[string]any{"error": map[string]any{"code": code, "description": err.Error()}})
	return b
}

// onAck receives the hub's answers to the syncer's publishes; the last
// token of the reply subject is the sequence.
func (s *Stream) onAck(subj, _, _, payload []byte) {
	i := strings.LastIndexByte(string(subj), '.')
	seq, err := strconv.ParseUint(string(subj[i+1:]), 10, 64)
	if err != nil {
		return
	}
	var resp struct {
		Error *struct {
			Description string `json:"description"`
		} `json:"error"`
	}
	a := ack{seq: seq}
	if json.Unmarshal(payload, &resp) != nil {
		a.err = "unreadable acknowledgement"
	} else if resp.Error != nil {
		a.err = resp.Error.Description
	}
	select {
	case s.acks <- a:
	default: // the syncer resends anything whose ack it misses
	}
}

// syncLoop sends the log to the hub in order, keeping up to Window
// messages in flight, and advances the hub cursor on acknowledgements.
func (s *Stream) syncLoop(ctx context.Context) {
	acked := s.log.Acked(hubConsumer)
	next := acked + 1
	inflight := map[uint64]bool{}
	var oldestSent time.Time
	hdr := make([]byte, 0, 256)
	var batch []stored
	lastRefusal := ""

	gen := s.m.link.Generation()
	// Before the first send of this process only: the hub may hold
	// messages whose acknowledgements a crash lost. Later resends rely on
	// Nats-Msg-Id: a message that failed in the middle of a window (a
	// stream leader election) can leave a gap before messages the hub did
	// store, and skipping up to the hub's last one would lose it.
	checkUpstream := true
	resend := func() {
		next = acked + 1
		clear(inflight)
	}
	limit := newBucket(s.cfg.Upstream.Rate, time.Now())
	tick := time.NewTicker(linkPoll)
	defer tick.Stop()
	for ctx.Err() == nil {
		if !s.m.link.Up() {
			resend()
			if !pause(ctx, linkPoll) {
				return
			}
			continue
		}
		if g := s.m.link.Generation(); g != gen {
			// A new link: answers to what went over the old one are lost.
			gen = g
			resend()
		}
		if checkUpstream && len(inflight) == 0 {
			// What the hub already stored need not go again: after an
			// outage longer than its duplicate window, the Nats-Msg-Id
			// alone would not stop a second copy.
			checkUpstream = false
			if seq, ok := s.lastUpstream(ctx); ok && seq > acked && seq <= s.log.Stats().LastSeq {
				if err := s.log.Ack(hubConsumer, seq); err == nil {
					s.m.log.Info("hub already had stream messages; skipping them", "stream", s.cfg.Name, "through", seq)
					acked, next = seq, seq+1
				}
			}
		}
		// Fill the window, reading the log in one transaction, as far as
		// the rate cap allows.
		sentAny, refused := false, false
		room := s.cfg.Window - len(inflight)
		var throttle time.Duration
		if room > 0 {
			room, throttle = limit.allow(time.Now(), room)
		}
		if room > 0 {
			batch = batch[:0]
			err := s.log.Read(next, room, func(seq uint64, _ time.Time, data []byte) error {
				batch = append(batch, stored{seq: seq, rec: append([]byte(nil), data...)})
				return nil
			})
			if err != nil {
				s.m.log.Warn("stream read failed", "stream", s.cfg.Name, "err", err)
			}
			for _, r := range batch {
				subj, h, payload, err := decode(r.rec)
				if err != nil {
					s.m.log.Error("skipping unreadable stored message", "stream", s.cfg.Name, "seq", r.seq)
					next = r.seq + 1
					continue
				}
				hdr = withMsgID(hdr[:0], h, fmt.Sprintf("%s.%s.%d", s.m.device, s.cfg.Name, r.seq))
				up := s.prefix + "." + string(subj)
				reply := s.inbox + "." + strconv.FormatUint(r.seq, 10)
				if !s.m.in.Publish([]byte(up), []byte(reply), hdr, payload) {
					// The hub has no interest: no stream for these
					// subjects yet, or the link just dropped.
					if lastRefusal != "no interest" {
						s.m.log.Warn("the hub does not take the stream's messages; retrying", "stream", s.cfg.Name, "subject", up)
						lastRefusal = "no interest"
					}
					refused = true
					break
				}
				if len(inflight) == 0 {
					oldestSent = time.Now()
				}
				inflight[r.seq] = true
				next = r.seq + 1
				sentAny = true
				limit.spend()
			}
		}
		if refused && len(inflight) == 0 {
			if !pause(ctx, retryPause) {
				return
			}
			continue
		}
		if len(inflight) == 0 && !sentAny && throttle > 0 {
			// Nothing in flight, more to send, and the cap says wait.
			if !pause(ctx, throttle) {
				return
			}
			continue
		}
		if len(inflight) == 0 && !sentAny {
			// Everything is acknowledged: wait for the next append.
			select {
			case <-ctx.Done():
				return
			case <-s.appended:
			}
			continue
		}
		select {
		case <-ctx.Done():
			return
		case a := <-s.acks:
			// Take every acknowledgement already waiting, so that the
			// cursor moves (and cursorLoop saves it) once for all of them.
			var refusal *ack
			for more := true; more; {
				switch {
				case !inflight[a.seq]: // an answer to an earlier send
				case a.err != "":
					if refusal == nil {
						r := a
						refusal = &r
					}
				default:
					delete(inflight, a.seq)
				}
				select {
				case a = <-s.acks:
				default:
					more = false
				}
			}
			// The cursor moves over the contiguous acknowledged prefix,
			// which stops before a refused message.
			newAcked := acked
			for seq := acked + 1; seq < next && !inflight[seq]; seq++ {
				newAcked = seq
			}
			if newAcked > acked {
				s.cursor.Store(newAcked)
				select {
				case s.cursorSet <- struct{}{}:
				default: // cursorLoop has yet to take the last signal
				}
				acked = newAcked
				oldestSent = time.Now()
				lastRefusal = ""
			}
			if refusal != nil {
				if refusal.err != lastRefusal {
					s.m.log.Warn("the hub refused a stream message; resending", "stream", s.cfg.Name, "seq", refusal.seq, "err", refusal.err)
					lastRefusal = refusal.err
				}
				resend()
				if !pause(ctx, retryPause) {
					return
				}
				continue
			}
		case <-s.appended:
		case <-after(throttle): // the cap lets the next message go
		case <-tick.C: // notice a new link without waiting for the ack timeout
		case <-time.After(time.Until(oldestSent.Add(ackTimeout))):
			if len(inflight) > 0 {
				s.m.log.Debug("stream acknowledgements overdue; resending", "stream", s.cfg.Name, "from", acked+1)
				resend()
			}
		}
	}
}

// cursorLoop saves the hub cursor in the background, the latest value at
// each write, so that the syncer keeps its window full while a commit (a
// disk sync) is under way instead of waiting for one after every batch of
// acknowledgements. A cursor saved late costs nothing but resending, after
// a crash, what the hub already has, which Nats-Msg-Id and the upstream
// check keep from being stored twice. The syncer's own position is the
// acknowledged one either way.
func (s *Stream) cursorLoop(ctx context.Context) {
	save := func() {
		// Acknowledgements only move forward: a value at or below the
		// saved one changes nothing.
		if seq := s.cursor.Load(); seq > s.log.Acked(hubConsumer) {
			if err := s.log.Ack(hubConsumer, seq); err != nil {
				s.m.log.Warn("stream cursor not saved", "stream", s.cfg.Name, "err", err)
			}
		}
	}
	for {
		select {
		case <-ctx.Done():
			save() // the last acknowledgements, before the store closes
			return
		case <-s.cursorSet:
			save()
		}
	}
}

type stored struct {
	seq uint64
	rec []byte
}

// after is time.After(d) for d > 0, and a channel that never fires
// otherwise.
func after(d time.Duration) <-chan time.Time {
	if d <= 0 {
		return nil
	}
	return time.After(d)
}

// pause waits d, or less when ctx ends; false when it ended.
func pause(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// Stats returns the stats of the named stream's log, false when there is
// no such stream.
func (m *Manager) Stats(name string) (store.Stats, bool) {
	for _, s := range m.streams {
		if s.cfg.Name == name {
			return s.log.Stats(), true
		}
	}
	return store.Stats{}, false
}

// lastUpstream asks the hub stream for the last message stored under this
// stream's prefix and returns its device sequence, read from its
// Nats-Msg-Id. False when there is no such message or no answer.
//
// It uses JetStream's direct get, last by subject
// ($JS.API.DIRECT.GET.<stream>.<prefix>.>), which a device may be allowed
// for its own subjects only, unlike $JS.API.STREAM.MSG.GET, which reads
// any subject of the stream. The hub stream needs allow_direct.
func (s *Stream) lastUpstream(ctx context.Context) (uint64, bool) {
	name := *s.cfg.Upstream.Stream
	if name == "" {
		return 0, false
	}
	api := APIPrefix(s.cfg.Upstream.Domain)
	select {
	case <-s.lastResp: // a stale answer
	default:
	}
	// The subject carries the request; the payload stays empty.
	if !s.m.in.Publish([]byte(api+".DIRECT.GET."+name+"."+s.prefix+".>"), []byte(s.inbox+".last.reply"), nil, nil) {
		return 0, false
	}
	t := time.NewTimer(lastUpstreamTimeout)
	defer t.Stop()
	var hdr []byte
	select {
	case <-ctx.Done():
		return 0, false
	case <-t.C:
		// Also what a hub stream without allow_direct looks like, or a
		// hub whose leaf connections cannot reach direct gets without a
		// domain: nobody serves the request. Resending from the cursor
		// then relies on the duplicate window alone.
		s.m.log.Warn("no answer from the hub stream about its last message", "stream", s.cfg.Name, "hub_stream", name)
		return 0, false
	case hdr = <-s.lastResp:
	}
	switch status := directGetStatus(hdr); status {
	case "":
		return s.seqFromMsgID(hdr)
	case "404": // nothing stored under the prefix yet
		return 0, false
	default: // 408 (a bad request), 503 and the like: no answer
		s.m.log.Debug("the hub stream did not answer about its last message", "stream", s.cfg.Name, "hub_stream", name, "status", status)
		return 0, false
	}
}

// directGetStatus is the status code of a direct get's answer: "" for a
// stored message (a plain "NATS/1.0" header line), else the code after
// it, such as "404" for no message.
func directGetStatus(hdr []byte) string {
	line, _, _ := strings.Cut(string(hdr), "\r\n")
	rest, ok := strings.CutPrefix(line, "NATS/1.0")
	if !ok {
		return "unreadable"
	}
	code, _, _ := strings.Cut(strings.TrimSpace(rest), " ")
	return code
}

const lastUpstreamTimeout = 2 * time.Second

// seqFromMsgID reads the device sequence from a header block holding
// Nats-Msg-Id: <device>.<stream>.<seq>, written by this device and stream.
func (s *Stream) seqFromMsgID(hdr []byte) (uint64, bool) {
	want := "Nats-Msg-Id: " + s.m.device + "." + s.cfg.Name + "."
	for _, line := range strings.Split(string(hdr), "\r\n") {
		if rest, ok := strings.CutPrefix(line, want); ok {
			seq, err := strconv.ParseUint(strings.TrimSpace(rest), 10, 64)
			return seq, err == nil
		}
	}
	return 0, false
}
