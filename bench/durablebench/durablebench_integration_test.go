package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/canopy-iot/canopy/internal/config"
	"github.com/canopy-iot/canopy/leaf"
	"github.com/canopy-iot/canopy/leaf/natsd"
	"github.com/canopy-iot/canopy/leaf/stream"
	"github.com/canopy-iot/canopy/leaf/uplink"
	"github.com/canopy-iot/canopy/mqtt"

	"github.com/canopy-iot/canopy/bench/internal/benchcli"
)

// startServer runs nats-server in this process on a kernel-picked port,
// with JetStream (domain "hub") when storeDir is set and a leafnode
// listener on leafPort when it is not 0.
func startServer(t testing.TB, storeDir string, leafPort int) *server.Server {
	t.Helper()
	opts := &server.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true, ServerName: "hub"}
	if storeDir != "" {
		opts.JetStream, opts.StoreDir, opts.JetStreamDomain = true, storeDir, "hub"
	}
	if leafPort != 0 {
		opts.LeafNode.Host, opts.LeafNode.Port, opts.LeafNode.NoAdvertise = "127.0.0.1", leafPort, true
	}
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

func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// durablebench runs a command as main would and returns its result line.
func durablebench(t testing.TB, args ...string) (string, error) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), args, &stdout, &stderr)
	if stderr.Len() > 0 {
		t.Logf("stderr: %s", stderr.String())
	}
	return stdout.String(), err
}

// resultFields parses a result line: its command word and key=value pairs.
func resultFields(t testing.TB, line string) (string, map[string]float64) {
	t.Helper()
	cmd, kv, err := benchcli.ParseResult(line)
	if err != nil {
		t.Fatal(err)
	}
	return cmd, kv
}

// ingest against a JetStream file stream it creates: every message is
// acknowledged and stored once, and the server process's (this one's) disk
// writes and memory are reported.
func TestIntegrationIngest(t *testing.T) {
	s := startServer(t, t.TempDir(), 0)
	const msgs = 3000
	out, err := durablebench(t, "ingest", "-url", s.ClientURL(), "-subject", "bench.x", "-stream", "BENCH",
		"-msgs", strconv.Itoa(msgs), "-size", "128", "-inflight", "64", "-pid", strconv.Itoa(os.Getpid()), "-settle", "100ms")
	if err != nil {
		t.Fatal(err)
	}
	cmd, kv := resultFields(t, out)
	if cmd != "ingest" || kv["msgs"] != msgs || kv["msgs_per_s"] <= 0 || kv["vmhwm_kib"] <= 0 || kv["vmrss_kib"] <= 0 {
		t.Fatalf("result %q", out)
	}
	if _, ok := kv["write_bytes_per_msg"]; !ok {
		t.Fatalf("no write_bytes_per_msg in %q", out)
	}
	nc, _ := nats.Connect(s.ClientURL())
	defer nc.Close()
	js, _ := jetstream.New(nc)
	st, err := js.Stream(context.Background(), "BENCH")
	if err != nil {
		t.Fatal(err)
	}
	if info, _ := st.Info(context.Background()); info.State.Msgs != msgs {
		t.Fatalf("the stream holds %d messages, want %d", info.State.Msgs, msgs)
	}
}

// A server whose acknowledgements are wrong fails the run instead of
// reporting a rate: a responder on a plain server answers every publish
// with the same sequence, or with an error.
func TestIntegrationIngestCountsAcknowledgements(t *testing.T) {
	tests := []struct {
		name, want string
		answer     func(i int) any
	}{
		{"one sequence twice", "acknowledged with sequence", func(i int) any {
			return map[string]any{"stream": "X", "seq": 1 + min(i, 10)}
		}},
		{"a refusal", "refused here", func(i int) any {
			if i == 100 {
				return map[string]any{"error": map[string]any{"code": 503, "err_code": 10077, "description": "refused here"}}
			}
			return map[string]any{"stream": "X", "seq": i + 1}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := startServer(t, "", 0)
			nc, err := nats.Connect(s.ClientURL())
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			i := 0
			if _, err := nc.Subscribe("bench.x", func(m *nats.Msg) {
				b, _ := json.Marshal(tt.answer(i))
				i++
				m.Respond(b)
			}); err != nil {
				t.Fatal(err)
			}
			nc.Flush()
			out, err := durablebench(t, "ingest", "-url", s.ClientURL(), "-subject", "bench.x", "-msgs", "500", "-timeout", "30s")
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %q, %v; want an error with %q", out, err, tt.want)
			}
		})
	}
}

