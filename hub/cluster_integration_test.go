package hub_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/canopy-iot/canopy/hub"
	"github.com/canopy-iot/canopy/internal/wait"
)

// startCluster starts size nodes named <cluster>-1.. that all list every
// node's route URL, as a real deployment does. Clustered JetStream needs
// the routes configured up front, so route ports are reserved first.
func startCluster(t *testing.T, cluster string, size int, mut func(*hub.Config)) []*node {
	t.Helper()
	addrs := reservePorts(t, size)
	var routes []string
	for _, a := range addrs {
		routes = append(routes, "nats://"+a)
	}
	var nodes []*node
	for i := range size {
		cfg := testConfig(t)
		cfg.ServerName = fmt.Sprintf("%s-%d", cluster, i+1)
		cfg.Cluster = hub.Cluster{Name: cluster, Listen: addrs[i], Routes: routes}
		if mut != nil {
			mut(&cfg)
		}
		nodes = append(nodes, startHub(t, cfg))
	}
	return nodes
}

// reservePorts finds n free loopback ports for listeners whose addresses
// must be known before they start.
func reservePorts(t *testing.T, n int) []string {
	t.Helper()
	var addrs []string
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addrs = append(addrs, l.Addr().String())
		defer l.Close()
	}
	return addrs
}

func clientURLs(nodes []*node) string {
	var urls []string
	for _, n := range nodes {
		urls = append(urls, n.ClientURL())
	}
	return strings.Join(urls, ",")
}

// createStream creates a stream once the cluster's JetStream can take it
// (a meta leader is elected, enough peers are known).
func createStream(t *testing.T, js jetstream.JetStream, cfg jetstream.StreamConfig) jetstream.Stream {
	t.Helper()
	waitJetStream(t, js)
	var stream jetstream.Stream
	wait.For(t, 30*time.Second, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		var err error
		stream, err = js.CreateStream(ctx, cfg)
		return err
	})
	return stream
}

// waitJetStream waits until the JetStream meta group has a leader, which
// clustered JetStream needs before it accepts a stream.
func waitJetStream(t *testing.T, js jetstream.JetStream) {
	t.Helper()
	wait.For(t, 30*time.Second, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_, err := js.AccountInfo(ctx)
		return err
	})
}

func TestIntegrationClusterR3SurvivesLeaderLoss(t *testing.T) {
	const total = 10_000
	nodes := startCluster(t, "dc1", 3, nil)

	nc, err := nats.Connect(clientURLs(nodes), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	stream := createStream(t, js, jetstream.StreamConfig{Name: "ORDERS", Subjects: []string{"orders.>"}, Replicas: 3})

	// Publish with a message ID and retry until acknowledged: the ID makes
	// a retry of a publish whose ack was lost land once.
	publish := func(i int) {
		msg := &nats.Msg{Subject: "orders.new", Data: []byte(strconv.Itoa(i)), Header: nats.Header{}}
		msg.Header.Set(jetstream.MsgIDHeader, strconv.Itoa(i))
		wait.For(t, 60*time.Second, func() error {
			pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			defer cancel()
			_, err := js.PublishMsg(pctx, msg)
			return err
		})
	}
	const batch = 200
	var stopped *node
	for start := 0; start < total; start += batch {
		if start == total/2 {
			stopped = stopLeader(t, ctx, stream, nodes)
		}
		var futures []jetstream.PubAckFuture
		for i := start; i < start+batch; i++ {
			msg := &nats.Msg{Subject: "orders.new", Data: []byte(strconv.Itoa(i)), Header: nats.Header{}}
			msg.Header.Set(jetstream.MsgIDHeader, strconv.Itoa(i))
			f, err := js.PublishMsgAsync(msg)
			if err != nil {
				futures = append(futures, nil)
				continue
			}
			futures = append(futures, f)
		}
		for j, f := range futures {
			if f == nil {
				publish(start + j)
				continue
			}
			select {
			case <-f.Ok():
			case <-f.Err():
				publish(start + j)
			case <-time.After(5 * time.Second):
				publish(start + j)
			}
		}
	}

	checkStream(t, ctx, js, total)

	// The stopped node rejoins on its old route port with its old store and
	// catches up with what it missed.
	back := startHub(t, stopped.cfg)
	wait.For(t, 60*time.Second, func() error {
		var jsz server.JSInfo
		if err := getJSON(back.MonitorURL()+"/jsz?accounts=true&streams=true", &jsz); err != nil {
			return err
		}
		for _, acc := range jsz.AccountDetails {
			for _, s := range acc.Streams {
				if s.Name == "ORDERS" && s.State.Msgs == total {
					return nil
				}
				if s.Name == "ORDERS" {
					return fmt.Errorf("rejoined node has %d of %d messages", s.State.Msgs, total)
				}
			}
		}
		return errors.New("rejoined node has no ORDERS replica yet")
	})
}

// stopLeader stops the node that leads stream and returns it.
func stopLeader(t *testing.T, ctx context.Context, stream jetstream.Stream, nodes []*node) *node {
	t.Helper()
	info, err := stream.Info(ctx)
	if err != nil {
		t.Fatalf("stream info: %v", err)
	}
	for _, n := range nodes {
		if n.cfg.ServerName == info.Cluster.Leader {
			n.stop(t)
			return n
		}
	}
	t.Fatalf("stream leader %q is not one of the nodes", info.Cluster.Leader)
	return nil
}

// checkStream reads the whole ORDERS stream and checks it holds the
// messages 0..total-1, each exactly once. Retried publishes may land out of
// order; nothing may be missing or doubled.
func checkStream(t *testing.T, ctx context.Context, js jetstream.JetStream, total int) {
	t.Helper()
	var stream jetstream.Stream
	wait.For(t, 30*time.Second, func() error {
		var err error
		stream, err = js.Stream(ctx, "ORDERS")
		if err != nil {
			return err
		}
		if n := stream.CachedInfo().State.Msgs; n != uint64(total) {
			return fmt.Errorf("stream has %d messages, want %d", n, total)
		}
		return nil
	})
	cons, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	seen := make([]bool, total)
	for read := 0; read < total; {
		batch, err := cons.Fetch(1000, jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		for msg := range batch.Messages() {
			i, err := strconv.Atoi(string(msg.Data()))
			if err != nil || i < 0 || i >= total {
				t.Fatalf("unexpected message %q", msg.Data())
			}
			if seen[i] {
				t.Fatalf("message %d is in the stream twice", i)
			}
			seen[i] = true
			read++
		}
		if err := batch.Error(); err != nil {
			t.Fatalf("fetch after %d messages: %v", read, err)
		}
	}
}
