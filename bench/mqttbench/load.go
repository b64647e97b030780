package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// disconnectQuiesce is how long, in milliseconds, a client waits for its
// DISCONNECT to be written when a run closes it.
const disconnectQuiesce = 250

// load is one run: publishers on their own connections publish to one
// topic that subscribers on their own connections have subscribed to.
type load struct {
	common
	topic    string
	qos      int
	pubs     int
	subs     int
	size     int
	msgs     int           // per publisher; 0: publish for duration
	duration time.Duration // with msgs 0
	rate     float64       // per publisher, messages per second; 0: as fast as it can
	inflight int           // unacknowledged messages per publisher (or, at QoS 0, not yet written)
	drain    time.Duration // once the publishers are done, stop when nothing arrives for this long
	latency  bool          // record latencies
	warmup   int           // … from this sequence number on
	// Tests only: subscribers call hook before handling each message;
	// published is called once every publisher is done.
	hook      func()
	published func()
}

// flags defines the flags pubsub and latency share.
func (l *load) flags(fs *flag.FlagSet, defQoS int, defDuration time.Duration, defRate float64) {
	l.common.flags(fs)
	fs.IntVar(&l.qos, "qos", defQoS, "QoS of every publish and subscription: 0, 1 or 2")
	fs.IntVar(&l.size, "size", 64, fmt.Sprintf("payload size in bytes (at least %d: the header)", headerSize))
	fs.IntVar(&l.msgs, "msgs", 0, "messages per publisher (0: publish for -duration)")
	fs.DurationVar(&l.duration, "duration", defDuration, "how long each publisher publishes, unless -msgs is set")
	fs.Float64Var(&l.rate, "rate", defRate, "messages per second per publisher (0: as fast as it can)")
	fs.IntVar(&l.inflight, "inflight", 20, "messages a publisher may have unacknowledged (QoS 1, 2) or unwritten (QoS 0)")
	fs.DurationVar(&l.drain, "drain", 10*time.Second, "after the publishers are done, end the run once nothing has arrived for this long")
}

func (l *load) check(fs *flag.FlagSet) error {
	if err := l.common.check(fs); err != nil {
		return err
	}
	switch {
	case l.qos < 0 || l.qos > 2:
		return usageErrorf(fs, "-qos %d: want 0, 1 or 2", l.qos)
	case l.size < headerSize:
		return usageErrorf(fs, "-size %d: must be at least %d", l.size, headerSize)
	case l.msgs < 0:
		return usageErrorf(fs, "-msgs %d: must not be negative", l.msgs)
	case l.msgs == 0 && l.duration <= 0:
		return usageErrorf(fs, "-duration %v: must be positive (or set -msgs)", l.duration)
	case l.rate < 0:
		return usageErrorf(fs, "-rate %v: must not be negative", l.rate)
	case l.inflight < 1:
		return usageErrorf(fs, "-inflight %d: must be at least 1", l.inflight)
	case l.drain <= 0:
		return usageErrorf(fs, "-drain %v: must be positive", l.drain)
	case l.pubs < 1 || l.subs < 1:
		return usageErrorf(fs, "need at least one publisher and one subscriber")
	}
	return nil
}

// loadResult is what one run measured.
type loadResult struct {
	sent    []uint64      // per publisher
	pubTime time.Duration // the slowest publisher's first publish to its last acknowledgement
	maxLag  time.Duration // how far a paced publisher fell behind its schedule
	subs    []subResult
	drain   time.Duration // the last publisher done to the end of the drain
	drained bool          // every subscriber had every end marker
}

// totals adds up the subscribers' accounting.
func (r loadResult) totals() (t subResult, expected uint64) {
	var sent uint64
	for _, n := range r.sent {
		sent += n
	}
	for _, s := range r.subs {
		expected += sent
		t.received += s.received
		t.lost += s.lost
		t.unexpected += s.unexpected
		t.dups += s.dups
		t.reordered += s.reordered
		t.malformed += s.malformed
		t.unended += s.unended
		if s.received == 0 {
			continue
		}
		if t.first.IsZero() || s.first.Before(t.first) {
			t.first = s.first
		}
		if s.last.After(t.last) {
			t.last = s.last
		}
	}
	return t, expected
}

