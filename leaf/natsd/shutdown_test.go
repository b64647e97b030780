package natsd_test

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/canopy-iot/canopy/leaf/natsd"
)

// Shutdown writes what is queued for each client before closing: a
// subscriber that was behind still receives every message that was
// accepted before the server stopped.
func TestShutdownFlushesPendingWrites(t *testing.T) {
	s := startServer(t, natsd.Config{})
	sub := dialRaw(t, s.Addr().String())
	sub.handshake()
	sub.send("CONNECT {\"verbose\":false}\r\nSUB bulk 1\r\nPING\r\n")
	sub.expect("PONG\r\n")

	// More than the kernel buffers for the subscriber's socket, so part of
	// it is still queued in the server when shutdown begins.
	const total, size = 16 << 10, 1024
	pub := dialRaw(t, s.Addr().String())
	pub.handshake()
	payload := strings.Repeat("p", size)
	var batch bytes.Buffer
	for i := range total {
		fmt.Fprintf(&batch, "PUB bulk %d\r\n%s\r\n", size, payload[:size-6]+fmt.Sprintf("%06d", i))
	}
	pub.send("CONNECT {\"verbose\":false}\r\n")
	pub.send(batch.String())
	pub.send("PING\r\n")
	pub.expect("PONG\r\n") // every PUB was handled and queued

	stopped := make(chan struct{})
	go func() { s.stop(t); close(stopped) }()

	sub.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	data, err := io.ReadAll(sub.r)
	if err != nil {
		t.Fatalf("read until close: %v", err)
	}
	if n := strings.Count(string(data), "MSG bulk 1 1024\r\n"); n != total {
		t.Fatalf("subscriber received %d of %d messages before the connection closed", n, total)
	}
	<-stopped
}
