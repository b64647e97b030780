package main

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/canopy-iot/canopy/bench/internal/benchcli"
)

// startServer runs nats-server in this process on a kernel-picked port and
// returns its client URL and port.
func startServer(t testing.TB) (string, int) {
	t.Helper()
	s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	s.Start()
	t.Cleanup(s.Shutdown)
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	return s.ClientURL(), s.Addr().(*net.TCPAddr).Port
}

// natsbench runs a command as main would and returns its result line.
func natsbench(t testing.TB, args ...string) (string, error) {
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

func TestIntegrationCommands(t *testing.T) {
	url, port := startServer(t)
	pid := strconv.Itoa(os.Getpid()) // the server runs in this process

	tests := []struct {
		args     []string
		positive []string // keys that must be > 0
		exact    map[string]float64
	}{
		{args: []string{"pubsub", "-msgs", "20000", "-subs", "1"},
			positive: []string{"recv_msgs_per_s", "pub_msgs_per_s"}, exact: map[string]float64{"msgs": 20000, "subs": 1, "size": 16}},
		{args: []string{"pubsub", "-msgs", "5000", "-subs", "3", "-size", "256"},
			positive: []string{"recv_msgs_per_s", "recv_mb_per_s"}, exact: map[string]float64{"subs": 3, "size": 256}},
		{args: []string{"queue", "-msgs", "20000"},
			positive: []string{"recv_msgs_per_s", "member_min"}, exact: map[string]float64{"members": 4}},
		{args: []string{"reqrep", "-requests", "300", "-warmup", "10"},
			positive: []string{"p50_us", "p99_us", "p999_us", "max_us"}, exact: map[string]float64{"requests": 300}},
		{args: []string{"idle", "-clients", "20", "-pid", pid},
			positive: []string{"rss_kib", "hwm_kib"}, exact: map[string]float64{"clients": 20}},
		{args: []string{"idle", "-clients", "0", "-pid", pid},
			positive: []string{"rss_kib"}, exact: map[string]float64{"clients": 0}},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			out, err := natsbench(t, append(tt.args, "-url", url, "-timeout", "2m")...)
			if err != nil {
				t.Fatalf("natsbench: %v", err)
			}
			cmd, kv := resultFields(t, out)
			if cmd != tt.args[0] {
				t.Errorf("result line starts with %q, want %q", cmd, tt.args[0])
			}
			for _, k := range tt.positive {
				if kv[k] <= 0 {
					t.Errorf("%s = %v, want > 0 in %q", k, kv[k], out)
				}
			}
			for k, want := range tt.exact {
				if got, ok := kv[k]; !ok || got != want {
					t.Errorf("%s = %v, want %v in %q", k, got, want, out)
				}
			}
		})
	}

	t.Run("wait-listen", func(t *testing.T) {
		if _, err := natsbench(t, "wait-listen", "-port", strconv.Itoa(port), "-pid", pid, "-timeout", "5s"); err != nil {
			t.Errorf("wait-listen on the server's port: %v", err)
		}
		free, err := natsbench(t, "free-port")
		if err != nil {
			t.Fatalf("free-port: %v", err)
		}
		if _, err := natsbench(t, "wait-listen", "-port", strings.TrimSpace(free), "-timeout", "100ms"); err == nil {
			t.Errorf("wait-listen on free port %s succeeded", free)
		}
	})
}

// TestIntegrationDeliveryMistakesFail puts a client between the publisher
// and the receivers that makes the server look as if it lost or duplicated
// messages: every such run must fail instead of reporting a rate. (Extra
// copies that only arrive after a run has stopped counting cannot be seen;
// TestVerify covers the accounting itself.)
func TestIntegrationDeliveryMistakesFail(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		intrude func(t *testing.T, nc *nats.Conn)
		want    string
	}{
		{
			name: "a queue member the run does not know takes some messages",
			args: []string{"queue"},
			intrude: func(t *testing.T, nc *nats.Conn) {
				if _, err := nc.QueueSubscribe(queueSubject, queueGroup, func(*nats.Msg) {}); err != nil {
					t.Fatal(err)
				}
			},
			want: "no message for",
		},
		{
			// Each message the intruder takes reaches the group twice,
			// both copies in one write, so the group cannot count exactly
			// one of each whenever it stops counting.
			name: "some messages delivered to the queue group twice, some not at all",
			args: []string{"queue"},
			intrude: func(t *testing.T, nc *nats.Conn) {
				_, err := nc.QueueSubscribe(queueSubject, queueGroup, func(m *nats.Msg) {
					nc.Publish(m.Subject, m.Data)
					nc.Publish(m.Subject, m.Data)
				})
				if err != nil {
					t.Fatal(err)
				}
			},
			want: "queue group:",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			url, _ := startServer(t)
			// NoEcho: an intruder does not receive its own copies.
			nc, err := nats.Connect(url, nats.NoEcho())
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			tt.intrude(t, nc)
			if err := nc.Flush(); err != nil {
				t.Fatal(err)
			}
			_, err = natsbench(t, append(tt.args, "-url", url, "-msgs", "5000", "-stall", "1s", "-timeout", "1m")...)
			switch {
			case err == nil:
				t.Fatal("the run succeeded")
			case !strings.Contains(err.Error(), tt.want):
				t.Fatalf("the run failed with %q, want an error saying %q", err, tt.want)
			}
		})
	}
}

func TestUsage(t *testing.T) {
	for _, args := range [][]string{
		nil,
		{"nope"},
		{"pubsub", "-size", "4"},
		{"pubsub", "extra"},
		{"queue", "-members", "0"},
		{"reqrep", "-requests", "0"},
		{"idle"},
		{"restore", "-listen", "127.0.0.1:1", "-upstream", "127.0.0.1:2"},
		{"pubsub", "-pub-url", "nats://127.0.0.1:1", "-probe-timeout", "0s"},
		{"wait-listen"},
	} {
		if _, err := natsbench(t, args...); !errors.Is(err, errUsage) {
			t.Errorf("natsbench %q: got %v, want a usage error", args, err)
		}
	}
}

func TestReadProcStatus(t *testing.T) {
	st, err := readProcStatus(os.Getpid(), "VmRSS", "VmHWM")
	if err != nil {
		t.Fatal(err)
	}
	if st["VmRSS"] <= 0 || st["VmHWM"] < st["VmRSS"] {
		t.Errorf("VmRSS %d, VmHWM %d: want 0 < VmRSS <= VmHWM", st["VmRSS"], st["VmHWM"])
	}
	if _, err := readProcStatus(os.Getpid(), "NoSuchField"); err == nil {
		t.Error("a missing field was not reported")
	}
}