// valid reports whether every message sent arrived exactly once, in its
// publisher's order and as it was sent, at every subscriber.
func (t subResult) valid() bool {
	return t.lost == 0 && t.unexpected == 0 && t.dups == 0 && t.reordered == 0 && t.malformed == 0 && t.unended == 0
}

// problems describes what made a run invalid.
func (t subResult) problems() error {
	var errs []string
	for _, p := range []struct {
		n    uint64
		what string
	}{
		{t.lost, "messages lost"},
		{uint64(t.unended), "end markers lost"},
		{t.dups, "messages duplicated"},
		{t.reordered, "messages out of their publisher's order"},
		{t.malformed, "messages not as sent"},
		{t.unexpected, "messages received that the broker had not acknowledged"},
	} {
		if p.n > 0 {
			errs = append(errs, fmt.Sprintf("%d %s", p.n, p.what))
		}
	}
	if len(errs) == 0 {
		return nil
	}
	return errors.New(strings.Join(errs, "; "))
}

// countedLine is the part of a result line about counts, valid or not.
func (r loadResult) countedLine() string {
	t, expected := r.totals()
	var sent uint64
	for _, n := range r.sent {
		sent += n
	}
	return fmt.Sprintf("sent=%d expected=%d received=%d lost=%d unended=%d dups=%d reordered=%d malformed=%d unexpected=%d",
		sent, expected, t.received, t.lost, t.unended, t.dups, t.reordered, t.malformed, t.unexpected)
}

// run connects and subscribes every subscriber, then connects the
// publishers, lets them all publish at once and waits for the drain.
func (l *load) run(ctx context.Context) (loadResult, error) {
	var res loadResult
	ctx, cancel := context.WithTimeoutCause(ctx, l.timeout, fmt.Errorf("the run took longer than -timeout %v", l.timeout))
	defer cancel()
	ctx, fail := context.WithCancelCause(ctx)
	defer fail(nil)

	ids := clientIDs()
	var clients []mqtt.Client
	defer func() { disconnectAll(clients) }()
	lost := func(name string) func(error) {
		return func(err error) { fail(fmt.Errorf("%s: connection lost: %w", name, err)) }
	}
	opts := connOptions{url: l.url, keepalive: l.keepalive, readBuffer: l.readBuffer}

	var progress, ended atomic.Int64
	subs := make([]*subscriber, l.subs)
	for i := range subs {
		s := newSubscriber(fmt.Sprintf("subscriber %d", i+1), l.pubs, l.size, &progress, &ended)
		s.latency, s.warmup, s.hook = l.latency, uint64(l.warmup), l.hook
		o := opts
		o.order, o.onMessage, o.onLost = true, s.handle, lost(s.name)
		s.cl = newClient(ids('s', i), o)
		clients = append(clients, s.cl)
		if err := connect(ctx, s.cl, s.name); err != nil {
			return res, err
		}
		// The SUBACK comes after the broker has registered the
		// subscription: everything published afterwards reaches it.
		tok := s.cl.Subscribe(l.topic, byte(l.qos), nil)
		if err := await(ctx, tok); err != nil {
			return res, fmt.Errorf("%s: subscribe: %w", s.name, err)
		}
		if granted := tok.(*mqtt.SubscribeToken).Result()[l.topic]; granted != byte(l.qos) {
			return res, fmt.Errorf("%s: the broker granted 0x%02x to a QoS %d subscription", s.name, granted, l.qos)
		}
		subs[i] = s
	}

	pubs := make([]*publisher, l.pubs)
	for i := range pubs {
		p := &publisher{name: fmt.Sprintf("publisher %d", i+1), index: uint32(i), l: l}
		o := opts
		o.onLost = lost(p.name)
		p.cl = newClient(ids('p', i), o)
		clients = append(clients, p.cl)
		if err := connect(ctx, p.cl, p.name); err != nil {
			return res, err
		}
		pubs[i] = p
	}

	var wg sync.WaitGroup
	for _, p := range pubs {
		wg.Go(func() {
			if err := p.run(ctx); err != nil {
				fail(err)
			}
		})
	}
	wg.Wait()
	if ctx.Err() != nil {
		return res, context.Cause(ctx)
	}
	done := time.Now()
	if l.published != nil {
		l.published()
	}
	for _, p := range pubs {
		res.sent = append(res.sent, p.sent)
		res.pubTime = max(res.pubTime, p.elapsed)
		res.maxLag = max(res.maxLag, p.maxLag)
	}

	drained, err := drainWait(ctx, &progress, &ended, int64(l.pubs*l.subs), l.drain)
	if err != nil {
		return res, err
	}
	res.drain, res.drained = time.Since(done), drained
	for _, s := range subs {
		res.subs = append(res.subs, s.result(res.sent))
	}
	// A connection lost while the results were read still spoils them.
	if ctx.Err() != nil {
		return res, context.Cause(ctx)
	}
	return res, nil
}

