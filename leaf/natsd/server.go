package natsd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nkeys"

	"github.com/canopy-iot/canopy/leaf/auth"
	"github.com/canopy-iot/canopy/leaf/subject"
)

// shutdownFlush bounds how long shutdown waits to write what clients have
// pending before their connections close.
const shutdownFlush = 2 * time.Second

// Server is the local NATS server. Create it with New, run it with Run.
type Server struct {
	cfg  Config
	log  *slog.Logger
	auth *auth.Authenticator
	id   string // server_id: an NKey server public key, like nats-server's
	name string

	subs subject.Index[*subscription]

	uplink     Uplink // nil when the leaf has no hub
	ingest     Ingest // nil when the leaf has no streams
	interestMu sync.Mutex
	interest   subject.Interest // local subscriptions per (subject, queue)

	ln      net.Listener
	ready   chan struct{}
	closing atomic.Bool

	mu      sync.Mutex
	clients map[uint64]*client
	nextID  uint64
	wg      sync.WaitGroup // client goroutines

	stats counters
}

// New checks cfg (after applying defaults) and prepares a server without
// binding its port. name is the server_name announced to clients. A nil
// log discards logs.
func New(cfg Config, name string, log *slog.Logger) (*Server, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	a, err := auth.New(cfg.Authorization)
	if err != nil {
		return nil, err
	}
	kp, err := nkeys.CreateServer()
	if err != nil {
		return nil, fmt.Errorf("server id: %w", err)
	}
	id, _ := kp.PublicKey()
	if name == "" {
		name = id
	}
	return &Server{
		cfg: cfg, log: log.With("component", "natsd"), auth: a, id: id, name: name,
		ready: make(chan struct{}), clients: map[uint64]*client{},
	}, nil
}

// Ready is closed once the listener accepts connections.
func (s *Server) Ready() <-chan struct{} { return s.ready }

// Addr is the address the listener is bound to (valid once Ready).
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// ClientURL is the URL clients connect to (valid once Ready).
func (s *Server) ClientURL() string { return "nats://" + s.ln.Addr().String() }

// Run listens and serves clients until ctx ends, then stops accepting,
// writes what each client has pending (for at most a few seconds) and
// closes every connection. It returns an error only when the listener
// cannot be opened or fails.
func (s *Server) Run(ctx context.Context) error {
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("nats listen %s: %w", s.cfg.Listen, err)
	}
	s.ln = ln
	s.log.Info("listening for NATS clients", "addr", ln.Addr().String(), "auth", s.auth.AuthRequired())
	close(s.ready)

	acceptErr := make(chan error, 1)
	go func() { acceptErr <- s.acceptLoop(ln) }()
	select {
	case <-ctx.Done():
		err = nil
	case err = <-acceptErr:
	}
	s.closing.Store(true)
	ln.Close()
	s.shutdownClients()
	s.wg.Wait()
	return err
}

func (s *Server) acceptLoop(ln net.Listener) error {
	var backoff time.Duration
	for {
		conn, err := ln.Accept()
		if err != nil {
			if s.closing.Load() || errors.Is(err, net.ErrClosed) {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, os.ErrDeadlineExceeded) || isTemporary(err) {
				// Out of file descriptors and the like: wait and retry
				// instead of spinning or giving up.
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				s.log.Warn("accept failed, retrying", "err", err, "backoff", backoff)
				time.Sleep(backoff)
				continue
			}
			return fmt.Errorf("accept: %w", err)
		}
		backoff = 0
		s.startClient(conn)
	}
}

func isTemporary(err error) bool {
	t, ok := err.(interface{ Temporary() bool })
	return ok && t.Temporary()
}

func (s *Server) startClient(conn net.Conn) {
	s.mu.Lock()
	if s.closing.Load() {
		s.mu.Unlock()
		conn.Close()
		return
	}
	s.nextID++
	c := newClient(s, s.nextID, conn)
	full := len(s.clients) >= s.cfg.MaxConnections
	if !full {
		s.clients[c.id] = c
		s.stats.conns.Add(1)
	}
	s.wg.Add(2)
	s.mu.Unlock()
	if full {
		s.log.Warn("client refused: maximum connections reached", "remote", conn.RemoteAddr().String())
	}
	go c.writeLoop()
	go c.readLoop(full)
}

func (s *Server) removeClient(c *client) {
	s.mu.Lock()
	delete(s.clients, c.id)
	s.mu.Unlock()
}

func (s *Server) shutdownClients() {
	s.mu.Lock()
	clients := make([]*client, 0, len(s.clients))
	for _, c := range s.clients {
		clients = append(clients, c)
	}
	s.mu.Unlock()
	for _, c := range clients {
		c.closeGracefully()
	}
}

// NumClients is the number of connected clients.
func (s *Server) NumClients() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.clients)
}

// NumSubscriptions is the number of subscriptions of all clients.
func (s *Server) NumSubscriptions() int { return s.subs.Count() }
