package dial

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

// DefaultTimeout bounds a Dial or an UpgradeTLS whose timeout is zero.
const DefaultTimeout = 5 * time.Second

// Options tune Dial. The zero value dials directly, with the system's CAs
// for wss://, within DefaultTimeout.
type Options struct {
	// TLS is the client TLS configuration for wss:// and for TLSFirst.
	// Dial uses a copy; when its ServerName is empty, the copy gets the
	// URL's host. Default: the system's CAs, TLS 1.2 or later.
	TLS *tls.Config
	// TLSFirst runs the TLS handshake as soon as the TCP connection (or
	// proxy tunnel) is up, before the hub's INFO, for hubs whose leafnode
	// listener sets handshake_first. It applies to the TCP schemes; wss://
	// always starts with TLS. Default false: TLS comes after the INFO,
	// through UpgradeTLS.
	TLSFirst bool
	// Proxy is an HTTP CONNECT proxy, http://[user:password@]host[:port]
	// (port 80 by default). Default "": connect directly.
	Proxy string
	// Timeout bounds the whole dial: TCP connect, proxy CONNECT, TLS
	// handshake (wss://, TLSFirst) and WebSocket upgrade. The context can
	// end it sooner. Default DefaultTimeout.
	Timeout time.Duration
}

// Dial connects to a hub's leafnode listener and returns a connection that
// carries the leafnode protocol's bytes.
//
//   - nats-leaf://, nats://, tcp://, tls:// (port 7422 by default): plain
//     TCP. The hub sends its INFO first; TLS, when the URL is tls:// or
//     the INFO has tls_required, is the caller's next step with
//     UpgradeTLS. Only Options.TLSFirst makes Dial start TLS itself.
//   - ws:// (port 80) and wss:// (port 443, TLS then WebSocket): the
//     returned conn reads and writes WebSocket frames underneath. The
//     request path is the URL's path with /leafnode appended, as
//     nats-server's solicitor does, unless it already ends in /leafnode
//     (the hub checks only the suffix). Never run
//     UpgradeTLS on it: over WebSocket the hub's INFO may say
//     tls_required, but TLS, if any, is already below.
//
// Credentials in the URL are the leafnode CONNECT's business: Dial ignores
// them and leaves them out of its errors. On error nothing stays open.
func Dial(ctx context.Context, rawURL string, o Options) (net.Conn, error) {
	t, err := parseTarget(rawURL)
	if err != nil {
		return nil, err
	}
	var proxy *url.URL
	if o.Proxy != "" {
		if proxy, err = parseProxy(o.Proxy); err != nil {
			return nil, fmt.Errorf("dial %s: %w", t.redacted, err)
		}
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	c, err := dial(ctx, t, proxy, o)
	switch {
	case err == nil:
		return c, nil
	case proxy != nil:
		return nil, fmt.Errorf("dial %s via proxy %s: %w", t.redacted, redact(proxy), err)
	default:
		return nil, fmt.Errorf("dial %s: %w", t.redacted, err)
	}
}

// UpgradeTLS runs the client side of the TLS handshake on c, the
// connection Dial returned, once the hub's INFO asked for TLS (or the URL
// is tls://). cfg.ServerName must name the configured host, also when c
// goes to an address the hub advertised. The handshake ends within
// timeout (DefaultTimeout if zero) or when ctx ends; on error c is closed.
func UpgradeTLS(ctx context.Context, c net.Conn, cfg *tls.Config, timeout time.Duration) (net.Conn, error) {
	if cfg == nil {
		c.Close()
		return nil, errors.New("tls upgrade: no TLS configuration")
	}
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tc, err := bounded(ctx, c, func() (net.Conn, error) { return clientTLS(ctx, c, cfg) })
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("tls upgrade with %s: %w", c.RemoteAddr(), err)
	}
	return tc, nil
}

// target is a parsed hub URL.
type target struct {
	scheme     string
	host       string // host name or address, for TLS ServerName
	addr       string // host:port to connect to
	ws, wss    bool
	hostHeader string // Host of the websocket upgrade
	wsPath     string // request target of the websocket upgrade
	redacted   string // the URL for errors and logs: no credentials
}

