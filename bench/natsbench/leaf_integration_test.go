package main

import (
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/canopy-iot/canopy/internal/wait"
)

// startHub runs nats-server in this process with a client port and a
// leafnode listener that it does not advertise, as uplink.sh's hub, and
// returns its client URL and leafnode address.
func startHub(t testing.TB) (string, string) {
	t.Helper()
	opts := &server.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true}
	opts.LeafNode.Host = "127.0.0.1"
	opts.LeafNode.Port = freePort(t) // nats-server has no accessor for a kernel-picked one
	opts.LeafNode.NoAdvertise = true
	s := runServer(t, opts)
	return s.ClientURL(), fmt.Sprintf("127.0.0.1:%d", opts.LeafNode.Port)
}

// startLeaf runs nats-server in this process as a leaf node whose remote
// is hubLeaf (host:port), with its client port at port (-1: any), and
// returns its client URL.
func startLeaf(t testing.TB, hubLeaf string, port int) string {
	t.Helper()
	opts := &server.Options{Host: "127.0.0.1", Port: port, NoLog: true, NoSigs: true}
	opts.LeafNode.ReconnectInterval = 50 * time.Millisecond
	opts.LeafNode.Remotes = []*server.RemoteLeafOpts{{URLs: []*url.URL{{Scheme: "nats-leaf", Host: hubLeaf}}}}
	return runServer(t, opts).ClientURL()
}

func runServer(t testing.TB, opts *server.Options) *server.Server {
	t.Helper()
	s, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	s.Start()
	t.Cleanup(s.Shutdown)
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	return s
}

// freePort returns a port that was free a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	out, err := natsbench(t, "free-port")
	if err != nil {
		t.Fatal(err)
	}
	port, err := strconv.Atoi(strings.TrimSpace(out))
	if err != nil {
		t.Fatal(err)
	}
	return port
}

// TestIntegrationAcrossLeafLink runs the load commands with the publisher
// (or the responder) on the other side of a leafnode link. Each must
// probe until the interest has crossed, then count every message.
func TestIntegrationAcrossLeafLink(t *testing.T) {
	hub, hubLeaf := startHub(t)
	leaf := startLeaf(t, hubLeaf, -1)
	for _, tt := range []struct {
		name string
		args []string
	}{
		{"pubsub leaf to hub", []string{"pubsub", "-msgs", "5000", "-url", hub, "-pub-url", leaf}},
		{"pubsub hub to leaf", []string{"pubsub", "-msgs", "5000", "-size", "256", "-url", leaf, "-pub-url", hub}},
		{"queue leaf to hub", []string{"queue", "-msgs", "5000", "-members", "2", "-url", hub, "-pub-url", leaf}},
		{"reqrep leaf to hub", []string{"reqrep", "-requests", "200", "-warmup", "10", "-url", leaf, "-responder-url", hub}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			out, err := natsbench(t, append(tt.args, "-timeout", "1m")...)
			if err != nil {
				t.Fatalf("natsbench: %v", err)
			}
			_, kv := resultFields(t, out)
			if kv["probes"] < 1 {
				t.Errorf("probes = %v, want at least 1 in %q", kv["probes"], out)
			}
		})
	}
}

// TestIntegrationProbeNeverCrosses: without a link, the receivers'
// interest never reaches the publisher's server, and the run must say so
// instead of publishing into nothing.
func TestIntegrationProbeNeverCrosses(t *testing.T) {
	a, _ := startServer(t)
	b, _ := startServer(t)
	for _, args := range [][]string{
		{"pubsub", "-msgs", "100", "-url", a, "-pub-url", b},
		{"reqrep", "-requests", "10", "-url", a, "-responder-url", b},
	} {
		_, err := natsbench(t, append(args, "-probe-timeout", "300ms")...)
		if err == nil || !strings.Contains(err.Error(), "did not reach") {
			t.Errorf("natsbench %s: got %v, want an error saying the interest did not reach the other server", args[0], err)
		}
	}
}

// TestIntegrationRestore cuts a nats-server leaf's link through the proxy
// and checks the run reports the restore.
func TestIntegrationRestore(t *testing.T) {
	hub, hubLeaf := startHub(t)
	proxyPort, leafPort := freePort(t), freePort(t)
	type result struct {
		out string
		err error
	}
	done := make(chan result, 1)
	go func() {
		out, err := natsbench(t, "restore", "-url", hub, "-pub-url", fmt.Sprintf("nats://127.0.0.1:%d", leafPort),
			"-listen", fmt.Sprintf("127.0.0.1:%d", proxyPort), "-upstream", hubLeaf, "-outage", "300ms", "-timeout", "1m")
		done <- result{out, err}
	}()
	// The leaf must find the proxy listening at its first attempt.
	wait.For(t, 10*time.Second, func() error { return listening(proxyPort) })
	startLeaf(t, fmt.Sprintf("127.0.0.1:%d", proxyPort), leafPort)

	res := <-done
	if res.err != nil {
		t.Fatalf("natsbench restore: %v", res.err)
	}
	cmd, kv := resultFields(t, res.out)
	if cmd != "restore" {
		t.Errorf("result line starts with %q", cmd)
	}
	// The leaf retries every 50-100 ms: it is back well within a second.
	if kv["restore_ms"] <= 0 || kv["restore_ms"] > 1000 || kv["accept_ms"] < 0 || kv["link_ms"] <= 0 {
		t.Errorf("implausible times in %q", res.out)
	}
	if kv["lost"] < 1 || kv["first_seq"] < kv["seq_at_restore"] {
		t.Errorf("messages published during the outage were delivered? %q", res.out)
	}
}

// TestProxyCut checks the proxy on its own: it forwards, cuts every
// connection both ways, refuses while cut, and accepts again.
func TestProxyCut(t *testing.T) {
	echo, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer echo.Close()
	go func() {
		for {
			c, err := echo.Accept()
			if err != nil {
				return
			}
			go func() {
				buf := make([]byte, 64)
				for {
					n, err := c.Read(buf)
					if err != nil {
						c.Close()
						return
					}
					c.Write(buf[:n])
				}
			}()
		}
	}()
	f := newFailures()
	p := &proxy{addr: fmt.Sprintf("127.0.0.1:%d", freePort(t)), upstream: echo.Addr().String(), conns: map[net.Conn]struct{}{}, f: f}
	roundTrip := func() (net.Conn, error) {
		c, err := net.DialTimeout("tcp", p.addr, time.Second)
		if err != nil {
			return nil, err
		}
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Write([]byte("ping")); err != nil {
			return c, err
		}
		buf := make([]byte, 4)
		_, err = c.Read(buf)
		return c, err
	}
	if _, err := p.listen(); err != nil {
		t.Fatal(err)
	}
	c, err := roundTrip()
	if err != nil {
		t.Fatalf("through the proxy: %v", err)
	}
	if n := p.cut(); n != 1 {
		t.Errorf("cut %d links, want 1", n)
	}
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Error("a cut connection still reads")
	}
	if _, err := roundTrip(); err == nil {
		t.Error("the proxy accepted while cut")
	}
	if _, err := p.listen(); err != nil {
		t.Fatal(err)
	}
	defer p.cut()
	if _, err := roundTrip(); err != nil {
		t.Fatalf("after the restore: %v", err)
	}
	if p.acceptedAt().IsZero() {
		t.Error("no accept time after the restore")
	}
	select {
	case err := <-f:
		t.Errorf("proxy reported %v", err)
	default:
	}
}