// drainWait returns true once want end markers have arrived, or false
// once nothing at all has arrived for stall.
func drainWait(ctx context.Context, progress, ended *atomic.Int64, want int64, stall time.Duration) (bool, error) {
	tick := time.NewTicker(min(stall/20, 20*time.Millisecond))
	defer tick.Stop()
	seen, since := progress.Load(), time.Now()
	for {
		if ended.Load() >= want {
			return true, nil
		}
		select {
		case <-ctx.Done():
			return false, fmt.Errorf("draining: %w", context.Cause(ctx))
		case <-tick.C:
			if n := progress.Load(); n != seen {
				seen, since = n, time.Now()
			} else if time.Since(since) >= stall {
				return false, nil
			}
		}
	}
}

// disconnectAll closes every client at once and waits until they are all
// closed.
func disconnectAll(clients []mqtt.Client) {
	var wg sync.WaitGroup
	for _, cl := range clients {
		wg.Go(func() {
			if cl.IsConnectionOpen() {
				cl.Disconnect(disconnectQuiesce)
			}
		})
	}
	wg.Wait()
}

// publisher is one publishing connection.
type publisher struct {
	name  string
	index uint32
	l     *load
	cl    mqtt.Client

	sent    uint64        // messages acknowledged (QoS 1, 2) or written (QoS 0)
	elapsed time.Duration // first publish to the last acknowledgement
	maxLag  time.Duration // how far it fell behind -rate
}

// run publishes until -msgs or -duration, with at most -inflight tokens
// outstanding, then its end marker. Paho acknowledges messages in order
// (MQTT 3.1.1 §4.6: PUBACKs and PUBRECs come in the order of the
// PUBLISHes), so waiting for the oldest token is waiting for the next one
// to complete.
func (p *publisher) run(ctx context.Context) error {
	l := p.l
	var interval time.Duration
	if l.rate > 0 {
		interval = time.Duration(float64(time.Second) / l.rate)
	}
	window := make([]mqtt.Token, l.inflight) // a ring: n tokens from head
	head, n := 0, 0
	var acked uint64
	settle := func() error {
		if err := await(ctx, window[head]); err != nil {
			return fmt.Errorf("%s: message %d: %w", p.name, acked, err)
		}
		window[head] = nil
		head, n = (head+1)%len(window), n-1
		acked++
		return nil
	}

	start := time.Now()
	var seq uint64
	for ; l.msgs == 0 || seq < uint64(l.msgs); seq++ {
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		default:
		}
		if l.msgs == 0 && time.Since(start) >= l.duration {
			break
		}
		if interval > 0 {
			if err := p.pace(ctx, start.Add(time.Duration(seq)*interval)); err != nil {
				return err
			}
		}
		if n == len(window) {
			if err := settle(); err != nil {
				return err
			}
		}
		payload := newPayload(l.size, header{kind: kindData, pub: p.index, seq: seq, sent: sinceEpoch()})
		window[(head+n)%len(window)] = p.cl.Publish(l.topic, byte(l.qos), false, payload)
		n++
	}
	for n > 0 {
		if err := settle(); err != nil {
			return err
		}
	}
	p.elapsed = time.Since(start)
	p.sent = acked
	// The end marker goes behind every message, at the same QoS.
	marker := newPayload(headerSize, header{kind: kindEnd, pub: p.index, seq: acked, sent: sinceEpoch()})
	if err := await(ctx, p.cl.Publish(l.topic, byte(l.qos), false, marker)); err != nil {
		return fmt.Errorf("%s: end marker: %w", p.name, err)
	}
	return nil
}

// pace waits until due, or notes how late the publisher is.
func (p *publisher) pace(ctx context.Context, due time.Time) error {
	d := time.Until(due)
	if d <= 0 {
		p.maxLag = max(p.maxLag, -d)
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}
