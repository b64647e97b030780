package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/canopy-iot/canopy/internal/wait"
)

// mosquitto is a broker the tests start: Debian's mosquitto binary as a
// process on a free 127.0.0.1 port.
type mosquitto struct {
	url string
	cmd *exec.Cmd
	log string
}

// startMosquitto starts mosquitto with the configuration bench/mqtt.sh
// uses, plus extra lines, and stops it when the test ends. It skips the
// test if mosquitto is not installed.
func startMosquitto(t testing.TB, extra ...string) *mosquitto {
	t.Helper()
	bin, err := exec.LookPath("mosquitto")
	if err != nil {
		bin = "/usr/sbin/mosquitto" // not on a non-root PATH
		if _, err := os.Stat(bin); err != nil {
			t.Skip("mosquitto is not installed: apt-get install mosquitto (Debian's package, as bench/mqtt.sh uses)")
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	me, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	m := &mosquitto{url: fmt.Sprintf("tcp://127.0.0.1:%d", port), log: filepath.Join(dir, "mosquitto.log")}
	conf := []string{
		fmt.Sprintf("listener %d 127.0.0.1", port),
		"allow_anonymous true",
		"set_tcp_nodelay true",
		"persistence false",
		"log_dest file " + m.log,
		// Run as root, mosquitto would switch to its own user, which
		// cannot write the log in this test's directory.
		"user " + me.Username,
	}
	conf = append(conf, extra...)
	confFile := filepath.Join(dir, "mosquitto.conf")
	if err := os.WriteFile(confFile, []byte(strings.Join(conf, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	m.cmd = exec.Command(bin, "-c", confFile)
	m.cmd.Stdout, m.cmd.Stderr = &out, &out
	if err := m.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() {
		m.cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		m.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			m.cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			b, _ := os.ReadFile(m.log)
			t.Logf("mosquitto output:\n%s\nmosquitto log:\n%s", out.String(), b)
		}
	})
	wait.For(t, 10*time.Second, func() error {
		select {
		case <-exited:
			t.Fatalf("mosquitto exited: %s", out.String())
		default:
		}
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			return err
		}
		return c.Close()
	})
	return m
}

// noDrops is the setting bench/mqtt.sh gives mosquitto: no limit on the
// messages queued for a client, so that it does not drop QoS 0 messages
// for a subscriber that is behind.
const noDrops = "max_queued_messages 0"

// mqttbench runs a command as main would and returns its stdout.
func mqttbench(t testing.TB, args ...string) (string, error) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), args, strings.NewReader(""), &stdout, &stderr)
	if stderr.Len() > 0 {
		t.Logf("stderr: %s", stderr.String())
	}
	return stdout.String(), err
}

// resultFields parses a result line: its command word and key=value pairs,
// the values as numbers where they are (comma-separated lists are summed).
func resultFields(t testing.TB, line string) (string, map[string]float64) {
	t.Helper()
	words := strings.Fields(line)
	if len(words) < 2 {
		t.Fatalf("want a result line, got %q", line)
	}
	kv := map[string]float64{}
	for _, w := range words[1:] {
		k, v, ok := strings.Cut(w, "=")
		if !ok {
			t.Fatalf("%q in %q is not key=value", w, line)
		}
		var sum float64
		for _, part := range strings.Split(v, ",") {
			f, err := strconv.ParseFloat(part, 64)
			if err != nil {
				sum = -1
				break
			}
			sum += f
		}
		kv[k] = sum
	}
	return words[0], kv
}

