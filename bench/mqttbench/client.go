package main

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// connectTimeout bounds one connection's TCP dial and MQTT CONNECT.
const connectTimeout = 30 * time.Second

// connOptions are what differs between the connections of a run; every
// other Paho setting is fixed in newClient.
type connOptions struct {
	url        string
	keepalive  time.Duration
	readBuffer int    // 0: Paho reads the socket directly
	localAddr  string // source address; empty: the kernel's choice
	order      bool   // Paho's OrderMatters: handle messages on its goroutine
	onMessage  mqtt.MessageHandler
	onLost     func(error) // the broker closed the connection
}

// runSeq numbers the runs of this process, so that client IDs stay unique
// when one process runs several (the tests do).
var runSeq atomic.Int64

// clientIDs returns a function that names the connections of one run:
// "mb", the process ID, the run, a role letter and an index. IDs stay
// within the 23 characters MQTT 3.1.1 brokers must accept.
func clientIDs() func(role byte, i int) string {
	r := runSeq.Add(1)
	pid := os.Getpid()
	return func(role byte, i int) string { return fmt.Sprintf("mb%dr%d%c%d", pid, r, role, i) }
}

// newClient makes a Paho client with the settings every run uses: MQTT
// 3.1.1, a clean session, no automatic reconnect or connect retry (a
// reconnect during a run would invalidate it), and a ping timeout as long
// as the keepalive, so that a PINGRESP queued behind a long backlog of
// messages does not end the connection.
func newClient(id string, o connOptions) mqtt.Client {
	opts := mqtt.NewClientOptions().
		AddBroker(o.url).
		SetClientID(id).
		SetProtocolVersion(4).
		SetCleanSession(true).
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetResumeSubs(false).
		SetKeepAlive(o.keepalive).
		SetPingTimeout(o.keepalive).
		SetConnectTimeout(connectTimeout).
		SetOrderMatters(o.order).
		SetCustomOpenConnectionFn(dial(o.localAddr, o.readBuffer))
	if o.onMessage != nil {
		opts.SetDefaultPublishHandler(o.onMessage)
	}
	if o.onLost != nil {
		opts.SetConnectionLostHandler(func(_ mqtt.Client, err error) { o.onLost(err) })
	}
	return mqtt.NewClient(opts)
}

// dial opens the TCP connection for Paho, from localAddr if set, and reads
// it through a buffer of readBuffer bytes if that is not 0. (Go sets
// TCP_NODELAY on every TCP connection.)
func dial(localAddr string, readBuffer int) mqtt.OpenConnectionFunc {
	return func(u *url.URL, _ mqtt.ClientOptions) (net.Conn, error) {
		d := net.Dialer{Timeout: connectTimeout}
		if localAddr != "" {
			d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(localAddr)}
		}
		c, err := d.Dial("tcp", u.Host)
		if err != nil || readBuffer == 0 {
			return c, err
		}
		return &bufConn{Conn: c, r: bufio.NewReaderSize(c, readBuffer)}, nil
	}
}

// bufConn reads through a buffer. Paho reads each packet in several small
// reads (its first byte, each byte of its length, then the rest); through
// the buffer most of them cost no system call.
type bufConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *bufConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// connect connects cl and waits for the CONNACK.
func connect(ctx context.Context, cl mqtt.Client, name string) error {
	if err := await(ctx, cl.Connect()); err != nil {
		return fmt.Errorf("%s: connect: %w", name, err)
	}
	return nil
}

// await waits for a Paho token and returns its error, or the cause of
// ctx's end if that comes first.
func await(ctx context.Context, tok mqtt.Token) error {
	select {
	case <-tok.Done():
		return tok.Error()
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}
