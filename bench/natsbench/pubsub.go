package main

import (
	"context"
	"encoding/binary"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/nats-io/nats.go"
)

// Subjects and queue group of the throughput runs.
const (
	pubsubSubject = "bench.pubsub"
	queueSubject  = "bench.queue"
	queueGroup    = "bench"
)

// throughput is one run of a publisher against a group of receivers.
type throughput struct {
	common
	pubURL    string // the publisher's server; empty: the receivers' (url)
	probeWait time.Duration
	subject   string
	queue     string // queue group name; empty for independent subscribers
	receivers int
	size      int
	msgs      int
	stall     time.Duration
}

// flags defines the flags of a throughput run; the receivers' flag is
// named by the command.
func (t *throughput) flags(fs *flag.FlagSet, receivers string, defReceivers int, usage string) {
	t.common.flags(fs)
	fs.StringVar(&t.pubURL, "pub-url", "", "server the publisher connects to (default: -url, the receivers' server); "+
		"when set, probes are published first until one has crossed to every receiver")
	fs.DurationVar(&t.probeWait, "probe-timeout", probeTimeout, "with -pub-url, fail if no probe has reached the receivers by then")
	fs.IntVar(&t.size, "size", 16, "payload size in bytes (at least 8: the sequence number)")
	fs.IntVar(&t.msgs, "msgs", 1_000_000, "messages to publish")
	fs.DurationVar(&t.stall, "stall", 10*time.Second, "after the publisher has flushed, fail if no message arrives for this long")
	fs.IntVar(&t.receivers, receivers, defReceivers, usage)
}

func (t *throughput) check(fs *flag.FlagSet) error {
	switch {
	case t.size < seqBytes:
		return usageErrorf(fs, "-size %d: must be at least %d", t.size, seqBytes)
	case t.msgs < 1:
		return usageErrorf(fs, "-msgs %d: must be at least 1", t.msgs)
	case t.receivers < 1:
		return usageErrorf(fs, "need at least one receiver, got %d", t.receivers)
	case t.stall <= 0:
		return usageErrorf(fs, "-stall %v: must be positive", t.stall)
	case t.probeWait <= 0:
		return usageErrorf(fs, "-probe-timeout %v: must be positive", t.probeWait)
	}
	return nil
}

// throughputResult is what one throughput run measured.
type throughputResult struct {
	recv    time.Duration // first to last message received, over all receivers
	publish time.Duration // first publish to the publisher's final flush
	counts  []int64       // messages per receiver
	probes  int           // probes published before the run (-pub-url only)
}

// probeNote is the part of a result line about probes: nothing when the
// publisher and the receivers share a server.
func (r throughputResult) probeNote(t *throughput) string {
	if t.pubURL == "" {
		return ""
	}
	return fmt.Sprintf(" probes=%d", r.probes)
}

func runPubSub(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	t := throughput{subject: pubsubSubject}
	fs := newFlagSet("pubsub", stderr)
	t.flags(fs, "subs", 1, "subscribers, each on its own connection; each receives every message")
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := t.check(fs); err != nil {
		return err
	}
	res, err := t.run(ctx)
	if err != nil {
		return err
	}
	received := float64(t.msgs) * float64(t.receivers)
	recvRate := received / res.recv.Seconds()
	fmt.Fprintf(stdout, "pubsub subs=%d size=%d msgs=%d recv_msgs_per_s=%.0f recv_mb_per_s=%.2f pub_msgs_per_s=%.0f recv_s=%.3f pub_s=%.3f%s\n",
		t.receivers, t.size, t.msgs, recvRate, recvRate*float64(t.size)/1e6,
		float64(t.msgs)/res.publish.Seconds(), res.recv.Seconds(), res.publish.Seconds(), res.probeNote(&t))
	return nil
}

func runQueue(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	t := throughput{subject: queueSubject, queue: queueGroup}
	fs := newFlagSet("queue", stderr)
	t.flags(fs, "members", 4, "members of the queue group, each on its own connection")
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := t.check(fs); err != nil {
		return err
	}
	res, err := t.run(ctx)
	if err != nil {
		return err
	}
	least, most := res.counts[0], res.counts[0]
	for _, n := range res.counts {
		least, most = min(least, n), max(most, n)
	}
	recvRate := float64(t.msgs) / res.recv.Seconds()
	fmt.Fprintf(stdout, "queue members=%d size=%d msgs=%d recv_msgs_per_s=%.0f recv_mb_per_s=%.2f pub_msgs_per_s=%.0f recv_s=%.3f pub_s=%.3f member_min=%d member_max=%d%s\n",
		t.receivers, t.size, t.msgs, recvRate, recvRate*float64(t.size)/1e6,
		float64(t.msgs)/res.publish.Seconds(), res.recv.Seconds(), res.publish.Seconds(), least, most, res.probeNote(&t))
	return nil
}

// run subscribes the receivers, publishes every message from one
// connection while they receive, waits until they have received all of
// them and checks that each was received exactly as often as it should.
func (t *throughput) run(ctx context.Context) (throughputResult, error) {
	ctx, cancel := context.WithTimeout(ctx, t.timeout)
	defer cancel()
	f := newFailures()

	g, err := newGroup(t.url, t.subject, t.queue, t.receivers, t.msgs, t.size, f)
	if err != nil {
		return throughputResult{}, err
	}
	defer g.close()
	pubURL := t.url
	if t.pubURL != "" {
		pubURL = t.pubURL
	}
	pub, err := connect(pubURL, "publisher", f)
	if err != nil {
		return throughputResult{}, err
	}
	defer pub.Close()

	var res throughputResult
	if t.pubURL != "" {
		// The receivers' interest reaches the publisher's server
		// asynchronously (over a leafnode link, say): a message
		// published before it arrives is dropped there, correctly.
		if res.probes, err = g.awaitProbe(ctx, pub, t.subject, t.probeWait, f); err != nil {
			return res, err
		}
	}

	// The publisher runs on its own goroutine so that a failure reported
	// by a receiver, or the timeout, ends the run even while a Publish
	// call is blocked on a server that has stopped reading.
	type published struct {
		d   time.Duration
		err error
	}
	pubc := make(chan published, 1)
	go func() {
		d, err := publish(pub, t.subject, t.msgs, t.size)
		pubc <- published{d, err}
	}()
	select {
	case p := <-pubc:
		if p.err != nil {
			return res, p.err
		}
		res.publish = p.d
	case err := <-f:
		return res, err
	case <-ctx.Done():
		return res, fmt.Errorf("publishing: %w; %s", ctx.Err(), g.progress())
	}

	if err := g.wait(ctx, f, t.stall); err != nil {
		return res, err
	}
	res.recv = g.elapsed()
	if err := g.settle(ctx, f); err != nil {
		return res, err
	}
	if err := g.verify(); err != nil {
		return res, err
	}
	res.counts = g.counts()
	return res, nil
}

// publish sends msgs messages numbered 0…msgs-1 and flushes: the time it
// returns covers every message having been processed by the server.
func publish(nc *nats.Conn, subject string, msgs, size int) (time.Duration, error) {
	payload := make([]byte, size)
	start := time.Now()
	for i := range msgs {
		// Publish copies the payload into the connection's buffer, so
		// one slice serves every message.
		binary.BigEndian.PutUint64(payload, uint64(i))
		if err := nc.Publish(subject, payload); err != nil {
			return 0, fmt.Errorf("publisher: message %d: %w", i, err)
		}
	}
	if err := nc.FlushTimeout(flushTimeout); err != nil {
		return 0, fmt.Errorf("publisher: final flush: %w", err)
	}
	return time.Since(start), nil
}
