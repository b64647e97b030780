package natsd

import (
	"encoding/json"
	"errors"
	"io"
	"math"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/canopy-iot/canopy/leaf/auth"
	"github.com/canopy-iot/canopy/leaf/internal/wbuf"
	"github.com/canopy-iot/canopy/leaf/natsproto"
	"github.com/canopy-iot/canopy/leaf/subject"
)

// Read buffer sizes: small for idle clients (a Pi may serve many), grown
// while a client keeps filling it, as nats-server does.
const (
	minReadBuf = 512
	maxReadBuf = 64 << 10
)

// client is one connection. Its reader goroutine parses and handles what
// the client sends; its writer goroutine writes what is queued in out.
// Publishers on other goroutines append to out under outMu.
type client struct {
	natsproto.NopHandler // the client-side operations a server never receives

	srv    *Server
	id     uint64
	conn   net.Conn
	remote string
	parser *natsproto.Parser
	nonce  string

	// Set by CONNECT on the reader goroutine. echo, headers and user are
	// also read by publishers delivering to this client.
	verbose      bool
	pedantic     bool
	noResponders bool
	name         string
	connected    atomic.Bool
	echo         atomic.Bool
	headers      atomic.Bool
	user         atomic.Pointer[auth.User]

	// bridge marks the internal client of a protocol bridge (MQTT): one
	// delivery per message however many of its plain subscriptions match,
	// and its queue subscriptions compete for its own publishes. Set before
	// the client subscribes, never changed.
	bridge bool

	subsMu     sync.Mutex // the reader changes subs; close and auto-unsubscribe run elsewhere
	subs       map[string]*subject.Sub[*subscription]
	subsClosed bool // set by close: no subscription may be added any more

	batch Batch // clients this reader queued output for during one read

	outMu   sync.Mutex
	out     wbuf.Queue    // queued for the writer
	spare   [][]byte      // the writer's previous block list, for reuse
	writer  wbuf.Writer   // writer goroutine only
	closed  bool          // nothing more is queued
	drained chan struct{} // closed when a backlog over the stall mark is written; nil when none
	flushCh chan struct{}

	done      chan struct{} // closed when the connection starts closing
	closeOnce sync.Once
	graceful  atomic.Bool // write what is queued before closing

	hdrScratch []byte   // reader only: builds no-responders headers
	groups     []string // reader only: queue groups a publish reached locally

	pingsOut atomic.Int32
	lastRead atomic.Int64               // unix nanoseconds
	pinger   atomic.Pointer[time.Timer] // set before the timer can fire, read by ping
}

// subscription is what the index keeps per subscription: its owner and
// its auto-unsubscribe state.
type subscription struct {
	c         *client
	sid       []byte       // as the client sent it, echoed in MSG
	fn        MsgHandler   // internal clients: receives the messages
	max       atomic.Int64 // 0: no limit
	delivered atomic.Int64
}

func newClient(s *Server, id uint64, conn net.Conn) *client {
	c := &client{
		srv: s, id: id, conn: conn, remote: conn.RemoteAddr().String(),
		subs:    map[string]*subject.Sub[*subscription]{},
		flushCh: make(chan struct{}, 1),
		done:    make(chan struct{}),
	}
	c.echo.Store(true)
	c.batch.stall = true
	c.parser = natsproto.NewParser(c, natsproto.Config{
		Mode:           natsproto.ModeServer,
		MaxControlLine: int(s.cfg.MaxControlLine),
		MaxPayload:     int(s.cfg.MaxPayload),
	})
	return c
}

// errClose stops the reader once a reply that ends the connection is
// queued.
var errClose = errors.New("connection closed by server")

func (c *client) readLoop(refused bool) {
	defer c.srv.wg.Done()
	defer c.srv.removeClient(c)
	if refused {
		c.sendErrAndClose(errMaxConnections)
		return
	}
	if c.srv.auth.NonceRequired() {
		c.nonce = c.srv.auth.NewNonce()
	}
	c.queueInfo()
	c.batch.Flush()
	if c.srv.auth.AuthRequired() {
		t := time.AfterFunc(c.srv.cfg.AuthTimeout.Std(), func() {
			if !c.connected.Load() {
				c.sendErrAndClose(errAuthTimeout)
			}
		})
		defer t.Stop()
	}
	c.lastRead.Store(time.Now().UnixNano())
	pinger := time.AfterFunc(time.Duration(math.MaxInt64), c.ping)
	c.pinger.Store(pinger)
	pinger.Reset(c.srv.cfg.PingInterval.Std())
	defer pinger.Stop()

	buf := make([]byte, minReadBuf)
	for {
		n, err := c.conn.Read(buf)
		if n > 0 {
			c.lastRead.Store(time.Now().UnixNano())
			perr := c.parser.Parse(buf[:n])
			c.batch.Flush()
			if perr != nil {
				c.protocolError(perr)
				return
			}
			buf = resizeReadBuf(buf, n)
		}
		if err != nil {
			c.close(false, "client closed the connection", err)
			return
		}
	}
}

// resizeReadBuf doubles the buffer when a read filled it and halves it
// when a read used less than a quarter of it.
func resizeReadBuf(buf []byte, n int) []byte {
	switch {
	case n == len(buf) && len(buf) < maxReadBuf:
		return make([]byte, 2*len(buf))
	case n < len(buf)/4 && len(buf) > minReadBuf:
		return make([]byte, len(buf)/2)
	}
	return buf
}

// protocolError ends the connection for a parse or handling error, with
// nats-server's -ERR text where nats-server sends one.
func (c *client) protocolError(err error) {
	if errors.Is(err, errClose) {
		return
	}
	if text, ok := natsproto.WireText(err); ok {
		c.sendErrAndClose(text)
		return
	}
	c.close(true, "protocol error", err)
}

