package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// pollEvery is how often drain asks the hub stream how many messages it
// holds: small against the seconds a drain takes.
const pollEvery = 10 * time.Millisecond

// runDrain measures how fast a leaf's backlog reaches the hub. The leaf's
// leafnode link goes through a proxy this command holds closed (nothing
// listens on -listen) while it publishes -msgs acknowledged messages to
// the leaf; then it opens the proxy and times how long the hub stream
// takes to hold them all. With -warm (the default) the proxy is open at
// first, until one message has reached the hub stream, and is then cut.
// For a stock nats-server leaf it first creates the leaf's stream
// (-leaf-stream) and the hub stream sourcing it through the leaf's
// JetStream domain (-hub-source NAME@DOMAIN); for canopy-leaf the leaf's
// stream is in its leaf.yaml and the hub stream stores -hub-subjects.
func runDrain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("drain", stderr)
	leafURL := fs.String("leaf-url", "", "the leaf's client URL (required)")
	hubURL := fs.String("hub-url", "", "the hub's client URL (required)")
	listen := fs.String("listen", "", "the proxy's address, the leaf's leafnode remote (required)")
	upstream := fs.String("upstream", "", "the hub's leafnode address the proxy forwards to (required)")
	subject := fs.String("subject", "sensors.bench", "subject published to on the leaf")
	msgs := fs.Int("msgs", 100000, "messages in the backlog")
	size := fs.Int("size", 128, "payload bytes (at least 8)")
	inflight := fs.Int("inflight", 256, "publishes awaiting their acknowledgement at once, while building the backlog")
	leafStream := fs.String("leaf-stream", "", "create this file-backed stream on the leaf for the subject (nats-server leaf)")
	hubStream := fs.String("hub-stream", "TELEMETRY", "the hub stream, created by this command")
	hubSubjects := fs.String("hub-subjects", "", "the hub stream's subjects, comma separated (canopy-leaf)")
	hubSource := fs.String("hub-source", "", "NAME@DOMAIN: the hub stream sources the leaf's stream NAME in JetStream domain DOMAIN (nats-server leaf)")
	warm := fs.Bool("warm", true, "first prove the path with one message through an open link, then cut it; "+
		"false: the link is down from the start (the hub was never reachable)")
	timeout := fs.Duration("timeout", 30*time.Minute, "fail if the run takes longer")
	if err := parse(fs, args); err != nil {
		return err
	}
	switch {
	case *leafURL == "" || *hubURL == "" || *listen == "" || *upstream == "":
		return usageErrorf(fs, "-leaf-url, -hub-url, -listen and -upstream are required")
	case *msgs < 1:
		return usageErrorf(fs, "-msgs must be positive")
	case *size < 8:
		return usageErrorf(fs, "-size must be at least 8")
	case *inflight < 1:
		return usageErrorf(fs, "-inflight must be positive")
	case (*hubSubjects == "") == (*hubSource == ""):
		return usageErrorf(fs, "give one of -hub-subjects and -hub-source")
	}
	hubCfg := jetstream.StreamConfig{Name: *hubStream, Storage: jetstream.FileStorage, AllowDirect: true}
	if *hubSubjects != "" {
		hubCfg.Subjects = strings.Split(*hubSubjects, ",")
	} else {
		name, domain, ok := strings.Cut(*hubSource, "@")
		if !ok || name == "" || domain == "" {
			return usageErrorf(fs, "-hub-source %q: want NAME@DOMAIN", *hubSource)
		}
		hubCfg.Sources = []*jetstream.StreamSource{{Name: name, External: &jetstream.ExternalStream{APIPrefix: "$JS." + domain + ".API"}}}
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()

	hub, hubJS, err := connect(*hubURL, 1)
	if err != nil {
		return err
	}
	defer hub.Close()
	hs, err := hubJS.CreateStream(ctx, hubCfg)
	if err != nil {
		return fmt.Errorf("create hub stream %s: %w", *hubStream, err)
	}
	leaf, leafJS, err := connect(*leafURL, *inflight)
	if err != nil {
		return err
	}
	defer leaf.Close()
	if *leafStream != "" {
		if _, err := leafJS.CreateStream(ctx, jetstream.StreamConfig{Name: *leafStream, Subjects: []string{*subject}, Storage: jetstream.FileStorage}); err != nil {
			return fmt.Errorf("create leaf stream %s: %w", *leafStream, err)
		}
	}
	// With -warm, one message crosses an open link first: the leaf's
	// link, and the hub's sourcing of a nats-server leaf's stream, were
	// working when the link was cut, as after an ordinary outage.
	var before uint64
	if *warm {
		p, err := openProxy(*listen, *upstream)
		if err != nil {
			return err
		}
		if _, err := publishAcked(ctx, leafJS, *subject, 1, *size); err != nil {
			p.close()
			return fmt.Errorf("first message: %w", err)
		}
		err = waitHeld(ctx, hs, 1, *timeout)
		p.close()
		if err != nil {
			return fmt.Errorf("first message: %w", err)
		}
		before = 1
	}
	fill, err := publishAcked(ctx, leafJS, *subject, *msgs, *size)
	if err != nil {
		return fmt.Errorf("backlog: %w", err)
	}
	if n, err := held(ctx, hs); err != nil || n != before {
		return fmt.Errorf("the hub stream holds %d messages (%v) before the link opened, want %d", n, err, before)
	}

	start := time.Now()
	p, err := openProxy(*listen, *upstream)
	if err != nil {
		return err
	}
	defer p.close()
	want := before + uint64(*msgs)
	var first time.Duration
	for {
		n, err := held(ctx, hs)
		if err != nil {
			return fmt.Errorf("hub stream: %w", err)
		}
		if n > before && first == 0 {
			first = time.Since(start)
		}
		if n > want {
			return fmt.Errorf("the hub stream holds %d messages, %d more than were published", n, n-want)
		}
		if n == want {
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the hub stream holds %d of %d messages: %w", n, want, ctx.Err())
		case <-time.After(pollEvery):
		}
	}
	elapsed := time.Since(start)
	// A copy that stores more than the backlog afterwards (a resend the
	// hub did not recognise) would not be seen by the loop above.
	if n, err := held(ctx, hs); err != nil || n != want {
		return fmt.Errorf("the hub stream holds %d messages (%v) after the drain, want %d", n, err, want)
	}
	warmth := 0
	if *warm {
		warmth = 1
	}
	fmt.Fprintf(stdout, "drain msgs=%d warm=%d fill_msgs_per_s=%.0f drain_ms=%.1f msgs_per_s=%.0f first_ms=%.1f after_first_msgs_per_s=%.0f\n",
		*msgs, warmth, float64(*msgs)/fill.Seconds(), ms(elapsed), float64(*msgs)/elapsed.Seconds(), ms(first), float64(*msgs)/(elapsed-first).Seconds())
	return nil
}

