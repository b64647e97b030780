package dial

import (
	"bufio"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"time"
)

const (
	// readBufferSize is the frame reader's buffer. It must hold the
	// longest control frame with its header, so Peek can check one whole.
	readBufferSize = 4096
	// maxWriteFrame caps one outgoing frame; longer writes are split.
	maxWriteFrame = 64 << 10
	// closeFrameTimeout bounds the close frame that Close sends.
	closeFrameTimeout = time.Second
)

// wsHandshake runs the opening handshake of RFC 6455 section 4.1 on c and
// returns the connection that carries frames. The response is read through
// the buffer the frames are then read from, so frames the hub sent right
// behind its 101 response (its INFO) are kept.
func wsHandshake(c net.Conn, t target) (net.Conn, error) {
	var nonce [16]byte
	if _, err := rand.Read(nonce[:]); err != nil {
		return nil, err
	}
	key := base64.StdEncoding.EncodeToString(nonce[:])
	req := "GET " + t.wsPath + " HTTP/1.1\r\n" +
		"Host: " + t.hostHeader + "\r\n" +
		"Upgrade: websocket\r\n" +
		"Connection: Upgrade\r\n" +
		"Sec-WebSocket-Key: " + key + "\r\n" +
		"Sec-WebSocket-Version: " + wsVersion + "\r\n\r\n"
	if _, err := io.WriteString(c, req); err != nil {
		return nil, fmt.Errorf("websocket upgrade: %w", err)
	}
	br := bufio.NewReaderSize(c, readBufferSize)
	resp, err := readResponseHead(br)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrHandshake, err)
	}
	switch {
	case resp.code != 101:
		return nil, fmt.Errorf("%w: GET %s answered %q", ErrHandshake, t.wsPath, resp.status)
	case !headerHasToken(resp.header.Values("Upgrade"), "websocket"):
		return nil, fmt.Errorf("%w: response lacks Upgrade: websocket", ErrHandshake)
	case !headerHasToken(resp.header.Values("Connection"), "upgrade"):
		return nil, fmt.Errorf("%w: response lacks Connection: Upgrade", ErrHandshake)
	case resp.header.Get("Sec-Websocket-Accept") != acceptKey(key):
		return nil, fmt.Errorf("%w: Sec-WebSocket-Accept does not match the key sent", ErrHandshake)
	case resp.header.Get("Sec-Websocket-Extensions") != "":
		return nil, fmt.Errorf("%w: server chose extension %q, none was offered", ErrHandshake, resp.header.Get("Sec-Websocket-Extensions"))
	case resp.header.Get("Sec-Websocket-Protocol") != "":
		return nil, fmt.Errorf("%w: server chose subprotocol %q, none was offered", ErrHandshake, resp.header.Get("Sec-Websocket-Protocol"))
	}
	return newWSConn(c, br), nil
}

// headerHasToken reports whether a comma-separated header holds token,
// compared case-insensitively.
func headerHasToken(values []string, token string) bool {
	for _, v := range values {
		for part := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(part), token) {
				return true
			}
		}
	}
	return false
}

// wsConn is the client end of a WebSocket connection seen as a byte
// stream: Write sends each chunk as a masked binary frame, Read returns
// the payload of data frames in order and handles control frames on the
// way. One Read and one Write may run at the same time, and Close at any
// time.
type wsConn struct {
	conn net.Conn
	br   *bufio.Reader

	rmu       sync.Mutex
	remaining uint64 // payload bytes left in the current data frame
	inMessage bool   // the last data frame had FIN clear
	rerr      error  // sticky: io.EOF after a close frame, or a protocol violation
	control   [maxControlPayload]byte

	wmu       sync.Mutex
	wbuf      []byte
	closeSent bool

	closeOnce sync.Once
	closeErr  error
}

var _ net.Conn = (*wsConn)(nil)

func newWSConn(c net.Conn, br *bufio.Reader) *wsConn {
	return &wsConn{conn: c, br: br}
}

// Read returns payload bytes of text, binary and continuation frames. It
// answers a ping with a pong, and a close with a close, after which it
// returns io.EOF. A deadline that expires in the middle of a frame loses
// nothing: the next Read carries on.
func (c *wsConn) Read(p []byte) (int, error) {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	if c.rerr != nil {
		return 0, c.rerr
	}
	if len(p) == 0 {
		return 0, nil
	}
	for {
		if c.remaining == 0 {
			if err := c.nextFrame(); err != nil {
				return 0, err
			}
			continue
		}
		n := len(p)
		if uint64(n) > c.remaining {
			n = int(c.remaining)
		}
		n, err := c.br.Read(p[:n])
		c.remaining -= uint64(n)
		if n > 0 {
			return n, nil
		}
		if err != nil {
			return 0, c.streamErr(err, true)
		}
	}
}

