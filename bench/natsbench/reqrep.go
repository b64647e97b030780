package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"time"

	"github.com/nats-io/nats.go"
)

const reqrepSubject = "bench.reqrep"

// runReqRep measures request/reply latency: one responder echoes every
// request, one requester sends them one after the other, so each latency
// is a full round trip through the server and back with nothing queued.
func runReqRep(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("reqrep", stderr)
	var c common
	c.flags(fs)
	size := fs.Int("size", 16, "request payload size in bytes (at least 8: the sequence number)")
	requests := fs.Int("requests", 100_000, "requests measured")
	warmup := fs.Int("warmup", 1_000, "requests sent first and not measured (connection buffers, reply subscription)")
	reqTimeout := fs.Duration("request-timeout", 5*time.Second, "fail if one reply takes longer")
	respURL := fs.String("responder-url", "", "server the responder connects to (default: -url, the requester's server); "+
		"when set, probe requests are sent first until one is answered")
	probeWait := fs.Duration("probe-timeout", probeTimeout, "with -responder-url, fail if no probe request is answered by then")
	if err := parse(fs, args); err != nil {
		return err
	}
	switch {
	case *size < seqBytes:
		return usageErrorf(fs, "-size %d: must be at least %d", *size, seqBytes)
	case *requests < 1:
		return usageErrorf(fs, "-requests %d: must be at least 1", *requests)
	case *warmup < 0:
		return usageErrorf(fs, "-warmup %d: must not be negative", *warmup)
	case *probeWait <= 0:
		return usageErrorf(fs, "-probe-timeout %v: must be positive", *probeWait)
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	f := newFailures()

	responderURL := c.url
	if *respURL != "" {
		responderURL = *respURL
	}
	resp, err := connect(responderURL, "responder", f)
	if err != nil {
		return err
	}
	defer resp.Close()
	sub, err := resp.Subscribe(reqrepSubject, func(m *nats.Msg) {
		if err := m.Respond(m.Data); err != nil {
			f.report(fmt.Errorf("responder: %w", err))
		}
	})
	if err != nil {
		return fmt.Errorf("responder: subscribe: %w", err)
	}
	if err := sub.SetPendingLimits(-1, -1); err != nil {
		return fmt.Errorf("responder: pending limits: %w", err)
	}
	if err := resp.FlushTimeout(flushTimeout); err != nil {
		return fmt.Errorf("responder: flush after subscribe: %w", err)
	}
	req, err := connect(c.url, "requester", f)
	if err != nil {
		return err
	}
	defer req.Close()
	probes := 0
	if *respURL != "" {
		// The responder's interest reaches the requester's server
		// asynchronously: until it has, requests are not answered.
		if probes, err = probeRequests(ctx, req, *probeWait, f); err != nil {
			return err
		}
	}

	lat := make([]time.Duration, 0, *requests)
	payload := make([]byte, *size)
	for i := range *warmup + *requests {
		select {
		case err := <-f:
			return err
		case <-ctx.Done():
			return fmt.Errorf("after %d requests: %w", i, ctx.Err())
		default:
		}
		binary.BigEndian.PutUint64(payload, uint64(i))
		start := time.Now()
		reply, err := req.Request(reqrepSubject, payload, *reqTimeout)
		d := time.Since(start)
		if err != nil {
			return fmt.Errorf("request %d: %w", i, err)
		}
		if !bytes.Equal(reply.Data, payload) {
			return fmt.Errorf("request %d: the reply does not echo the request", i)
		}
		if i >= *warmup {
			lat = append(lat, d)
		}
	}

	slices.Sort(lat)
	var sum time.Duration
	for _, d := range lat {
		sum += d
	}
	probeNote := ""
	if *respURL != "" {
		probeNote = fmt.Sprintf(" probes=%d", probes)
	}
	fmt.Fprintf(stdout, "reqrep size=%d requests=%d p50_us=%.1f p99_us=%.1f p999_us=%.1f mean_us=%.1f max_us=%.1f%s\n",
		*size, len(lat), micros(percentile(lat, 0.50)), micros(percentile(lat, 0.99)),
		micros(percentile(lat, 0.999)), micros(sum/time.Duration(len(lat))), micros(lat[len(lat)-1]), probeNote)
	return nil
}

// probeRequests sends empty requests until one is answered, at most one
// per probeEvery, and returns how many it sent. A request sent before the
// responder's interest has arrived fails at once with "no responders" or
// times out; a late reply to one is dropped by nats.go.
func probeRequests(ctx context.Context, req *nats.Conn, timeout time.Duration, f failures) (int, error) {
	tick := time.NewTicker(probeEvery)
	defer tick.Stop()
	deadline := time.Now().Add(timeout)
	for sent := 1; ; sent++ {
		_, err := req.Request(reqrepSubject, nil, probeEvery)
		switch {
		case err == nil:
			return sent, nil
		case !errors.Is(err, nats.ErrNoResponders) && !errors.Is(err, nats.ErrTimeout):
			return sent, fmt.Errorf("probe request: %w", err)
		case time.Now().After(deadline):
			return sent, fmt.Errorf("none of %d probe requests was answered within %v: "+
				"the responder's interest did not reach the requester's server", sent, timeout)
		}
		select {
		case <-tick.C:
		case err := <-f:
			return sent, err
		case <-ctx.Done():
			return sent, fmt.Errorf("probing for the responder: %w", ctx.Err())
		}
	}
}

// percentile returns the nearest-rank p-quantile of sorted, which must not
// be empty: the smallest value that at least p of all values do not exceed.
func percentile(sorted []time.Duration, p float64) time.Duration {
	i := int(math.Ceil(p*float64(len(sorted)))) - 1
	return sorted[max(i, 0)]
}

func micros(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