func TestIntegrationPubSub(t *testing.T) {
	m := startMosquitto(t, noDrops)
	tests := []struct {
		args       []string
		pubs, subs int
		msgs       int // per publisher; 0: a duration run
	}{
		{args: []string{"-qos", "0", "-msgs", "20000"}, pubs: 1, subs: 1, msgs: 20000},
		{args: []string{"-qos", "1", "-msgs", "3000", "-pubs", "3", "-subs", "2"}, pubs: 3, subs: 2, msgs: 3000},
		{args: []string{"-qos", "2", "-msgs", "1000", "-pubs", "2", "-size", "256"}, pubs: 2, subs: 1, msgs: 1000},
		{args: []string{"-qos", "1", "-duration", "300ms", "-pubs", "10", "-inflight", "5"}, pubs: 10, subs: 1},
		{args: []string{"-qos", "0", "-duration", "300ms", "-pubs", "2", "-subs", "2", "-rate", "1000", "-read-buffer", "0"}, pubs: 2, subs: 2},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			out, err := mqttbench(t, append([]string{"pubsub", "-url", m.url, "-timeout", "1m"}, tt.args...)...)
			if err != nil {
				t.Fatalf("mqttbench: %v\n%s", err, out)
			}
			cmd, kv := resultFields(t, out)
			if cmd != "pubsub" || strings.Count(out, "\n") != 1 {
				t.Fatalf("want one pubsub line, got %q", out)
			}
			sent := kv["sent"]
			if tt.msgs > 0 && sent != float64(tt.pubs*tt.msgs) {
				t.Errorf("sent = %v, want %d", sent, tt.pubs*tt.msgs)
			}
			if sent <= 0 {
				t.Errorf("sent = %v, want > 0", sent)
			}
			for k, want := range map[string]float64{
				"pubs": float64(tt.pubs), "subs": float64(tt.subs),
				"expected": sent * float64(tt.subs), "received": sent * float64(tt.subs),
				"lost": 0, "unended": 0, "dups": 0, "reordered": 0, "malformed": 0, "unexpected": 0,
			} {
				if kv[k] != want {
					t.Errorf("%s = %v, want %v in %q", k, kv[k], want, out)
				}
			}
			for _, k := range []string{"recv_msgs_per_s", "sub_msgs_per_s", "pub_msgs_per_s"} {
				if kv[k] <= 0 {
					t.Errorf("%s = %v, want > 0 in %q", k, kv[k], out)
				}
			}
			if d := kv["drain_s"]; d < 0 || d >= 10 {
				t.Errorf("drain_s = %v: every end marker should have ended the drain at once", d)
			}
		})
	}
}

func TestIntegrationLatency(t *testing.T) {
	m := startMosquitto(t, noDrops)
	for _, qos := range []string{"0", "1"} {
		t.Run("qos "+qos, func(t *testing.T) {
			start := time.Now()
			out, err := mqttbench(t, "latency", "-url", m.url, "-qos", qos, "-msgs", "1200", "-rate", "2000", "-warmup", "200")
			if err != nil {
				t.Fatalf("mqttbench: %v\n%s", err, out)
			}
			// 1,200 messages at 2,000/s take 600 ms at least.
			if d := time.Since(start); d < 600*time.Millisecond {
				t.Errorf("the run took %v: the publisher was not held to -rate", d)
			}
			_, kv := resultFields(t, out)
			if kv["sent"] != 1200 || kv["rate"] != 2000 {
				t.Errorf("want sent=1200 rate=2000 in %q", out)
			}
			if kv["lost"] != 0 || kv["received"] != kv["sent"] || kv["samples"] != kv["sent"]-200 {
				t.Errorf("want every message received and all but the warm-up measured: %q", out)
			}
			if !(kv["p50_us"] > 0 && kv["p50_us"] <= kv["p90_us"] && kv["p90_us"] <= kv["p99_us"] && kv["p99_us"] <= kv["max_us"]) {
				t.Errorf("want 0 < p50 ≤ p90 ≤ p99 ≤ max: %q", out)
			}
		})
	}
}

// TestIntegrationLossAndDuplicatesFail makes mosquitto drop, and a client
// of the test duplicate, messages: the run must fail with the counts and
// without a rate.
func TestIntegrationLossAndDuplicatesFail(t *testing.T) {
	t.Run("mosquitto drops QoS 0 messages for a subscriber that is behind", func(t *testing.T) {
		// mosquitto's default, max_queued_messages 1000, with the
		// subscriber stalled until the publisher is done: 50 MB cannot
		// all wait in socket buffers.
		m := startMosquitto(t)
		release := make(chan struct{})
		var once sync.Once
		l := load{topic: pubsubTopic, pubs: 1, subs: 1, size: 1024, msgs: 50_000, inflight: 100, drain: 2 * time.Second,
			hook:      func() { <-release },
			published: func() { once.Do(func() { close(release) }) },
		}
		l.common = common{url: m.url, timeout: time.Minute, keepalive: time.Minute, readBuffer: 32 << 10}
		res, err := l.run(context.Background())
		once.Do(func() { close(release) })
		if err != nil {
			t.Fatal(err)
		}
		tot, expected := res.totals()
		if expected != 50_000 || tot.lost == 0 || tot.received+tot.lost != expected || tot.valid() {
			t.Fatalf("want some of 50,000 messages lost, got %s", res.countedLine())
		}
		if err := tot.problems(); err == nil || !strings.Contains(err.Error(), "messages lost") {
			t.Errorf("problems: %v", err)
		}
	})

	t.Run("a client republishes some messages", func(t *testing.T) {
		m := startMosquitto(t, noDrops)
		// The intruder receives its own copies too (MQTT 3.1.1 has no
		// no-local), so it copies each message once only.
		intruder := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(m.url).SetClientID("intruder"))
		if tok := intruder.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("intruder: connect: %v", tok.Error())
		}
		defer intruder.Disconnect(0)
		var mu sync.Mutex
		copied := map[uint64]bool{}
		tok := intruder.Subscribe(pubsubTopic, 1, func(c mqtt.Client, msg mqtt.Message) {
			h, ok := readHeader(msg.Payload())
			mu.Lock()
			defer mu.Unlock()
			if ok && h.kind == kindData && h.seq < 10 && !copied[h.seq] {
				copied[h.seq] = true
				go c.Publish(pubsubTopic, 1, false, msg.Payload())
			}
		})
		if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("intruder: subscribe: %v", tok.Error())
		}
		out, err := mqttbench(t, "pubsub", "-url", m.url, "-qos", "1", "-msgs", "2000", "-subs", "2", "-timeout", "1m")
		if err == nil || !strings.Contains(err.Error(), "20 messages duplicated") {
			t.Fatalf("got error %v, want 20 messages duplicated (10 at each of 2 subscribers)", err)
		}
		_, kv := resultFields(t, out)
		if kv["dups"] != 20 || kv["lost"] != 0 {
			t.Errorf("want dups=20 lost=0 in %q", out)
		}
		if _, ok := kv["recv_msgs_per_s"]; ok {
			t.Errorf("an invalid run reported a rate: %q", out)
		}
	})
}