// info is the INFO JSON for this connection. It is always complete:
// nats.go replaces its whole view of the server with each INFO.
func (c *client) info() []byte {
	s := c.srv
	host, port := hostPort(s.ln.Addr())
	info := struct {
		ServerID     string `json:"server_id"`
		ServerName   string `json:"server_name"`
		Version      string `json:"version"`
		Proto        int    `json:"proto"`
		Go           string `json:"go"`
		Host         string `json:"host"`
		Port         int    `json:"port"`
		Headers      bool   `json:"headers"`
		AuthRequired bool   `json:"auth_required,omitempty"`
		MaxPayload   int64  `json:"max_payload"`
		ClientID     uint64 `json:"client_id"`
		ClientIP     string `json:"client_ip,omitempty"`
		Nonce        string `json:"nonce,omitempty"`
	}{
		ServerID: s.id, ServerName: s.name, Version: AdvertisedVersion, Proto: protoVersion,
		Go: runtime.Version(), Host: host, Port: port, Headers: true, AuthRequired: s.auth.AuthRequired(),
		MaxPayload: int64(s.cfg.MaxPayload), ClientID: c.id, ClientIP: ipOf(c.conn.RemoteAddr()), Nonce: c.nonce,
	}
	b, _ := json.Marshal(info) // cannot fail: strings, numbers and bools only
	return b
}

func hostPort(a net.Addr) (string, int) {
	if t, ok := a.(*net.TCPAddr); ok {
		return t.IP.String(), t.Port
	}
	return a.String(), 0
}

func ipOf(a net.Addr) string {
	if t, ok := a.(*net.TCPAddr); ok {
		return t.IP.String()
	}
	return ""
}

func (c *client) queueInfo() { c.queueProto(natsproto.AppendInfo(nil, c.info())) }

// queueProto appends a protocol line to this client's own output and
// arranges a flush at the end of the current read.
func (c *client) queueProto(line []byte) {
	if c.queueLine(line) {
		c.batch.touch(c)
	}
}

// queueLine appends a protocol line, from any goroutine; false when the
// connection is closing.
func (c *client) queueLine(line []byte) bool {
	c.outMu.Lock()
	defer c.outMu.Unlock()
	if c.closed {
		return false
	}
	c.out.Write(line)
	return true
}

// The constant lines, ready to queue.
var (
	okLine   = []byte(natsproto.OKLine)
	pongLine = []byte(natsproto.PongLine)
	pingLine = []byte(natsproto.PingLine)
)

func (c *client) sendErr(text string) { c.queueProto(natsproto.AppendErr(nil, text)) }

// sendErrAndClose queues -ERR 'text' and closes the connection once it is
// written. It may be called from any goroutine.
func (c *client) sendErrAndClose(text string) {
	c.queueLine(natsproto.AppendErr(nil, text))
	c.close(true, text, nil)
}

func (c *client) signalFlush() {
	select {
	case c.flushCh <- struct{}{}:
	default:
	}
}

// ping runs from the ping timer: it closes a client that left too many
// pings unanswered and otherwise pings it, unless the client was heard
// from within the interval.
func (c *client) ping() {
	select {
	case <-c.done:
		return
	default:
	}
	interval := c.srv.cfg.PingInterval.Std()
	defer c.pinger.Load().Reset(interval)
	if time.Since(time.Unix(0, c.lastRead.Load())) < interval && c.pingsOut.Load() == 0 {
		return
	}
	if int(c.pingsOut.Add(1)) > c.srv.cfg.MaxPingsOut {
		c.sendErrAndClose(errStaleConnection)
		return
	}
	c.queueLine(pingLine)
	c.signalFlush()
}

// close ends the connection, once. graceful lets the writer send what is
// queued first, within the write deadline. It may be called from any
// goroutine.
func (c *client) close(graceful bool, reason string, err error) {
	c.closeOnce.Do(func() {
		c.graceful.Store(graceful)
		c.outMu.Lock()
		c.closed = true
		if c.drained != nil {
			close(c.drained)
			c.drained = nil
		}
		c.outMu.Unlock()
		c.removeAllSubs()
		if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
			c.srv.log.Debug("client closed", "client_id", c.id, "remote", c.remote, "reason", reason, "err", err)
		} else {
			c.srv.log.Debug("client closed", "client_id", c.id, "remote", c.remote, "reason", reason)
		}
		close(c.done)
		if !graceful {
			c.conn.Close()
		}
	})
}

func (c *client) removeAllSubs() {
	c.subsMu.Lock()
	c.subsClosed = true
	subs := make([]*subject.Sub[*subscription], 0, len(c.subs))
	for sid, s := range c.subs {
		subs = append(subs, s)
		delete(c.subs, sid)
	}
	c.subsMu.Unlock()
	if len(subs) > 0 {
		c.srv.subs.RemoveBatch(subs)
		for _, s := range subs {
			c.srv.noteInterest(s, -1)
		}
	}
}

// removeSub ends one subscription (UNSUB, or its auto-unsubscribe count
// reached). It may run on any goroutine.
func (c *client) removeSub(sub *subject.Sub[*subscription]) {
	c.subsMu.Lock()
	mine := c.subs[sub.SID] == sub
	if mine {
		delete(c.subs, sub.SID)
	}
	c.subsMu.Unlock()
	if mine {
		// Only the goroutine that took it out of subs counts it out, so a
		// subscription removed twice concurrently is counted once.
		c.srv.subs.Remove(sub)
		c.srv.noteInterest(sub, -1)
	}
}

// closeGracefully is the server's shutdown: write what is pending, then
// close.
func (c *client) closeGracefully() { c.close(true, "server shutdown", nil) }