// waitHeld waits until the stream holds n messages.
func waitHeld(ctx context.Context, s jetstream.Stream, n uint64, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		got, err := held(ctx, s)
		if err != nil {
			return err
		}
		if got >= n {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the hub stream holds %d of %d messages after %v", got, n, timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(pollEvery):
		}
	}
}

func held(ctx context.Context, s jetstream.Stream) (uint64, error) {
	info, err := s.Info(ctx)
	if err != nil {
		return 0, err
	}
	return info.State.Msgs, nil
}

// proxy forwards the leaf's leafnode connections to the hub. Until it is
// opened nothing listens on its address, so the leaf's dials are refused
// as they would be by a hub that is down.
type proxy struct {
	ln    net.Listener
	mu    sync.Mutex
	conns []net.Conn
	wg    sync.WaitGroup
}

func openProxy(listen, upstream string) (*proxy, error) {
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return nil, fmt.Errorf("proxy: %w", err)
	}
	p := &proxy{ln: ln}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u, err := net.Dial("tcp", upstream)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, u)
			p.mu.Unlock()
			p.wg.Add(2)
			go func() { defer p.wg.Done(); pipe(u, c) }()
			go func() { defer p.wg.Done(); pipe(c, u) }()
		}
	}()
	return p, nil
}

func pipe(dst, src net.Conn) {
	_, err := io.Copy(dst, src)
	if err == nil || errors.Is(err, net.ErrClosed) {
		dst.(*net.TCPConn).CloseWrite()
		return
	}
	dst.Close()
}

func (p *proxy) close() {
	p.ln.Close()
	p.mu.Lock()
	for _, c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}
