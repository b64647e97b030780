package uplink

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
)

// dialHub opens the transport to t.
func dialHub(ctx context.Context, t target, cfg Config) (net.Conn, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", t.url.Host)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", t, err)
	}
	return conn, nil
}

// wantTLS reports whether the configuration asks for TLS to t whatever
// the hub announces.
func wantTLS(t target) bool {
	return t.origin.Scheme == "tls" || t.origin.Scheme == "wss"
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
	c := tls.Client(conn, tc)
	ctx, cancel := context.WithTimeout(ctx, handshakeTimeout)
	defer cancel()
	if err := c.HandshakeContext(ctx); err != nil {
		return nil, fmt.Errorf("TLS with %s: %w", t, err)
	}
	return c, nil
}