// nextFrame reads frame headers until one starts a data frame with a
// payload to read, handling control frames and empty data frames. It
// consumes a frame only once its header (and, for a control frame, its
// payload) is complete.
func (c *wsConn) nextFrame() error {
	for {
		b, err := c.br.Peek(2)
		if len(b) < 2 {
			return c.streamErr(err, len(b) > 0 || c.inMessage)
		}
		h, size, err := decodeHeader(b)
		if err != nil {
			return c.fail(err)
		}
		if h.control() {
			size += int(h.length)
		}
		if b, err = c.br.Peek(size); len(b) < size {
			return c.streamErr(err, true)
		}
		// Decode again: an extended length is known only now.
		if h, _, err = decodeHeader(b); err != nil {
			return c.fail(err)
		}
		if !h.control() {
			switch {
			case h.op == opContinuation && !c.inMessage:
				return c.fail(fmt.Errorf("%w: continuation frame without a message to continue", ErrProtocol))
			case h.op != opContinuation && c.inMessage:
				return c.fail(fmt.Errorf("%w: new message before the final frame of the previous one", ErrProtocol))
			}
			c.inMessage = !h.fin
			c.remaining = h.length
			c.discard(size)
			if c.remaining > 0 {
				return nil
			}
			continue
		}
		payload := c.control[:copy(c.control[:], b[size-int(h.length):size])]
		c.discard(size)
		switch h.op {
		case opPing:
			if err := c.writeControl(opPong, payload); err != nil {
				return err
			}
		case opClose:
			code, err := parseClose(payload)
			if err != nil {
				return c.fail(err)
			}
			// Answer with the same code (section 5.5.1), then the
			// stream is over.
			_ = c.writeControl(opClose, closePayload(code))
			c.rerr = io.EOF
			return io.EOF
		}
		// A pong needs nothing.
	}
}

func (c *wsConn) discard(n int) {
	// Peek made the n bytes available, so Discard cannot fail.
	_, _ = c.br.Discard(n)
}

// streamErr turns an error from the underlying stream into Read's: a
// deadline stays a deadline (and resumable); EOF is io.EOF only between
// messages, io.ErrUnexpectedEOF inside one.
func (c *wsConn) streamErr(err error, inside bool) error {
	switch {
	case err == nil:
		// Peek returns a short slice only with an error; be safe.
		return io.ErrNoProgress
	case errors.Is(err, io.EOF) && inside:
		return fmt.Errorf("websocket: connection closed in the middle of a frame: %w", io.ErrUnexpectedEOF)
	case errors.Is(err, io.EOF):
		return io.EOF
	}
	return err
}

// fail records a protocol violation, tells the server with a 1002 close
// where it can, and returns err.
func (c *wsConn) fail(err error) error {
	_ = c.writeControl(opClose, closePayload(closeProtocolError))
	c.rerr = err
	return err
}

// Write sends p as masked binary frames, one per 64 KiB.
func (c *wsConn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.closeSent {
		return 0, fmt.Errorf("websocket: write after close: %w", net.ErrClosed)
	}
	written := 0
	for len(p) > 0 {
		chunk := p[:min(len(p), maxWriteFrame)]
		if err := c.writeFrame(opBinary, chunk); err != nil {
			return written, err
		}
		written += len(chunk)
		p = p[len(chunk):]
	}
	return written, nil
}

// writeControl sends a control frame unless a close has been sent.
func (c *wsConn) writeControl(op byte, payload []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.closeSent {
		return nil
	}
	if op == opClose {
		c.closeSent = true
	}
	return c.writeFrame(op, payload)
}

// writeFrame writes one final frame with a fresh mask key. wmu is held.
func (c *wsConn) writeFrame(op byte, payload []byte) error {
	var key [4]byte
	if _, err := rand.Read(key[:]); err != nil {
		return err
	}
	c.wbuf = appendFrame(c.wbuf[:0], op, true, &key, payload)
	_, err := c.conn.Write(c.wbuf)
	return err
}

// Close sends a close frame (status 1000) if no close has been sent and no
// Write is in progress, waiting at most a second, then closes the
// underlying connection.
func (c *wsConn) Close() error {
	c.closeOnce.Do(func() {
		if c.wmu.TryLock() {
			if !c.closeSent {
				c.closeSent = true
				_ = c.conn.SetWriteDeadline(time.Now().Add(closeFrameTimeout))
				_ = c.writeFrame(opClose, closePayload(closeNormal))
			}
			c.wmu.Unlock()
		}
		c.closeErr = c.conn.Close()
	})
	return c.closeErr
}

func (c *wsConn) LocalAddr() net.Addr                { return c.conn.LocalAddr() }
func (c *wsConn) RemoteAddr() net.Addr               { return c.conn.RemoteAddr() }
func (c *wsConn) SetDeadline(t time.Time) error      { return c.conn.SetDeadline(t) }
func (c *wsConn) SetReadDeadline(t time.Time) error  { return c.conn.SetReadDeadline(t) }
func (c *wsConn) SetWriteDeadline(t time.Time) error { return c.conn.SetWriteDeadline(t) }