// drain against a canopy leaf: the backlog is stored while nothing
// listens on the proxy's address, and the hub stream holds exactly all of
// it once the proxy opens; with -warm after one message crossed first.
func TestIntegrationDrain(t *testing.T) {
	for _, warm := range []bool{true, false} {
		t.Run(fmt.Sprintf("warm=%v", warm), func(t *testing.T) {
			hubLeaf := freePort(t)
			hub := startServer(t, t.TempDir(), hubLeaf)
			proxy := fmt.Sprintf("127.0.0.1:%d", freePort(t))
			n := startCanopyLeaf(t, proxy)
			const msgs = 5000
			out, err := durablebench(t, "drain", "-leaf-url", n.NATSURL(), "-hub-url", hub.ClientURL(),
				"-listen", proxy, "-upstream", fmt.Sprintf("127.0.0.1:%d", hubLeaf), "-subject", "sensors.bench",
				"-msgs", strconv.Itoa(msgs), "-hub-subjects", "telemetry.>", "-warm="+strconv.FormatBool(warm), "-timeout", "2m")
			if err != nil {
				t.Fatal(err)
			}
			cmd, kv := resultFields(t, out)
			if cmd != "drain" || kv["msgs"] != msgs || kv["msgs_per_s"] <= 0 || kv["first_ms"] <= 0 || kv["drain_ms"] < kv["first_ms"] {
				t.Fatalf("result %q", out)
			}
			nc, _ := nats.Connect(hub.ClientURL())
			defer nc.Close()
			js, _ := jetstream.New(nc)
			st, _ := js.Stream(context.Background(), "TELEMETRY")
			want := uint64(msgs)
			if warm {
				want++
			}
			if info, err := st.Info(context.Background()); err != nil || info.State.Msgs != want {
				t.Fatalf("the hub stream holds %+v (%v), want %d messages", info, err, want)
			}
		})
	}
}

// startCanopyLeaf runs a canopy leaf in this process with one stream on
// sensors.> and its uplink to hubLeaf (host:port).
func startCanopyLeaf(t *testing.T, hubLeaf string) *leaf.Node {
	t.Helper()
	cfg := leaf.Config{
		ServerName: "pi-001", DataDir: t.TempDir(),
		NATS: natsd.Config{Listen: "127.0.0.1:0"},
		MQTT: mqtt.Config{Listen: "127.0.0.1:0"},
		Uplink: uplink.Config{URLs: []string{"nats-leaf://" + hubLeaf},
			ReconnectMin: config.Duration(20 * time.Millisecond), ReconnectMax: config.Duration(50 * time.Millisecond)},
		Streams: []stream.Config{{Name: "sensors", Subjects: []string{"sensors.>"}, Upstream: stream.Upstream{Domain: "hub"}}},
	}
	n, err := leaf.New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	select {
	case <-n.Ready():
	case err := <-done:
		t.Fatal(err)
	}
	return n
}

func TestServeRejectsBadConfig(t *testing.T) {
	if _, err := durablebench(t, "serve"); err != errUsage {
		t.Fatalf("serve without -config: %v, want a usage error", err)
	}
	f := filepath.Join(t.TempDir(), "bad.conf")
	os.WriteFile(f, []byte("jetstream { sync_interval: [ }"), 0o600)
	if _, err := durablebench(t, "serve", "-config", f); err == nil || !strings.Contains(err.Error(), f) {
		t.Fatalf("serve with a bad file: %v", err)
	}
}
