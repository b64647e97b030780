package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"time"
)

// Topics of the runs. Every publisher of a run publishes to the same one.
const (
	pubsubTopic  = "bench/pubsub"
	latencyTopic = "bench/latency"
)

// runPubSub measures throughput: P publishers as fast as they can (or at
// -rate each), S subscribers each receiving everything.
func runPubSub(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	fs := newFlagSet("pubsub", stderr)
	l := load{topic: pubsubTopic}
	l.flags(fs, 0, 5*time.Second, 0)
	fs.IntVar(&l.pubs, "pubs", 1, "publishers, each on its own connection")
	fs.IntVar(&l.subs, "subs", 1, "subscribers, each on its own connection, each receiving every message")
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := l.check(fs); err != nil {
		return err
	}
	res, err := l.run(ctx)
	if err != nil {
		return err
	}
	t, _ := res.totals()
	var b strings.Builder
	fmt.Fprintf(&b, "pubsub qos=%d pubs=%d subs=%d size=%d %s", l.qos, l.pubs, l.subs, l.size, res.countedLine())
	if !t.valid() {
		// Counts only: a run that lost or duplicated messages has no rate.
		fmt.Fprintf(&b, " pub_s=%.3f drain_s=%.3f\n", res.pubTime.Seconds(), res.drain.Seconds())
		io.WriteString(stdout, b.String())
		return fmt.Errorf("invalid run: %w", t.problems())
	}
	rates := make([]string, len(res.subs))
	for i, s := range res.subs {
		rates[i] = fmt.Sprintf("%.0f", s.rate())
	}
	var sent uint64
	for _, n := range res.sent {
		sent += n
	}
	fmt.Fprintf(&b, " recv_msgs_per_s=%.0f sub_msgs_per_s=%s pub_msgs_per_s=%.0f recv_s=%.3f pub_s=%.3f drain_s=%.3f\n",
		t.rate(), strings.Join(rates, ","), float64(sent)/res.pubTime.Seconds(),
		t.last.Sub(t.first).Seconds(), res.pubTime.Seconds(), res.drain.Seconds())
	io.WriteString(stdout, b.String())
	return nil
}

// runLatency measures latency: one publisher at a fixed rate, well below
// what any broker sustains, one subscriber; each message's latency is from
// just before Publish to the subscriber's handler.
func runLatency(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	fs := newFlagSet("latency", stderr)
	l := load{topic: latencyTopic, pubs: 1, subs: 1, latency: true}
	l.flags(fs, 0, 5*time.Second, 2000)
	fs.IntVar(&l.warmup, "warmup", 1000, "messages sent first and not measured")
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := l.check(fs); err != nil {
		return err
	}
	switch {
	case l.rate <= 0:
		return usageErrorf(fs, "-rate %v: must be positive", l.rate)
	case l.warmup < 0:
		return usageErrorf(fs, "-warmup %d: must not be negative", l.warmup)
	}
	res, err := l.run(ctx)
	if err != nil {
		return err
	}
	t, _ := res.totals()
	var b strings.Builder
	fmt.Fprintf(&b, "latency qos=%d rate=%g size=%d %s", l.qos, l.rate, l.size, res.countedLine())
	lat := res.subs[0].latencies
	if !t.valid() || len(lat) == 0 {
		fmt.Fprintf(&b, " samples=%d\n", len(lat))
		io.WriteString(stdout, b.String())
		if t.valid() {
			return fmt.Errorf("no message after the %d warm-up messages", l.warmup)
		}
		return fmt.Errorf("invalid run: %w", t.problems())
	}
	slices.Sort(lat)
	var sum time.Duration
	for _, d := range lat {
		sum += d
	}
	fmt.Fprintf(&b, " samples=%d p50_us=%.1f p90_us=%.1f p99_us=%.1f max_us=%.1f mean_us=%.1f max_lag_us=%.1f\n",
		len(lat), micros(percentile(lat, 0.50)), micros(percentile(lat, 0.90)), micros(percentile(lat, 0.99)),
		micros(lat[len(lat)-1]), micros(sum/time.Duration(len(lat))), micros(res.maxLag))
	io.WriteString(stdout, b.String())
	return nil
}

// percentile returns the nearest-rank p-quantile of sorted, which must not
// be empty: the smallest value that at least p of all values do not exceed.
func percentile(sorted []time.Duration, p float64) time.Duration {
	i := int(math.Ceil(p*float64(len(sorted)))) - 1
	return sorted[max(i, 0)]
}

func micros(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
