package natsd_test

import (
	"errors"
	"testing"
	"time"

	"github.com/canopy-iot/canopy/internal/config"
	"github.com/canopy-iot/canopy/leaf/natsd"
)

func TestStaleConnection(t *testing.T) {
	s := startServer(t, natsd.Config{PingInterval: config.Duration(50 * time.Millisecond), MaxPingsOut: 2})

	// A client that answers every PING keeps its connection.
	alive := dialRaw(t, s.Addr().String())
	alive.handshake()
	alive.send("CONNECT {\"verbose\":false}\r\n")
	answered := make(chan error, 1)
	go func() {
		for range 10 {
			alive.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
			l, err := alive.r.ReadString('\n')
			if err != nil || l != "PING\r\n" {
				answered <- errors.New("answering client got " + l + " instead of PING")
				return
			}
			if _, err := alive.conn.Write([]byte("PONG\r\n")); err != nil {
				answered <- err
				return
			}
		}
		answered <- nil
	}()

	// A client that never answers is pinged twice, then told and closed.
	dead := dialRaw(t, s.Addr().String())
	dead.handshake()
	dead.send("CONNECT {\"verbose\":false}\r\n")
	dead.expect("PING\r\nPING\r\n-ERR 'Stale Connection'\r\n")
	dead.expectClosed()

	if err := <-answered; err != nil {
		t.Fatal(err)
	}
}
