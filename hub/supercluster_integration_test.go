package hub_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/canopy-iot/canopy/hub"
	"github.com/canopy-iot/canopy/internal/wait"
)

func TestIntegrationSuperclusterOverGateways(t *testing.T) {
	east := startCluster(t, "east", 3, func(c *hub.Config) {
		c.Gateways = hub.Gateways{Name: "east", Listen: "127.0.0.1:0"}
	})
	var eastGateways []string
	for _, n := range east {
		eastGateways = append(eastGateways, n.GatewayURL())
	}
	// west names east's gateways; east learns of west when west connects.
	west := startCluster(t, "west", 1, func(c *hub.Config) {
		c.Gateways = hub.Gateways{Name: "west", Listen: "127.0.0.1:0", Remotes: map[string][]string{"east": eastGateways}}
	})

	ncEast := connect(t, east[0].ClientURL())
	ncWest := connect(t, west[0].ClientURL())

	// Pub/sub: a subscriber in east receives what a client in west publishes.
	sub, err := ncEast.SubscribeSync("alerts.>")
	if err != nil {
		t.Fatal(err)
	}
	if err := ncEast.Flush(); err != nil {
		t.Fatal(err)
	}
	wait.For(t, 30*time.Second, func() error {
		if err := ncWest.Publish("alerts.fire", []byte("hot")); err != nil {
			return err
		}
		msg, err := sub.NextMsg(200 * time.Millisecond)
		if err != nil {
			return fmt.Errorf("nothing crossed the gateway yet: %w", err)
		}
		if string(msg.Data) != "hot" {
			return fmt.Errorf("got %q", msg.Data)
		}
		return nil
	})

	// Request/reply: a responder in east answers a requester in west.
	if _, err := ncEast.Subscribe("svc.echo", func(m *nats.Msg) { m.Respond(append([]byte("echo:"), m.Data...)) }); err != nil {
		t.Fatal(err)
	}
	if err := ncEast.Flush(); err != nil {
		t.Fatal(err)
	}
	wait.For(t, 30*time.Second, func() error {
		resp, err := ncWest.Request("svc.echo", []byte("ping"), time.Second)
		if err != nil {
			return err
		}
		if string(resp.Data) != "echo:ping" {
			return fmt.Errorf("reply %q", resp.Data)
		}
		return nil
	})

	// JetStream: a stream placed in east, created, written and read by a
	// client of west.
	js, err := jetstream.New(ncWest)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	stream := createStream(t, js, jetstream.StreamConfig{
		Name: "AUDIT", Subjects: []string{"audit.>"}, Replicas: 3,
		Placement: &jetstream.Placement{Cluster: "east"},
	})
	info, err := stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.Cluster.Name != "east" {
		t.Fatalf("stream placed in %q, want east", info.Cluster.Name)
	}
	for i := range 10 {
		if _, err := js.Publish(ctx, "audit.login", []byte(fmt.Sprint(i))); err != nil {
			t.Fatalf("publish %d from west: %v", i, err)
		}
	}
	cons, err := stream.CreateConsumer(ctx, jetstream.ConsumerConfig{Durable: "reader", AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		t.Fatal(err)
	}
	// The consumer's pull subject needs a moment to be known across the
	// gateway; until then a fetch finds no responders.
	got := 0
	wait.For(t, 30*time.Second, func() error {
		batch, err := cons.Fetch(10-got, jetstream.FetchMaxWait(time.Second))
		if err != nil {
			return err
		}
		for msg := range batch.Messages() {
			if string(msg.Data()) != fmt.Sprint(got) {
				t.Fatalf("message %d = %q", got, msg.Data())
			}
			if err := msg.Ack(); err != nil {
				return err
			}
			got++
		}
		if got < 10 {
			return fmt.Errorf("read %d of 10 messages from west (%v)", got, batch.Error())
		}
		return nil
	})
}

func connect(t testing.TB, url string, opts ...nats.Option) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		t.Fatalf("connect %s: %v", url, err)
	}
	t.Cleanup(nc.Close)
	return nc
}
