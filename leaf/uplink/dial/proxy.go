package dial

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/textproto"
	"net/url"
	"strconv"
	"strings"
)

// Limits on an HTTP response head (from a proxy or a websocket upgrade).
const (
	maxHeadLine  = readBufferSize // one line, the bufio buffer
	maxHeadLines = 100
)

// parseProxy checks a proxy URL: http://[user:password@]host[:port].
func parseProxy(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: proxy: %v", ErrURL, parseDetail(err))
	}
	if u.Scheme != "http" || u.Hostname() == "" || (u.Path != "" && u.Path != "/") || (u.Port() != "" && !validPort(u.Port())) {
		return nil, fmt.Errorf("%w: proxy %s: want http://[user:password@]host[:port]", ErrURL, redact(u))
	}
	return u, nil
}

func proxyAddr(u *url.URL) string {
	port := u.Port()
	if port == "" {
		port = defaultProxyPort
	}
	return net.JoinHostPort(u.Hostname(), port)
}

// proxyConnect asks the proxy at the other end of c for a tunnel to addr
// (RFC 9110 section 9.3.6) and returns the tunnel. Bytes that arrived
// behind the proxy's response, typically the hub's INFO, are read first.
func proxyConnect(c net.Conn, proxy *url.URL, addr string) (net.Conn, error) {
	req := "CONNECT " + addr + " HTTP/1.1\r\nHost: " + addr + "\r\n"
	if u := proxy.User; u != nil {
		pass, _ := u.Password()
		req += "Proxy-Authorization: Basic " + base64.StdEncoding.EncodeToString([]byte(u.Username()+":"+pass)) + "\r\n"
	}
	req += "\r\n"
	if _, err := io.WriteString(c, req); err != nil {
		return nil, fmt.Errorf("proxy CONNECT: %w", err)
	}
	br := bufio.NewReaderSize(c, readBufferSize)
	resp, err := readResponseHead(br)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrProxy, err)
	}
	if resp.code/100 != 2 {
		return nil, fmt.Errorf("%w: %q", ErrProxy, resp.status)
	}
	return withBuffered(c, br), nil
}

// withBuffered returns c, or a conn that yields what br holds before
// reading c again.
func withBuffered(c net.Conn, br *bufio.Reader) net.Conn {
	n := br.Buffered()
	if n == 0 {
		return c
	}
	b, _ := br.Peek(n)
	return &bufferedConn{Conn: c, pre: bytes.Clone(b)}
}

// bufferedConn reads pre before its Conn.
type bufferedConn struct {
	net.Conn
	pre []byte
}

func (c *bufferedConn) Read(p []byte) (int, error) {
	if len(c.pre) > 0 {
		n := copy(p, c.pre)
		c.pre = c.pre[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

// responseHead is an HTTP/1.x status line and header block.
type responseHead struct {
	status string // the status line, e.g. "HTTP/1.1 407 Proxy Authentication Required"
	code   int
	header textproto.MIMEHeader
}

var errHead = errors.New("malformed HTTP response")

// readResponseHead reads a response's status line and headers and
// nothing more: the body of a 2xx answer to CONNECT and the frames behind
// a 101 belong to the tunnel. Lines and header count are bounded.
func readResponseHead(br *bufio.Reader) (responseHead, error) {
	var r responseHead
	line, err := readLine(br)
	if err != nil {
		return r, err
	}
	proto, rest, _ := strings.Cut(line, " ")
	codeText, _, _ := strings.Cut(rest, " ")
	if len(proto) != len("HTTP/1.1") || !strings.HasPrefix(proto, "HTTP/1.") || !isDigit(proto[7]) || len(codeText) != 3 {
		return r, fmt.Errorf("%w: status line %q", errHead, truncate(line))
	}
	code, err := strconv.Atoi(codeText)
	if err != nil || code < 100 {
		return r, fmt.Errorf("%w: status line %q", errHead, truncate(line))
	}
	r.status, r.code, r.header = line, code, textproto.MIMEHeader{}
	for range maxHeadLines {
		line, err := readLine(br)
		if err != nil {
			return r, err
		}
		if line == "" {
			return r, nil
		}
		key, value, ok := strings.Cut(line, ":")
		if !ok || key == "" || strings.ContainsAny(key, " \t") {
			return r, fmt.Errorf("%w: header line %q", errHead, truncate(line))
		}
		r.header.Add(textproto.CanonicalMIMEHeaderKey(key), strings.TrimSpace(value))
	}
	return r, fmt.Errorf("%w: more than %d header lines", errHead, maxHeadLines)
}

// readLine reads one line ending in LF (CRLF or a bare LF) without the
// ending. A line that does not fit the buffer is an error.
func readLine(br *bufio.Reader) (string, error) {
	b, err := br.ReadSlice('\n')
	switch {
	case errors.Is(err, bufio.ErrBufferFull):
		return "", fmt.Errorf("%w: line longer than %d bytes", errHead, maxHeadLine)
	case errors.Is(err, io.EOF):
		return "", fmt.Errorf("%w: connection closed before the end of the response head", io.ErrUnexpectedEOF)
	case err != nil:
		return "", err
	}
	b = bytes.TrimSuffix(b[:len(b)-1], []byte("\r"))
	for _, c := range b {
		if (c < ' ' && c != '\t') || c == 0x7F {
			return "", fmt.Errorf("%w: control character 0x%02x in line %q", errHead, c, truncate(string(b)))
		}
	}
	return string(b), nil
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// truncate shortens what a peer sent before it goes into an error.
func truncate(s string) string {
	const max = 80
	if len(s) > max {
		return s[:max] + "…"
	}
	return s
}