func parseTarget(raw string) (target, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return target{}, fmt.Errorf("%w: hub URL: %v", ErrURL, parseDetail(err))
	}
	t := target{scheme: strings.ToLower(u.Scheme), host: u.Hostname(), redacted: redact(u)}
	var port string
	switch t.scheme {
	case SchemeNATSLeaf, SchemeNATS, SchemeTCP, SchemeTLS:
		port = DefaultLeafPort
	case SchemeWS:
		t.ws, port = true, DefaultWSPort
	case SchemeWSS:
		t.ws, t.wss, port = true, true, DefaultWSSPort
	default:
		return target{}, fmt.Errorf("%w: %s: scheme must be nats-leaf, nats, tcp, tls, ws or wss", ErrURL, t.redacted)
	}
	if t.host == "" {
		return target{}, fmt.Errorf("%w: %s: no host", ErrURL, t.redacted)
	}
	if p := u.Port(); p != "" {
		if !validPort(p) {
			return target{}, fmt.Errorf("%w: %s: invalid port %q", ErrURL, t.redacted, p)
		}
		port = p
	}
	t.addr = net.JoinHostPort(t.host, port)
	if t.ws {
		t.hostHeader = u.Host
		t.wsPath = wsPath(u)
	}
	return t, nil
}

// wsPath is the upgrade request's target: the URL's path with /leafnode
// appended unless it already ends with it, and the URL's query.
func wsPath(u *url.URL) string {
	p := strings.TrimSuffix(u.EscapedPath(), "/")
	if !strings.HasSuffix(p, LeafNodePath) {
		p += LeafNodePath
	}
	if u.RawQuery != "" {
		p += "?" + u.RawQuery
	}
	return p
}

// redact writes u without secrets: the password as xxxxx, and a user
// without password too, since NATS URLs carry tokens there.
func redact(u *url.URL) string {
	if u.User == nil {
		return u.String()
	}
	c := *u
	if _, hasPass := u.User.Password(); hasPass {
		c.User = url.UserPassword(u.User.Username(), "xxxxx")
	} else {
		c.User = url.User("xxxxx")
	}
	return c.String()
}

func validPort(p string) bool {
	n, err := strconv.Atoi(p)
	return err == nil && n > 0 && n <= 65535
}

// parseDetail keeps url.Parse's reason and drops the URL it quotes, which
// may hold a password.
func parseDetail(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// dial connects and runs every handshake the URL and options call for.
func dial(ctx context.Context, t target, proxy *url.URL, o Options) (net.Conn, error) {
	addr := t.addr
	if proxy != nil {
		addr = proxyAddr(proxy)
	}
	var d net.Dialer
	raw, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	c, err := bounded(ctx, raw, func() (net.Conn, error) { return handshake(ctx, raw, t, proxy, o) })
	if err != nil {
		raw.Close()
		return nil, err
	}
	return c, nil
}

func handshake(ctx context.Context, c net.Conn, t target, proxy *url.URL, o Options) (net.Conn, error) {
	var err error
	if proxy != nil {
		if c, err = proxyConnect(c, proxy, t.addr); err != nil {
			return nil, err
		}
	}
	if t.wss || o.TLSFirst {
		if c, err = clientTLS(ctx, c, tlsConfig(o.TLS, t.host)); err != nil {
			return nil, err
		}
	}
	if t.ws {
		if c, err = wsHandshake(c, t); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// bounded runs step, which does I/O on raw, under ctx: raw's deadline is
// ctx's, and ending ctx interrupts it. The deadline is cleared afterwards.
func bounded(ctx context.Context, raw net.Conn, step func() (net.Conn, error)) (net.Conn, error) {
	if dl, ok := ctx.Deadline(); ok {
		if err := raw.SetDeadline(dl); err != nil {
			return nil, err
		}
	}
	stop := context.AfterFunc(ctx, func() {
		_ = raw.SetDeadline(time.Unix(1, 0))
	})
	c, err := step()
	if !stop() && err == nil {
		err = context.Cause(ctx)
	}
	if err != nil {
		ctxErr := context.Cause(ctx)
		if ctxErr == nil && errors.Is(err, os.ErrDeadlineExceeded) {
			// raw's deadline is ctx's; its timer can fire first.
			ctxErr = context.DeadlineExceeded
		}
		if ctxErr != nil && !errors.Is(err, ctxErr) {
			err = fmt.Errorf("%w (%w)", err, ctxErr)
		}
		return nil, err
	}
	if err := raw.SetDeadline(time.Time{}); err != nil {
		return nil, err
	}
	return c, nil
}

func clientTLS(ctx context.Context, c net.Conn, cfg *tls.Config) (net.Conn, error) {
	tc := tls.Client(c, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		return nil, fmt.Errorf("tls handshake: %w", err)
	}
	return tc, nil
}

// tlsConfig is a copy of cfg (or a default) that names host when cfg
// names none.
func tlsConfig(cfg *tls.Config, host string) *tls.Config {
	if cfg == nil {
		cfg = &tls.Config{MinVersion: tls.VersionTLS12}
	} else {
		cfg = cfg.Clone()
	}
	if cfg.ServerName == "" {
		cfg.ServerName = host
	}
	return cfg
}
