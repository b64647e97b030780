package enroll

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"

	"github.com/canopy-iot/canopy/internal/version"
)

// answered is the hub's HTTP answer, read in full (up to maxAnswer).
type answered struct {
	status      int
	contentType string
	location    string // of a redirect
	body        []byte
	tooLarge    bool // the body went past maxAnswer
}

// post sends one HTTP/1.1 POST of a JSON body to u over one connection,
// TLS verified against roots (nil: the system's) for https, and reads the
// answer. It is a client of its own rather than net/http's Client because
// http.Transport (HTTP/2, connection pools, proxies) adds some 400 KiB to
// the ARM leaf binary, which has a size budget, for one request in the
// device's life; the request and answer are still written and parsed by
// net/http, which the leaf links anyway. The connection closes when ctx
// ends.
func post(ctx context.Context, u *url.URL, roots *x509.CertPool, body []byte) (answered, error) {
	port := u.Port()
	if port == "" {
		port = map[string]string{"https": "443", "http": "80"}[u.Scheme]
	}
	addr := net.JoinHostPort(u.Hostname(), port)
	var d net.Dialer
	raw, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return answered{}, fmt.Errorf("reach the hub at %s: %w", addr, ctxErr(ctx, err))
	}
	defer raw.Close()
	// Reads and writes below give up when ctx ends: the deadline for the
	// timeout, closing the connection for a cancellation.
	stop := context.AfterFunc(ctx, func() { raw.Close() })
	defer stop()
	if deadline, ok := ctx.Deadline(); ok {
		raw.SetDeadline(deadline)
	}
	conn := raw
	if u.Scheme == "https" {
		tc := tls.Client(raw, &tls.Config{
			ServerName: u.Hostname(),
			RootCAs:    roots,
			MinVersion: tls.VersionTLS12,
			NextProtos: []string{"http/1.1"},
		})
		if err := tc.HandshakeContext(ctx); err != nil {
			return answered{}, fmt.Errorf("reach the hub at %s: %w", addr, ctxErr(ctx, err))
		}
		conn = tc
	}

	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), bytes.NewReader(body))
	if err != nil {
		return answered{}, fmt.Errorf("hub URL %s: %w", u.Redacted(), err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "canopy-leaf/"+version.Version)
	req.Close = true // one request: "Connection: close"
	w := bufio.NewWriter(conn)
	if err := req.Write(w); err != nil {
		return answered{}, fmt.Errorf("send to the hub: %w", ctxErr(ctx, err))
	}
	if err := w.Flush(); err != nil {
		return answered{}, fmt.Errorf("send to the hub: %w", ctxErr(ctx, err))
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), req)
	if err != nil {
		return answered{}, fmt.Errorf("read the hub's answer: %w", ctxErr(ctx, err))
	}
	defer resp.Body.Close()
	a := answered{status: resp.StatusCode, contentType: resp.Header.Get("Content-Type"), location: resp.Header.Get("Location")}
	a.body, err = io.ReadAll(io.LimitReader(resp.Body, maxAnswer+1))
	if err != nil {
		return answered{}, fmt.Errorf("read the hub's answer (HTTP %d): %w", resp.StatusCode, ctxErr(ctx, err))
	}
	if len(a.body) > maxAnswer {
		a.body, a.tooLarge = nil, true
	}
	return a, nil
}

// ctxErr is err, or what ended ctx when that is why the connection
// failed (a closed connection or a passed deadline says less).
func ctxErr(ctx context.Context, err error) error {
	switch ctx.Err() {
	case nil:
		return err
	case context.DeadlineExceeded:
		return fmt.Errorf("the hub did not answer in time: %w", context.DeadlineExceeded)
	default:
		return ctx.Err()
	}
}
