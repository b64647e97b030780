package stream_test

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/canopy-iot/canopy/internal/faultproxy"
	"github.com/canopy-iot/canopy/leaf"
	"github.com/canopy-iot/canopy/leaf/stream"
)

// With upstream.rate set, a backlog drains no faster than the cap allows
// (after the bucket's initial burst of a tenth of a second's worth), and
// still reaches the hub exactly once, in order, with live messages
// published during the drain queued behind it.
func TestIntegrationUpstreamRateCap(t *testing.T) {
	const rate, backlog, live = 200, 250, 50
	const burst = rate / 10
	hub, seedFile, hubStream := startHub(t)
	proxy := faultproxy.New(t, leafPort(t, hub))
	proxy.SetDown(true)
	n, _ := startLeaf(t, proxy.Addr(), seedFile, func(c *leaf.Config) {
		c.Streams[0].Upstream.Rate = rate
	})
	nc, err := nats.Connect(n.NATSURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx := context.Background()
	for i := range backlog {
		if _, err := js.Publish(ctx, "sensors.temp", []byte(strconv.Itoa(i))); err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
	}
	start := time.Now()
	proxy.SetDown(false)
	for i := backlog; i < backlog+live; i++ {
		if _, err := js.Publish(ctx, "sensors.temp", []byte(strconv.Itoa(i))); err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
	}
	checkHubStream(t, hubStream, backlog+live)
	elapsed := time.Since(start)
	// The bucket starts full: burst messages may go at once, the rest at
	// the rate.
	if least := time.Duration(float64(backlog+live-burst) / rate * float64(time.Second)); elapsed < least {
		t.Fatalf("%d messages reached the hub in %v; a cap of %d/s allows no less than %v", backlog+live, elapsed, rate, least)
	}
	t.Logf("%d messages at a cap of %d/s took %v", backlog+live, rate, elapsed)
}

func TestUpstreamRateValidated(t *testing.T) {
	cfg := stream.Config{Name: "s", Subjects: []string{"a.>"}, Upstream: stream.Upstream{Rate: -1}}.WithDefaults()
	err := stream.Validate([]stream.Config{cfg})
	if err == nil || !strings.Contains(err.Error(), "upstream.rate") {
		t.Fatalf("a negative rate gave %v, want an upstream.rate error", err)
	}
	cfg.Upstream.Rate = 0
	if err := stream.Validate([]stream.Config{cfg}); err != nil {
		t.Fatalf("rate 0 (no cap): %v", err)
	}
}
