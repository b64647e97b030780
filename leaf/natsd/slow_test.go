package natsd_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/canopy-iot/canopy/internal/config"
	"github.com/canopy-iot/canopy/internal/wait"
	"github.com/canopy-iot/canopy/leaf/natsd"
)

// A subscriber that stops reading is cut off, by pending bytes or by the
// write deadline, while a subscriber that keeps up gets every message.
func TestSlowConsumerIsCutOffAndOthersKeepReceiving(t *testing.T) {
	// The pending limit must exceed what the kernel buffers for the slow
	// socket (a few MiB on loopback), yet stay above what a subscriber
	// that keeps up ever has queued.
	cases := map[string]struct {
		cfg    natsd.Config
		reason string
	}{
		"pending bytes":  {natsd.Config{MaxPending: 4 << 20}, "pending bytes over max_pending"},
		"write deadline": {natsd.Config{WriteDeadline: config.Duration(200 * time.Millisecond)}, "write deadline exceeded"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			s := startServer(t, c.cfg)
			const total, size = 40_000, 1024

			slow := dialRaw(t, s.Addr().String())
			slow.handshake()
			slow.send("CONNECT {\"verbose\":false}\r\nSUB data 1\r\nPING\r\n")
			slow.expect("PONG\r\n")
			// From here on the slow client reads nothing.

			var got atomic.Int64
			var fastDisconnects atomic.Int64
			fast := connect(t, s.ClientURL(), nats.DisconnectErrHandler(func(*nats.Conn, error) { fastDisconnects.Add(1) }))
			sub, err := fast.Subscribe("data", func(*nats.Msg) { got.Add(1) })
			if err != nil {
				t.Fatal(err)
			}
			sub.SetPendingLimits(-1, -1)
			fast.Flush()

			pub := connect(t, s.ClientURL())
			payload := bytes.Repeat([]byte("x"), size)
			for range total {
				if err := pub.Publish("data", payload); err != nil {
					t.Fatal(err)
				}
			}
			pub.Flush()
			wait.For(t, 30*time.Second, func() error {
				if n := got.Load(); n != total {
					return fmt.Errorf("fast subscriber got %d of %d", n, total)
				}
				return nil
			})
			wait.For(t, 10*time.Second, func() error { return s.logs.Contains(`reason="` + c.reason + `"`) })
			if n := fastDisconnects.Load(); n != 0 {
				t.Fatalf("the fast subscriber was disconnected %d times", n)
			}

			// The slow client finds its connection closed once it reads
			// what was buffered for it.
			slow.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
			_, err = io.Copy(io.Discard, slow.conn)
			var ne interface{ Timeout() bool }
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatal("slow consumer still connected")
			}
			if n := s.NumClients(); n != 2 {
				t.Fatalf("%d clients connected, want the 2 fast ones", n)
			}
		})
	}
}
