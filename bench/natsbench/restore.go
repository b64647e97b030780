package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/canopy-iot/canopy/internal/wait"
)

const restoreSubject = "bench.restore"

// runRestore measures how long a leaf node takes to carry messages to its
// hub again once a cut link can be restored. The leaf's leafnode link goes
// through a TCP proxy that this command runs (-listen, forwarding to the
// hub's leafnode port, -upstream). A subscriber on the hub (-url) receives
// what a publisher on the leaf (-pub-url) publishes every -interval, each
// message numbered. Once messages flow, the proxy cuts the link: it closes
// its listener, so new connections are refused, and every connection it
// carries, both ways. After -outage it listens again, and the run measures
// from that moment to the first message the hub subscriber receives.
//
// The leaf must be started after the proxy listens (so that its first
// connection goes through it); the command waits for the leaf's client
// port to listen before it connects the publisher.
func runRestore(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("restore", stderr)
	var c common
	c.flags(fs)
	pubURL := fs.String("pub-url", "", "the leaf's client URL, for the publisher (required)")
	listen := fs.String("listen", "", "the proxy's listen address, host:port, that the leaf's uplink uses (required)")
	upstream := fs.String("upstream", "", "the hub's leafnode address, host:port (required)")
	outage := fs.Duration("outage", 2*time.Second, "how long the link stays cut")
	interval := fs.Duration("interval", time.Millisecond, "publish one message this often")
	size := fs.Int("size", 16, "payload size in bytes (at least 8: the sequence number)")
	warm := fs.Int("warm", 100, "messages the hub must receive before the link is cut")
	within := fs.Duration("within", time.Minute, "fail if no message arrives this long after the link is restored")
	if err := parse(fs, args); err != nil {
		return err
	}
	switch {
	case *pubURL == "" || *listen == "" || *upstream == "":
		return usageErrorf(fs, "-pub-url, -listen and -upstream are required")
	case *size < seqBytes:
		return usageErrorf(fs, "-size %d: must be at least %d", *size, seqBytes)
	case *outage <= 0 || *interval <= 0 || *within <= 0:
		return usageErrorf(fs, "-outage, -interval and -within must be positive")
	case *warm < 1:
		return usageErrorf(fs, "-warm %d: must be at least 1", *warm)
	}
	pubPort, err := urlPort(*pubURL)
	if err != nil {
		return usageErrorf(fs, "-pub-url: %v", err)
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	f := newFailures()

	p := &proxy{addr: *listen, upstream: *upstream, conns: map[net.Conn]struct{}{}, f: f}
	if _, err := p.listen(); err != nil {
		return err
	}
	defer p.cut()

	rc := &restoreCounter{warm: int64(*warm), warmed: make(chan struct{}), first: make(chan struct{})}
	sub, err := connect(c.url, "subscriber", f)
	if err != nil {
		return err
	}
	defer sub.Close()
	s, err := sub.Subscribe(restoreSubject, rc.handle)
	if err != nil {
		return fmt.Errorf("subscriber: subscribe: %w", err)
	}
	if err := s.SetPendingLimits(-1, -1); err != nil {
		return fmt.Errorf("subscriber: pending limits: %w", err)
	}
	if err := sub.FlushTimeout(flushTimeout); err != nil {
		return fmt.Errorf("subscriber: flush after subscribe: %w", err)
	}

	if err := wait.Until(ctx, probeTimeout, func() error { return listening(pubPort) }); err != nil {
		return fmt.Errorf("the leaf's client port: %w", err)
	}
	pub, err := connect(*pubURL, "publisher", f)
	if err != nil {
		return err
	}
	defer pub.Close()
	var next atomic.Uint64 // the sequence number of the next message
	stop := make(chan struct{})
	stopped := make(chan struct{})
	defer func() { close(stop); <-stopped }()
	go func() {
		defer close(stopped)
		payload := make([]byte, *size)
		tick := time.NewTicker(*interval)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			binary.BigEndian.PutUint64(payload, next.Load())
			if err := pub.Publish(restoreSubject, payload); err != nil {
				f.report(fmt.Errorf("publisher: %w", err))
				return
			}
			next.Add(1)
		}
	}()

	// awaitEvent waits for ch, or fails with what is keeping it.
	awaitEvent := func(ch <-chan struct{}, limit time.Duration, what string) error {
		t := time.NewTimer(limit)
		defer t.Stop()
		select {
		case <-ch:
			return nil
		case err := <-f:
			return err
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w", what, ctx.Err())
		case <-t.C:
			return fmt.Errorf("no %s within %v (%d messages published, %d received)", what, limit, next.Load(), rc.count())
		}
	}
	if err := awaitEvent(rc.warmed, probeTimeout, fmt.Sprintf("%d messages from the leaf at the hub", *warm)); err != nil {
		return err
	}

	cutAt := time.Now()
	if n := p.cut(); n != 1 {
		return fmt.Errorf("the proxy carried %d links when it cut them, want 1: the leaf's uplink must go through -listen only", n)
	}
	select {
	case <-time.After(*outage):
	case err := <-f:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}

	rc.mu.Lock()
	lastBefore := rc.lastAt
	rc.mu.Unlock()
	if late := lastBefore.Sub(cutAt); late > *outage/2 {
		return fmt.Errorf("the hub still received messages %v after the link was cut: the leaf's uplink must go through -listen only", late)
	}
	restoredAt, err := p.listen()
	if err != nil {
		return err
	}
	seqAtRestore := next.Load()
	rc.restored(restoredAt)
	if err := awaitEvent(rc.first, *within, "message at the hub after the link was restored"); err != nil {
		return err
	}

	rc.mu.Lock()
	firstAt, firstSeq, lost, dups := rc.firstAt, rc.firstSeq, rc.lost, rc.dups
	rc.mu.Unlock()
	acceptedAt := p.acceptedAt()
	if acceptedAt.IsZero() || acceptedAt.After(firstAt) {
		return fmt.Errorf("the first message after the restore did not come through the proxy: " +
			"the leaf's uplink must reach the hub through -listen only (does the hub advertise its leafnode address?)")
	}
	if dups > 0 {
		return fmt.Errorf("the hub received %d messages twice", dups)
	}
	fmt.Fprintf(stdout, "restore outage_ms=%.0f interval_ms=%.3f restore_ms=%.1f accept_ms=%.1f link_ms=%.1f seq_at_restore=%d first_seq=%d lost=%d\n",
		millis(*outage), millis(*interval), millis(firstAt.Sub(restoredAt)), millis(acceptedAt.Sub(restoredAt)),
		millis(firstAt.Sub(acceptedAt)), seqAtRestore, firstSeq, lost)
	return nil
}