// lines is an io.Writer that hands each complete line to a channel.
type lines struct {
	mu  sync.Mutex
	buf []byte
	c   chan string
}

func (l *lines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = append(l.buf, p...)
	for {
		i := bytes.IndexByte(l.buf, '\n')
		if i < 0 {
			return len(p), nil
		}
		l.c <- string(l.buf[:i])
		l.buf = l.buf[i+1:]
	}
}

// startIdle runs mqttbench idle until the returned cancel is called and
// returns its lines and, on done, its error.
func startIdle(t *testing.T, stdin io.Reader, args ...string) (out chan string, done chan error, cancel func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	out, done = make(chan string, 10), make(chan error, 1)
	var stderr bytes.Buffer
	go func() {
		done <- run(ctx, append([]string{"idle"}, args...), stdin, &lines{c: out}, &stderr)
	}()
	t.Cleanup(func() {
		cancel()
		if stderr.Len() > 0 {
			t.Logf("stderr: %s", stderr.String())
		}
	})
	return out, done, cancel
}

func next(t *testing.T, c chan string) string {
	t.Helper()
	select {
	case l := <-c:
		return l
	case <-time.After(time.Minute):
		t.Fatal("no line from mqttbench idle within a minute")
		return ""
	}
}

func TestIntegrationIdle(t *testing.T) {
	m := startMosquitto(t, noDrops)

	t.Run("held until cancelled", func(t *testing.T) {
		out, done, cancel := startIdle(t, nil, "-url", m.url, "-conns", "200", "-sources", "3")
		_, kv := resultFields(t, next(t, out))
		if kv["conns"] != 200 || kv["connect_s"] <= 0 {
			t.Fatalf("first line: %v", kv)
		}
		cancel()
		_, kv = resultFields(t, next(t, out))
		if kv["lost_conns"] != 0 {
			t.Errorf("last line: %v", kv)
		}
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	})

	t.Run("held until stdin closes", func(t *testing.T) {
		r, w := io.Pipe()
		out, done, _ := startIdle(t, r, "-url", m.url, "-conns", "20", "-stdin")
		next(t, out)
		w.Close()
		next(t, out)
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	})

	t.Run("a broker that goes away fails the run", func(t *testing.T) {
		gone := startMosquitto(t, noDrops)
		out, done, _ := startIdle(t, nil, "-url", gone.url, "-conns", "20")
		next(t, out)
		if err := gone.cmd.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		var err error
		select {
		case err = <-done:
		case <-time.After(time.Minute):
			t.Fatal("mqttbench idle kept running after the broker was killed")
		}
		if err == nil || !strings.Contains(err.Error(), "connection lost") {
			t.Fatalf("got %v, want a lost connection", err)
		}
		_, kv := resultFields(t, next(t, out))
		if kv["lost_conns"] < 1 {
			t.Errorf("last line: %v", kv)
		}
	})
}

func TestIntegrationConnectFailureIsReported(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "tcp://" + ln.Addr().String()
	ln.Close() // nothing listens there now
	for _, args := range [][]string{
		{"pubsub", "-url", url, "-msgs", "10"},
		{"idle", "-url", url, "-conns", "3"},
	} {
		if out, err := mqttbench(t, args...); err == nil || errors.Is(err, errUsage) || out != "" {
			t.Errorf("mqttbench %q: got %v and %q, want a connection error and no result", args, err, out)
		}
	}
}
