package hub

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/canopy-iot/canopy/hub/dashboard"
	"github.com/canopy-iot/canopy/hub/fleet"
	"github.com/canopy-iot/canopy/internal/logging"
)

// The console is the hub's own web server beside nats-server's
// monitoring: the fleet dashboard (package dashboard), the JSON API it
// and `canopy-hub status` read, a Server-Sent Events stream of
// changes, and the Prometheus metrics. One token, kept in
// dashboard.token_file, opens all of it:
//
//	GET /login?token=T   sets the session cookie, 303 to /
//	GET /healthz         "ok", without the token
//	GET /api/fleet       FleetSnapshot
//	GET /api/events      text/event-stream: fleet and telemetry events
//	GET /api/status      ConsoleStatus
//	GET /metrics         Prometheus text format
//	GET /                the dashboard
//
// Every path but /login and /healthz wants the session cookie or an
// "Authorization: Bearer T" header.

// Console paths.
const (
	ConsoleLoginPath  = "/login"
	ConsoleFleetPath  = "/api/fleet"
	ConsoleEventsPath = "/api/events"
	ConsoleStatusPath = "/api/status"
	ConsoleHealthPath = "/healthz"
	MetricsPath       = "/metrics"
)

// consoleCookie is the session cookie /login sets.
const consoleCookie = "canopy_dashboard"

type consoleServer struct {
	log     *slog.Logger
	ns      *server.Server
	token   string
	session string // the cookie's value, derived from the token
	secure  bool
	started time.Time
	srv     *http.Server
	ln      net.Listener
	scheme  string
	model   *consoleModel // nil unless in operator mode with JetStream
	events  *consoleEvents
	metrics *prometheus.Registry

	authFails logging.Every
	quit      chan struct{} // closed on stop: ends the event streams
	stopOnce  sync.Once
	cancel    context.CancelFunc
	bg        sync.WaitGroup
	done      chan struct{} // closed when Serve returned
}

// startConsole starts the console unless dashboard.listen is off. A
// default address that another process holds leaves the hub without a
// console rather than without a hub.
func (h *Hub) startConsole() error {
	h.mu.Lock()
	cfg := h.cfg
	h.mu.Unlock()
	d := cfg.Dashboard
	if d.Listen == Off {
		return nil
	}
	tlsConf, err := serverTLS(d.TLS)
	if err != nil {
		return fmt.Errorf("dashboard.tls: %w", err)
	}
	token, err := loadDashboardToken(d.TokenFile)
	if err != nil {
		return fmt.Errorf("dashboard.token_file: %w", err)
	}
	ln, err := net.Listen("tcp", d.Listen)
	if err != nil {
		if d.Listen == DefaultDashboardListen && errors.Is(err, syscall.EADDRINUSE) {
			h.log.Warn("dashboard off: its default address is in use (another hub on this machine?); set dashboard.listen to another address",
				"listen", d.Listen)
			return nil
		}
		return fmt.Errorf("dashboard.listen: %w", err)
	}
	mac := hmac.New(sha256.New, []byte(token))
	mac.Write([]byte("canopy dashboard session"))
	c := &consoleServer{
		log:     h.log.With("component", "dashboard"),
		ns:      h.ns,
		token:   token,
		session: hex.EncodeToString(mac.Sum(nil)),
		secure:  tlsConf != nil,
		started: time.Now(),
		ln:      ln,
		scheme:  "http",
		quit:    make(chan struct{}),
		done:    make(chan struct{}),
	}
	c.authFails.Interval = time.Minute
	if c.secure {
		c.scheme = "https"
	}
	if h.op != nil && *cfg.JetStream.Enabled {
		keys, err := fleet.Open(cfg.Operator.KeyDir, h.log)
		if err != nil {
			ln.Close()
			return fmt.Errorf("operator.key_dir: %w", err)
		}
		keys.SetActor("dashboard")
		ns := h.ns
		c.model = newConsoleModel(c.log, keys, defaultConsoleTiming, func(creds []byte, name string) (*nats.Conn, error) {
			return rolloutConnect(creds, nats.InProcessServer(ns), nats.Name(name), nats.NoReconnect())
		})
	}
	c.events = newConsoleEvents(c.log, c.model, c.snapshot)
	c.metrics = prometheus.NewRegistry()
	c.metrics.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		&consoleCollector{c: c},
	)

	ctx, cancel := context.WithCancel(context.Background())
	c.cancel = cancel
	if c.model != nil {
		c.bg.Go(func() { c.model.run(ctx) })
	}
	c.bg.Go(func() { c.events.run(ctx) })

	c.srv = &http.Server{
		Handler:           c.handler(),
		TLSConfig:         tlsConf,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		// The event stream lifts this deadline for itself.
		WriteTimeout: 30 * time.Second,
		IdleTimeout:  2 * time.Minute,
		ErrorLog:     slog.NewLogLogger(h.log.Handler(), slog.LevelDebug),
	}
	go func() {
		defer close(c.done)
		var err error
		if tlsConf != nil {
			err = c.srv.ServeTLS(ln, "", "")
		} else {
			err = c.srv.Serve(ln)
		}
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			c.log.Error("dashboard stopped", "err", err)
		}
	}()
	h.console = c
	h.log.Info("dashboard listening", "url", h.DashboardURL(), "token_file", d.TokenFile)
	return nil
}