func millis(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// urlPort is the port of a nats:// URL.
func urlPort(raw string) (int, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return 0, err
	}
	port, err := strconv.Atoi(u.Port())
	if err != nil {
		return 0, fmt.Errorf("no port in %q", raw)
	}
	return port, nil
}

// restoreCounter is the hub subscriber's accounting: every sequence number
// it received, and the first message after the restore.
type restoreCounter struct {
	warm   int64
	warmed chan struct{} // closed at the warm-th message
	first  chan struct{} // closed at the first message after the restore

	mu         sync.Mutex
	seen       bitset
	received   int64
	dups       int64
	lastAt     time.Time // when the last message arrived
	restoredAt time.Time
	firstAt    time.Time
	firstSeq   uint64
	lost       int64 // messages numbered up to firstSeq not received by firstAt
}

func (r *restoreCounter) handle(m *nats.Msg) {
	now := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(m.Data) < seqBytes {
		return
	}
	seq := binary.BigEndian.Uint64(m.Data)
	for seq >= uint64(len(r.seen))*64 {
		r.seen = append(r.seen, make(bitset, len(r.seen)+1)...)
	}
	if r.seen.testAndSet(seq) {
		r.dups++
	}
	r.received++
	r.lastAt = now
	if r.received == r.warm {
		close(r.warmed)
	}
	if !r.restoredAt.IsZero() && r.firstAt.IsZero() && now.After(r.restoredAt) {
		r.firstAt, r.firstSeq = now, seq
		r.lost = int64(seq) + 1 - (r.received - r.dups)
		close(r.first)
	}
}

func (r *restoreCounter) restored(at time.Time) {
	r.mu.Lock()
	r.restoredAt = at
	r.mu.Unlock()
}

func (r *restoreCounter) count() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.received
}

// proxy forwards TCP connections from addr to upstream, and can cut them
// all and stop accepting, then accept again on the same address.
type proxy struct {
	addr, upstream string
	f              failures

	mu       sync.Mutex
	ln       net.Listener
	conns    map[net.Conn]struct{}
	accepted time.Time // the first connection accepted since the last listen
}

// listen starts accepting on addr and returns when it does.
func (p *proxy) listen() (time.Time, error) {
	ln, err := net.Listen("tcp", p.addr)
	if err != nil {
		return time.Time{}, fmt.Errorf("proxy: %w", err)
	}
	at := time.Now()
	p.mu.Lock()
	p.ln, p.accepted = ln, time.Time{}
	p.mu.Unlock()
	go p.accept(ln)
	return at, nil
}

func (p *proxy) accept(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				p.f.report(fmt.Errorf("proxy: accept: %w", err))
			}
			return
		}
		at := time.Now()
		p.mu.Lock()
		if p.accepted.IsZero() {
			p.accepted = at
		}
		p.mu.Unlock()
		up, err := net.DialTimeout("tcp", p.upstream, 5*time.Second)
		if err != nil {
			c.Close()
			p.f.report(fmt.Errorf("proxy: connect to the hub: %w", err))
			return
		}
		if !p.track(ln, c, up) {
			return // cut meanwhile
		}
		go p.pipe(c, up)
		go p.pipe(up, c)
	}
}

// track registers a connection pair, unless the listener it came from,
// ln, has been closed meanwhile (then it closes both).
func (p *proxy) track(ln net.Listener, conns ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != ln {
		for _, c := range conns {
			c.Close()
		}
		return false
	}
	for _, c := range conns {
		p.conns[c] = struct{}{}
	}
	return true
}

// pipe copies from src to dst until either fails, then closes both.
func (p *proxy) pipe(dst, src net.Conn) {
	io.Copy(dst, src)
	p.mu.Lock()
	delete(p.conns, src)
	delete(p.conns, dst)
	p.mu.Unlock()
	src.Close()
	dst.Close()
}

// cut stops accepting and closes every connection, both ways. It returns
// the number of links (connection pairs) it cut.
func (p *proxy) cut() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	n := len(p.conns) / 2
	for c := range p.conns {
		c.Close()
		delete(p.conns, c)
	}
	return n
}

func (p *proxy) acceptedAt() time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.accepted
}
