package main

import (
	"context"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// runIdle opens N connections, each with nothing but its keepalive, and
// holds them. It prints one line once every connection has its CONNACK
// (the broker has processed every CONNECT), and another when it stops: on
// SIGINT or SIGTERM, when stdin closes (with -stdin) or after -hold. The
// broker's memory is read by the caller in between (bench/mqtt.sh reads
// VmRSS in /proc/PID/status). A connection the broker closes ends the run
// at once with exit status 1.
func runIdle(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := newFlagSet("idle", stderr)
	var c common
	c.flags(fs)
	conns := fs.Int("conns", 10_000, "connections to open")
	parallel := fs.Int("parallel", 32, "connections being opened at once")
	sources := fs.Int("sources", 1, "spread the connections over source addresses 127.0.0.1 … 127.0.0.N "+
		"(each address has its own ephemeral ports; 1: the kernel's choice)")
	useStdin := fs.Bool("stdin", false, "also stop when stdin closes")
	hold := fs.Duration("hold", 0, "also stop after holding the connections this long (0: no limit)")
	// An idle connection reads nothing worth buffering; a buffer per
	// connection would only cost this process memory.
	if err := fs.Set("read-buffer", "0"); err != nil {
		return err
	}
	fs.Lookup("read-buffer").DefValue = "0"
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := c.check(fs); err != nil {
		return err
	}
	switch {
	case *conns < 1:
		return usageErrorf(fs, "-conns %d: must be at least 1", *conns)
	case *parallel < 1:
		return usageErrorf(fs, "-parallel %d: must be at least 1", *parallel)
	case *sources < 1 || *sources > 254:
		return usageErrorf(fs, "-sources %d: want 1 to 254", *sources)
	case *hold < 0:
		return usageErrorf(fs, "-hold %v: must not be negative", *hold)
	}

	// lost ends the hold (and the connecting) at the first connection
	// the broker closes; a signal ends only the hold.
	failed, fail := context.WithCancelCause(context.Background())
	defer fail(nil)
	var lostConns atomic.Int64
	ids := clientIDs()
	clients := make([]mqtt.Client, *conns)
	defer func() { disconnectAll(connected(clients)) }()

	start := time.Now()
	connectCtx, cancel := context.WithTimeoutCause(ctx, c.timeout, fmt.Errorf("not all connected within -timeout %v", c.timeout))
	defer cancel()
	connectCtx, stopConnecting := context.WithCancelCause(connectCtx)
	defer stopConnecting(nil)
	go func() {
		<-failed.Done()
		stopConnecting(context.Cause(failed))
	}()
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(*parallel, *conns) {
		wg.Go(func() {
			for i := range next {
				name := fmt.Sprintf("connection %d", i+1)
				o := connOptions{url: c.url, keepalive: c.keepalive, onLost: func(err error) {
					lostConns.Add(1)
					fail(fmt.Errorf("%s: connection lost: %w", name, err))
				}}
				if *sources > 1 {
					o.localAddr = fmt.Sprintf("127.0.0.%d", 1+i%*sources)
				}
				cl := newClient(ids('i', i), o)
				if err := connect(connectCtx, cl, name); err != nil {
					stopConnecting(err)
					cl.Disconnect(0)
					continue
				}
				clients[i] = cl
			}
		})
	}
feed:
	for i := range *conns {
		select {
		case next <- i:
		case <-connectCtx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	if connectCtx.Err() != nil {
		return fmt.Errorf("after %d of %d connections: %w", len(connected(clients)), *conns, context.Cause(connectCtx))
	}
	connectTime := time.Since(start)
	fmt.Fprintf(stdout, "idle conns=%d connect_s=%.3f state=connected\n", *conns, connectTime.Seconds())

	held := time.Now()
	eof := make(chan struct{})
	if *useStdin {
		go func() {
			io.Copy(io.Discard, stdin)
			close(eof)
		}()
	}
	var timeUp <-chan time.Time
	if *hold > 0 {
		t := time.NewTimer(*hold)
		defer t.Stop()
		timeUp = t.C
	}
	select {
	case <-ctx.Done():
	case <-eof:
	case <-timeUp:
	case <-failed.Done():
	}
	fmt.Fprintf(stdout, "idle conns=%d held_s=%.3f lost_conns=%d\n", *conns, time.Since(held).Seconds(), lostConns.Load())
	if failed.Err() != nil {
		return fmt.Errorf("%d connection(s) lost while held; the first: %w", lostConns.Load(), context.Cause(failed))
	}
	return nil
}

// connected returns the clients that were connected, skipping the slots
// of those that were not.
func connected(clients []mqtt.Client) []mqtt.Client {
	var cs []mqtt.Client
	for _, cl := range clients {
		if cl != nil {
			cs = append(cs, cl)
		}
	}
	return cs
}