// stopConsole ends the event streams first, so that Shutdown does not
// wait for them, then the server and the fleet model.
func (h *Hub) stopConsole() {
	c := h.console
	if c == nil {
		return
	}
	c.stopOnce.Do(func() {
		close(c.quit)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := c.srv.Shutdown(ctx); err != nil {
			c.srv.Close()
		}
		<-c.done
		c.cancel()
		c.bg.Wait()
	})
}

// DashboardURL is the console's base URL, or "" when it is off.
func (h *Hub) DashboardURL() string {
	c := h.console
	if c == nil {
		return ""
	}
	return ConsoleBaseURL(c.scheme, c.ln.Addr().String())
}

// DashboardLoginURL is the URL that logs a browser in to the dashboard:
// it carries the token, so it is as secret as the token file. "" when
// the console is off.
func (h *Hub) DashboardLoginURL() string {
	c := h.console
	if c == nil {
		return ""
	}
	return DashboardLoginURL(h.DashboardURL(), c.token)
}

// ConsoleBaseURL is the console's base URL for a listen address; an
// unspecified host (0.0.0.0, ::, none) becomes the loopback address.
func ConsoleBaseURL(scheme, listen string) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return scheme + "://" + listen
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return scheme + "://" + net.JoinHostPort(host, port)
}

// DashboardLoginURL is base's login URL with token.
func DashboardLoginURL(base, token string) string {
	return base + ConsoleLoginPath + "?token=" + url.QueryEscape(token)
}

func (c *consoleServer) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+ConsoleHealthPath, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET "+ConsoleLoginPath, c.serveLogin)
	mux.Handle("GET "+ConsoleFleetPath, c.auth(http.HandlerFunc(c.serveFleet)))
	mux.Handle("GET "+ConsoleEventsPath, c.auth(http.HandlerFunc(c.serveEvents)))
	mux.Handle("GET "+ConsoleStatusPath, c.auth(http.HandlerFunc(c.serveStatus)))
	mux.Handle("GET "+MetricsPath, c.auth(promhttp.HandlerFor(c.metrics, promhttp.HandlerOpts{
		ErrorLog:            slog.NewLogLogger(c.log.Handler(), slog.LevelWarn),
		MaxRequestsInFlight: 4,
	})))
	mux.Handle("/", c.auth(dashboard.Handler()))
	return mux
}

// tokenEqual compares in constant time; hashing first hides the length.
func tokenEqual(got, want string) bool {
	a, b := sha256.Sum256([]byte(got)), sha256.Sum256([]byte(want))
	return subtle.ConstantTimeCompare(a[:], b[:]) == 1
}

// authorized accepts the session cookie or the bearer token.
func (c *consoleServer) authorized(r *http.Request) bool {
	if v, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		return tokenEqual(strings.TrimSpace(v), c.token)
	}
	if ck, err := r.Cookie(consoleCookie); err == nil {
		return tokenEqual(ck.Value, c.session)
	}
	return false
}

func (c *consoleServer) auth(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Content-Type-Options", "nosniff")
		if !c.authorized(r) {
			c.refuse(w, r)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (c *consoleServer) refuse(w http.ResponseWriter, r *http.Request) {
	if ok, n := c.authFails.Allow(); ok {
		c.log.Warn("dashboard: request without a valid token refused", "remote", r.RemoteAddr, "path", r.URL.Path, "suppressed", n)
	}
	w.Header().Set("WWW-Authenticate", `Bearer realm="canopy-hub"`)
	http.Error(w, "401 unauthorized: log in with the URL `canopy-hub dashboard url` prints, or send Authorization: Bearer <token of dashboard.token_file>", http.StatusUnauthorized)
}

func (c *consoleServer) serveLogin(w http.ResponseWriter, r *http.Request) {
	if !tokenEqual(r.URL.Query().Get("token"), c.token) {
		c.refuse(w, r)
		return
	}
	http.SetCookie(w, &http.Cookie{
		Name:     consoleCookie,
		Value:    c.session,
		Path:     "/",
		HttpOnly: true,
		Secure:   c.secure,
		SameSite: http.SameSiteStrictMode,
	})
	w.Header().Set("Referrer-Policy", "no-referrer")
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

func (c *consoleServer) serveFleet(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, c.snapshot(time.Now()))
}

func (c *consoleServer) serveStatus(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, c.status(time.Now()))
}
