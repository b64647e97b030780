package uplink_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/canopy-iot/canopy/internal/config"
	"github.com/canopy-iot/canopy/internal/faultproxy"
	"github.com/canopy-iot/canopy/internal/wait"
	"github.com/canopy-iot/canopy/leaf/uplink"
)

// The link is cut 100 times at random byte offsets: the leaf keeps
// serving local clients, always comes back, and messages flow again.
func TestIntegrationLinkCutAtRandomBytes(t *testing.T) {
	const cuts = 100
	dev := newDevice(t)
	o := hubOpts(t, dev, nil)
	// Otherwise the leaf would learn the hub's own address and go around
	// the proxy.
	o.LeafNode.NoAdvertise = true
	hub := startHub(t, o)
	proxy := faultproxy.New(t, leafURL(hub)[len("nats-leaf://"):])
	leaf := startLeaf(t, uplink.Config{URLs: []string{"nats-leaf://" + proxy.Addr()}, NKeySeedFile: dev.seedFile,
		ReconnectMin: config.Duration(10 * time.Millisecond), ReconnectMax: config.Duration(50 * time.Millisecond)})
	leaf.waitConnected(t)

	hubClient := connect(t, hub.ClientURL(), nats.UserInfo("app", "pw"))
	up, _ := hubClient.SubscribeSync("telemetry.>")
	hubClient.Flush()
	local := connect(t, leaf.srv.ClientURL())
	echo, _ := local.SubscribeSync("local.echo")
	local.Flush()

	// Traffic both ways while the link is cut again and again.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			local.Publish("telemetry.t", fmt.Appendf(nil, "%d", i))
			time.Sleep(time.Millisecond)
		}
	}()

	for i := range cuts {
		before := leaf.up.Stats().Reconnects
		proxy.CutAfter(rand.Int64N(4096))
		// Cut within the handshake or mid-frame; force it if traffic is
		// too light to reach the offset.
		time.AfterFunc(50*time.Millisecond, proxy.CutAll)
		wait.For(t, 15*time.Second, func() error {
			s := leaf.up.Stats()
			if s.Reconnects <= before || !s.Connected {
				return fmt.Errorf("cut %d: not reconnected (last error %q)", i, s.LastError)
			}
			return nil
		})
		// Local clients are served throughout.
		if err := local.Publish("local.echo", nil); err != nil {
			t.Fatal(err)
		}
		if _, err := echo.NextMsg(5 * time.Second); err != nil {
			t.Fatalf("cut %d: local delivery failed: %v", i, err)
		}
	}
	close(stop)
	wg.Wait()
	drain(up)
	deliverEventually(t, func() error { return local.Publish("telemetry.final", nil) }, up)
	t.Logf("%d cuts, %d reconnects, %d connections through the proxy", cuts, leaf.up.Stats().Reconnects, proxy.Accepts())
}

// A three-node hub cluster: the node the leaf is attached to stops, and
// the leaf moves to another node (learned from the hub), where a hub
// subscriber receives its messages again.
func TestIntegrationFailoverToAnotherHubNode(t *testing.T) {
	dev := newDevice(t)
	hubs := startHubCluster(t, dev, 3, nil)
	leaf := startLeaf(t, uplink.Config{URLs: []string{leafURL(hubs[0])}, NKeySeedFile: dev.seedFile})
	leaf.waitConnected(t)
	local := connect(t, leaf.srv.ClientURL())

	// A hub-side subscriber on a node the leaf is not attached to.
	watcher := connect(t, hubs[2].ClientURL(), nats.UserInfo("app", "pw"))
	sub, _ := watcher.SubscribeSync("telemetry.>")
	watcher.Flush()
	deliverEventually(t, func() error { return local.Publish("telemetry.before", nil) }, sub)

	// The leaf must have learned the other nodes before its node goes.
	wait.For(t, 10*time.Second, func() error {
		if len(leafURLsKnown(leaf)) < 2 {
			return errors.New("other hub nodes not learned yet")
		}
		return nil
	})
	start := time.Now()
	hubs[0].Shutdown()
	drain(sub)
	deliverEventually(t, func() error { return local.Publish("telemetry.after", nil) }, sub)
	t.Logf("delivery resumed %v after the leaf's hub node stopped (now on %s)", time.Since(start).Round(time.Millisecond), leaf.up.Stats().URL)
}

// startHubCluster starts n hub nodes (without JetStream) that route to
// each other, and waits until every route is up.
func startHubCluster(t *testing.T, dev device, n int, mut func(*server.Options)) []*server.Server {
	routes := reserveAddrs(t, n)
	var hubs []*server.Server
	for i := range n {
		o := hubOpts(t, dev, nil)
		o.ServerName = fmt.Sprintf("hub%d", i+1)
		o.JetStream = false
		o.Cluster.Name = "dc1"
		o.Cluster.Host, o.Cluster.Port = splitAddr(t, routes[i])
		for _, r := range routes {
			o.Routes = append(o.Routes, mustURL("nats://"+r))
		}
		if mut != nil {
			mut(o)
		}
		hubs = append(hubs, startHub(t, o))
	}
	waitRoutes(t, hubs)
	return hubs
}

func leafURLsKnown(l *leafNode) []string { return l.up.KnownURLs() }

func reserveAddrs(t *testing.T, n int) []string {
	var out []string
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, l.Addr().String())
		defer l.Close()
	}
	return out
}

func waitRoutes(t *testing.T, hubs []*server.Server) {
	wait.For(t, 20*time.Second, func() error {
		for _, h := range hubs {
			if n := h.NumRoutes(); n < len(hubs)-1 {
				return fmt.Errorf("%s has %d routes", h.Name(), n)
			}
		}
		return nil
	})
}

// A hub node in lame duck mode closes the leaf's link without an error:
// the leaf moves to another node at once instead of backing off.
func TestIntegrationLameDuckHubMovesLeafAtOnce(t *testing.T) {
	dev := newDevice(t)
	hubs := startHubCluster(t, dev, 2, func(o *server.Options) {
		o.LameDuckDuration = 2 * time.Second
		o.LameDuckGracePeriod = 500 * time.Millisecond
	})
	// A slow backoff: only the immediate retry can make the move fast.
	leaf := startLeaf(t, uplink.Config{URLs: []string{leafURL(hubs[0]), leafURL(hubs[1])}, NKeySeedFile: dev.seedFile,
		ReconnectMin: config.Duration(5 * time.Second), ReconnectMax: config.Duration(10 * time.Second)})
	leaf.waitConnected(t)
	wait.For(t, 5*time.Second, func() error {
		if time.Since(leaf.up.Stats().Since) < 1100*time.Millisecond {
			return errors.New("link not up long enough to count as established")
		}
		return nil
	})
	first := leaf.up.Stats().URL
	attached := hubs[0]
	if first == leafURL(hubs[1]) {
		attached = hubs[1]
	}
	go attached.LameDuckShutdown()
	wait.For(t, 4*time.Second, func() error {
		s := leaf.up.Stats()
		if !s.Connected || s.URL == first {
			return fmt.Errorf("still on %s (connected %v)", s.URL, s.Connected)
		}
		return nil
	})
}
