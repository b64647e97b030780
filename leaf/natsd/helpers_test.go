package natsd_test

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/canopy-iot/canopy/internal/testlog"
	"github.com/canopy-iot/canopy/leaf/natsd"
)

// running is a natsd.Server serving on a kernel-picked port until the
// test ends.
type running struct {
	*natsd.Server
	logs   *testlog.Buffer
	cancel context.CancelFunc
	done   chan error
}

func startServer(t testing.TB, cfg natsd.Config) *running {
	t.Helper()
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:0"
	}
	logs := &testlog.Buffer{}
	s, err := natsd.New(cfg, "test-leaf", slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatalf("natsd.New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{Server: s, logs: logs, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- s.Run(ctx) }()
	t.Cleanup(func() { r.stop(t) })
	select {
	case <-s.Ready():
	case err := <-r.done:
		t.Fatalf("server stopped before it was ready: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("server not ready")
	}
	return r
}

func (r *running) stop(t testing.TB) {
	t.Helper()
	r.cancel()
	select {
	case err, ok := <-r.done:
		if ok {
			close(r.done)
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		}
	case <-time.After(10 * time.Second):
		t.Error("server did not stop within 10s")
	}
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

// raw is a plain TCP conversation with the server, for exact bytes.
type raw struct {
	t    testing.TB
	conn net.Conn
	r    *bufio.Reader
}

func dialRaw(t testing.TB, addr string) *raw {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &raw{t: t, conn: conn, r: bufio.NewReader(conn)}
}

func (c *raw) send(s string) {
	c.t.Helper()
	if _, err := c.conn.Write([]byte(s)); err != nil {
		c.t.Fatalf("write %q: %v", s, err)
	}
}

// line reads one line (with its CR LF), failing the test after 5s.
func (c *raw) line() string {
	c.t.Helper()
	c.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	l, err := c.r.ReadString('\n')
	if err != nil {
		c.t.Fatalf("read after %q: %v", l, err)
	}
	return l
}

// expect reads exactly len(want) bytes and compares them.
func (c *raw) expect(want string) {
	c.t.Helper()
	c.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	got := make([]byte, len(want))
	n, err := io.ReadFull(c.r, got)
	if err != nil || string(got[:n]) != want {
		c.t.Fatalf("got %q (%v), want %q", got[:n], err, want)
	}
}

// expectClosed checks the server closes the connection, after sending
// nothing more than what is already expected.
func (c *raw) expectClosed() {
	c.t.Helper()
	c.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	rest, err := c.r.ReadString(0)
	if err == nil || rest != "" || isTimeout(err) {
		c.t.Fatalf("connection still open (read %q, %v)", rest, err)
	}
}

// handshake reads the server's INFO and returns its JSON.
func (c *raw) handshake() string {
	c.t.Helper()
	l := c.line()
	if !strings.HasPrefix(l, "INFO {") || !strings.HasSuffix(l, "}\r\n") {
		c.t.Fatalf("first line %q is not an INFO", l)
	}
	return strings.TrimSuffix(strings.TrimPrefix(l, "INFO "), "\r\n")
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}
