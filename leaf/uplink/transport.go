package uplink

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"

	"github.com/canopy-iot/canopy/leaf/uplink/dial"
)

// dialHub opens the transport to t: TCP or WebSocket, directly or through
// the configured HTTP CONNECT proxy. For wss:// the TLS is part of the
// transport; otherwise it comes after the hub's INFO (upgradeTLS).
func dialHub(ctx context.Context, t target, cfg Config) (net.Conn, error) {
	opts := dial.Options{Proxy: cfg.Proxy, Timeout: handshakeTimeout}
	if t.url.Scheme == "wss" {
		tc, err := tlsConfig(t, cfg.TLS)
		if err != nil {
			return nil, err
		}
		opts.TLS = tc
	}
	return dial.Dial(ctx, t.url.String(), opts)
}

// needTLS reports whether to run TLS after the hub's INFO: when the URL
// asks for it (tls://) or the hub requires it, unless the transport is a
// WebSocket, whose TLS (wss://) is already established.
func needTLS(t target, hubRequires bool) bool {
	switch t.url.Scheme {
	case "ws", "wss":
		return false
	case "tls":
		return true
	}
	return hubRequires
}

// tlsConfig builds the client TLS configuration for t: the configured CA
// and client certificate, and the configured server name or else the host
// of the configured URL (an address the hub advertises is usually a bare
// IP, which its certificate does not name).
func tlsConfig(t target, c TLS) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: c.ServerName}
	if cfg.ServerName == "" {
		cfg.ServerName = t.origin.Hostname()
	}
	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("read CA %s: %w", c.CAFile, unwrapPath(err))
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("CA %s: no PEM certificates", c.CAFile)
		}
		cfg.RootCAs = pool
	}
	if c.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("client certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// upgradeTLS runs the client TLS handshake after the hub's INFO.
func upgradeTLS(ctx context.Context, conn net.Conn, t target, cfg Config) (net.Conn, error) {
	tc, err := tlsConfig(t, cfg.TLS)
	if err != nil {
		return nil, err
	}
	c, err := dial.UpgradeTLS(ctx, conn, tc, handshakeTimeout)
	if err != nil {
		return nil, fmt.Errorf("TLS with %s: %w", t, err)
	}
	return c, nil
}
