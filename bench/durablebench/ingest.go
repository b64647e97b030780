package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// ackTimeout is how long a publish may wait for its acknowledgement
// before the run fails; nats.go's own default (none) would hang a run on
// a lost one.
const ackTimeout = 30 * time.Second

// runIngest publishes -msgs messages with acknowledgements, -inflight at
// a time, and reports the acknowledged rate. With -stream it first
// creates a file-backed JetStream stream of that name (a nats-server);
// without, the server already has one for the subject (a canopy-leaf
// stream from its leaf.yaml). With -pid it reports the bytes the server
// process wrote to disk per message and its memory.
func runIngest(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("ingest", stderr)
	url := fs.String("url", "nats://127.0.0.1:4222", "server URL")
	subject := fs.String("subject", "sensors.bench", "subject published to")
	msgs := fs.Int("msgs", 100000, "messages")
	size := fs.Int("size", 128, "payload bytes (at least 8: each carries its number)")
	inflight := fs.Int("inflight", 256, "publishes awaiting their acknowledgement at once")
	stream := fs.String("stream", "", "create this file-backed JetStream stream on the subject first (nats-server)")
	pid := fs.Int("pid", 0, "server process: report its disk writes per message (/proc/PID/io) and memory (/proc/PID/status)")
	settle := fs.Duration("settle", time.Second, "with -pid: count writes until they have stopped for this long (a server may write after acknowledging)")
	timeout := fs.Duration("timeout", 30*time.Minute, "fail if the run takes longer")
	if err := parse(fs, args); err != nil {
		return err
	}
	switch {
	case *msgs < 1:
		return usageErrorf(fs, "-msgs must be positive")
	case *size < 8:
		return usageErrorf(fs, "-size must be at least 8")
	case *inflight < 1:
		return usageErrorf(fs, "-inflight must be positive")
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	nc, js, err := connect(*url, *inflight)
	if err != nil {
		return err
	}
	defer nc.Close()
	if *stream != "" {
		if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: *stream, Subjects: []string{*subject}, Storage: jetstream.FileStorage}); err != nil {
			return fmt.Errorf("create stream %s: %w", *stream, err)
		}
	}
	var before int64
	if *pid > 0 {
		if before, err = writeBytes(*pid); err != nil {
			return err
		}
	}
	elapsed, err := publishAcked(ctx, js, *subject, *msgs, *size)
	if err != nil {
		return err
	}
	line := fmt.Sprintf("ingest msgs=%d elapsed_ms=%.1f msgs_per_s=%.0f", *msgs, ms(elapsed), float64(*msgs)/elapsed.Seconds())
	if *pid > 0 {
		after, err := settledWriteBytes(ctx, *pid, *settle)
		if err != nil {
			return err
		}
		mem, err := memory(*pid)
		if err != nil {
			return err
		}
		line += fmt.Sprintf(" write_bytes=%d write_bytes_per_msg=%.1f%s", after-before, float64(after-before)/float64(*msgs), mem)
	}
	fmt.Fprintln(stdout, line)
	return nil
}

func connect(url string, inflight int) (*nats.Conn, jetstream.JetStream, error) {
	nc, err := nats.Connect(url, nats.Name("durablebench"), nats.MaxReconnects(0))
	if err != nil {
		return nil, nil, fmt.Errorf("connect %s: %w", url, err)
	}
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(inflight), jetstream.WithPublishAsyncTimeout(ackTimeout))
	if err != nil {
		nc.Close()
		return nil, nil, fmt.Errorf("jetstream: %w", err)
	}
	return nc, js, nil
}

// publishAcked publishes n messages of size bytes with js.PublishAsync
// (the window is the JetStream context's max pending) and returns the
// time until the last acknowledgement. Every publish must be acknowledged
// with a sequence above the previous one's: one publisher on a stream
// gets strictly increasing sequences, so a lost, refused, doubled or
// reordered acknowledgement fails the run.
func publishAcked(ctx context.Context, js jetstream.JetStream, subject string, n, size int) (time.Duration, error) {
	futures := make(chan jetstream.PubAckFuture, 4096)
	checked := make(chan error, 1)
	go func() {
		var last uint64
		i := 0
		for f := range futures {
			select {
			case a := <-f.Ok():
				if a.Sequence <= last {
					checked <- fmt.Errorf("publish %d acknowledged with sequence %d after %d", i, a.Sequence, last)
					return
				}
				last = a.Sequence
			case err := <-f.Err():
				checked <- fmt.Errorf("publish %d: %w", i, err)
				return
			}
			i++
		}
		checked <- nil
	}()
	payload := make([]byte, size)
	for i := 8; i < size; i++ {
		payload[i] = byte('a' + i%26)
	}
	start := time.Now()
	var err error
	for i := range n {
		binary.BigEndian.PutUint64(payload, uint64(i))
		var f jetstream.PubAckFuture
		// The stall wait only bounds how long a full window may block.
		f, err = js.PublishAsync(subject, payload, jetstream.WithStallWait(ackTimeout))
		if err != nil {
			err = fmt.Errorf("publish %d: %w", i, err)
			break
		}
		select {
		case futures <- f:
		case err = <-checked:
		case <-ctx.Done():
			err = ctx.Err()
		}
		if err != nil {
			break
		}
	}
	close(futures)
	if err != nil {
		return 0, err
	}
	select {
	case err = <-checked:
	case <-ctx.Done():
		err = ctx.Err()
	}
	return time.Since(start), err
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// writeBytes is write_bytes of /proc/PID/io: the bytes the process caused
// to be written to storage (counted when it dirties page cache, whether
// or not it syncs).
func writeBytes(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", pid))
	if err != nil {
		return 0, fmt.Errorf("read the server's disk writes: %w", err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "write_bytes: "); ok {
			return strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		}
	}
	return 0, fmt.Errorf("no write_bytes in /proc/%d/io", pid)
}

// settledWriteBytes waits until the process's write_bytes has not moved
// for quiet (at most a minute): nats-server writes its message blocks
// shortly after acknowledging them, without sync_interval: always.
func settledWriteBytes(ctx context.Context, pid int, quiet time.Duration) (int64, error) {
	last, err := writeBytes(pid)
	if err != nil {
		return 0, err
	}
	stable := time.Now()
	deadline := time.Now().Add(time.Minute)
	for time.Since(stable) < quiet && time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(quiet / 10):
		}
		v, err := writeBytes(pid)
		if err != nil {
			return 0, err
		}
		if v != last {
			last, stable = v, time.Now()
		}
	}
	return last, nil
}

// memory is the process's peak and current resident memory, and the
// current one split into anonymous memory and file pages mapped (a
// memory-mapped store's pages count as resident while the kernel keeps
// them), as result fields.
func memory(pid int) (string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return "", fmt.Errorf("read the server's memory: %w", err)
	}
	keys := []string{"VmHWM", "VmRSS", "RssAnon", "RssFile"}
	var out strings.Builder
	for _, k := range keys {
		found := false
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, k+":"); ok {
				fmt.Fprintf(&out, " %s_kib=%s", strings.ToLower(k), strings.TrimSuffix(strings.TrimSpace(v), " kB"))
				found = true
				break
			}
		}
		if !found {
			return "", errors.New("no " + k + " in /proc/" + strconv.Itoa(pid) + "/status")
		}
	}
	return out.String(), nil
}
