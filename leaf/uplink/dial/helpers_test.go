package dial

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"testing"
	"time"
)

// scriptConn is a net.Conn whose reads come from in, cut into chunks by
// a schedule, and whose writes are recorded. A schedule byte of 0 makes
// that read fail with a deadline error instead (never twice in a row), to
// check that a reader resumes where it stopped.
type scriptConn struct {
	mu           sync.Mutex
	in           []byte
	schedule     []byte
	next         int
	lastTimedOut bool
	out          bytes.Buffer
	closed       bool
}

func newScriptConn(in, schedule []byte) *scriptConn {
	return &scriptConn{in: in, schedule: schedule}
}

func (c *scriptConn) Read(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return 0, net.ErrClosed
	}
	if len(c.in) == 0 {
		return 0, io.EOF
	}
	n := len(c.in)
	if len(c.schedule) > 0 {
		s := c.schedule[c.next%len(c.schedule)]
		c.next++
		if s == 0 && !c.lastTimedOut {
			c.lastTimedOut = true
			return 0, os.ErrDeadlineExceeded
		}
		n = min(n, int(s)%32+1)
	}
	c.lastTimedOut = false
	n = copy(p, c.in[:n])
	c.in = c.in[n:]
	return n, nil
}

func (c *scriptConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return 0, net.ErrClosed
	}
	return c.out.Write(p)
}

func (c *scriptConn) written() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return bytes.Clone(c.out.Bytes())
}

func (c *scriptConn) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	return nil
}

func (c *scriptConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (c *scriptConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (c *scriptConn) SetDeadline(time.Time) error      { return nil }
func (c *scriptConn) SetReadDeadline(time.Time) error  { return nil }
func (c *scriptConn) SetWriteDeadline(time.Time) error { return nil }

// newScriptWS is a wsConn reading the server frames in stream.
func newScriptWS(stream, schedule []byte) (*wsConn, *scriptConn) {
	sc := newScriptConn(stream, schedule)
	return newWSConn(sc, bufio.NewReaderSize(sc, readBufferSize)), sc
}

// readAll reads c until an error other than a deadline, with reads of
// the sizes in sizes (cycled; 0 means 1).
func readAll(c net.Conn, sizes []byte) ([]byte, error) {
	var got []byte
	buf := make([]byte, 300)
	for i := 0; ; i++ {
		size := len(buf)
		if len(sizes) > 0 {
			size = max(1, int(sizes[i%len(sizes)]))
		}
		n, err := c.Read(buf[:size])
		got = append(got, buf[:n]...)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			continue
		}
		if err != nil {
			return got, err
		}
	}
}

// srv builds one unmasked (server) frame.
func srv(op byte, fin bool, payload string) []byte {
	return appendFrame(nil, op, fin, nil, []byte(payload))
}

func cat(frames ...[]byte) []byte { return bytes.Join(frames, nil) }

// clientFrame is a frame a client wrote, unmasked.
type clientFrame struct {
	fin     bool
	op      byte
	payload []byte
}

// decodeClientFrames decodes what the client wrote. Every frame must be
// masked and complete.
func decodeClientFrames(t testing.TB, b []byte) []clientFrame {
	t.Helper()
	var frames []clientFrame
	for len(b) > 0 {
		if len(b) < 2 {
			t.Fatalf("client wrote a truncated frame header % x", b)
		}
		f := clientFrame{fin: b[0]&0x80 != 0, op: b[0] & 0x0F}
		if b[0]&0x70 != 0 {
			t.Fatalf("client set reserved bits: % x", b[:2])
		}
		if b[1]&0x80 == 0 {
			t.Fatalf("client frame not masked: % x", b[:2])
		}
		n, hdr := uint64(b[1]&0x7F), 2
		switch n {
		case 126:
			n, hdr = uint64(binary.BigEndian.Uint16(b[2:])), 4
			if n < 126 {
				t.Fatalf("client used a 16-bit length for %d bytes", n)
			}
		case 127:
			n, hdr = binary.BigEndian.Uint64(b[2:]), 10
			if n <= 0xFFFF {
				t.Fatalf("client used a 64-bit length for %d bytes", n)
			}
		}
		if uint64(len(b)) < uint64(hdr)+4+n {
			t.Fatalf("client wrote a truncated frame: %d bytes for %d of payload", len(b), n)
		}
		key := b[hdr : hdr+4]
		p := bytes.Clone(b[hdr+4 : hdr+4+int(n)])
		for i := range p {
			p[i] ^= key[i%4]
		}
		f.payload = p
		frames = append(frames, f)
		b = b[hdr+4+int(n):]
	}
	return frames
}
