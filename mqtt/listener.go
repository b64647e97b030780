package mqtt

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"github.com/mochi-mqtt/server/v2/listeners"
)

// listener serves MQTT on a socket bound by New, so that a port in use is
// an error at start and port 0 reports the port the kernel chose (mochi's
// own listeners bind late and hide the address). It implements mochi's
// listeners.Listener.
type listener struct {
	id, protocol string
	ln           net.Listener
	ws           bool // MQTT over WebSocket (RFC 6455 binary frames)
	log          *slog.Logger

	mu     sync.Mutex
	closed bool
	http   *http.Server
}

func (l *listener) ID() string       { return l.id }
func (l *listener) Address() string  { return l.ln.Addr().String() }
func (l *listener) Protocol() string { return l.protocol }

func (l *listener) Init(log *slog.Logger) error {
	l.log = log
	return nil
}

// Serve accepts connections until Close; mochi runs it in a goroutine.
func (l *listener) Serve(establish listeners.EstablishFn) {
	if l.ws {
		l.serveWebSocket(establish)
		return
	}
	for {
		conn, err := l.ln.Accept()
		if err != nil {
			if !l.isClosed() {
				l.log.Error("MQTT listener stopped", "listener", l.id, "err", err)
			}
			return
		}
		go func() {
			if err := establish(l.id, conn); err != nil && !errors.Is(err, io.EOF) {
				l.log.Debug("MQTT connection ended", "listener", l.id, "remote", conn.RemoteAddr().String(), "err", err)
			}
		}()
	}
}

func (l *listener) serveWebSocket(establish listeners.EstablishFn) {
	upgrader := websocket.Upgrader{
		Subprotocols: []string{"mqtt"},
		// MQTT clients in browsers come from any origin; authentication
		// is MQTT's own.
		CheckOrigin: func(*http.Request) bool { return true },
	}
	srv := &http.Server{
		ReadHeaderTimeout: 10 * time.Second,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			c, err := upgrader.Upgrade(w, r, nil)
			if err != nil {
				return // the upgrader answered with the reason
			}
			defer c.Close()
			if err := establish(l.id, &wsConn{Conn: c.UnderlyingConn(), ws: c}); err != nil && !errors.Is(err, io.EOF) {
				l.log.Debug("MQTT connection ended", "listener", l.id, "remote", r.RemoteAddr, "err", err)
			}
		}),
		ErrorLog: slog.NewLogLogger(l.log.Handler(), slog.LevelDebug),
	}
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return
	}
	l.http = srv
	l.mu.Unlock()
	if err := srv.Serve(l.ln); err != nil && !errors.Is(err, http.ErrServerClosed) && !l.isClosed() {
		l.log.Error("MQTT WebSocket listener stopped", "listener", l.id, "err", err)
	}
}

func (l *listener) isClosed() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.closed
}

// Close stops accepting and has mochi close the listener's clients.
func (l *listener) Close(closeClients listeners.CloseFn) {
	l.mu.Lock()
	if !l.closed {
		l.closed = true
		if l.http != nil {
			_ = l.http.Close()
		}
		_ = l.ln.Close()
	}
	l.mu.Unlock()
	closeClients(l.id)
}

// wsConn reads and writes MQTT bytes as WebSocket binary messages; an MQTT
// packet may span messages and a message may hold several packets.
type wsConn struct {
	net.Conn
	ws *websocket.Conn
	r  io.Reader // the message being read

	// gorilla's write deadline is a plain field read by every write: it is
	// kept here and handed over under wm, with the write.
	wm       sync.Mutex
	deadline time.Time
}

var errTextFrame = errors.New("websocket: MQTT needs binary messages, got a text message")

func (c *wsConn) Read(p []byte) (int, error) {
	for {
		if c.r == nil {
			kind, r, err := c.ws.NextReader()
			if err != nil {
				return 0, err
			}
			if kind != websocket.BinaryMessage {
				return 0, errTextFrame
			}
			c.r = r
		}
		n, err := c.r.Read(p)
		if errors.Is(err, io.EOF) {
			c.r = nil
			if n == 0 {
				continue
			}
			err = nil
		}
		return n, err
	}
}

func (c *wsConn) Write(p []byte) (int, error) {
	c.wm.Lock()
	defer c.wm.Unlock()
	if err := c.ws.SetWriteDeadline(c.deadline); err != nil {
		return 0, err
	}
	if err := c.ws.WriteMessage(websocket.BinaryMessage, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (c *wsConn) SetDeadline(t time.Time) error {
	if err := c.SetReadDeadline(t); err != nil {
		return err
	}
	return c.SetWriteDeadline(t)
}

func (c *wsConn) SetReadDeadline(t time.Time) error { return c.ws.SetReadDeadline(t) }

func (c *wsConn) SetWriteDeadline(t time.Time) error {
	c.wm.Lock()
	c.deadline = t
	c.wm.Unlock()
	return nil
}

func (c *wsConn) Close() error { return c.ws.Close() }
