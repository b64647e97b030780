package dial

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"strings"
	"testing"
	"unicode/utf8"
)

// refResult is what a stream of server frames must produce, computed by
// refDecode, a plain whole-buffer decoder written from RFC 6455 apart
// from the streaming reader under test.
type refResult struct {
	data  []byte   // payload of data frames, up to where the stream ends
	pings [][]byte // ping payloads, in order
	end   string   // "close", "protocol", "eof" or "unexpected"
	reply []byte   // the close body the client must answer with
}

func refDecode(b []byte) refResult {
	var r refResult
	open := false // inside a fragmented message
	for {
		if len(b) == 0 {
			r.end = "eof"
			if open {
				r.end = "unexpected"
			}
			return r
		}
		if len(b) < 2 {
			r.end = "unexpected"
			return r
		}
		fin, op, masked, n := b[0]&0x80 != 0, b[0]&0x0F, b[1]&0x80 != 0, uint64(b[1]&0x7F)
		control := op >= 8
		switch {
		case b[0]&0x70 != 0,
			op != 0 && op != 1 && op != 2 && op != 8 && op != 9 && op != 10,
			masked,
			control && (!fin || n > 125):
			return r.protocol()
		}
		hdr := 2
		switch n {
		case 126:
			hdr = 4
		case 127:
			hdr = 10
		}
		if len(b) < hdr {
			r.end = "unexpected"
			return r
		}
		switch n {
		case 126:
			n = uint64(binary.BigEndian.Uint16(b[2:]))
		case 127:
			n = binary.BigEndian.Uint64(b[2:])
			if n >= 1<<63 {
				return r.protocol()
			}
		}
		b = b[hdr:]
		if !control {
			if (op == 0) != open {
				return r.protocol()
			}
			open = !fin
			if uint64(len(b)) < n {
				r.data = append(r.data, b...)
				r.end = "unexpected"
				return r
			}
			r.data = append(r.data, b[:n]...)
			b = b[n:]
			continue
		}
		if uint64(len(b)) < n {
			r.end = "unexpected"
			return r
		}
		payload := b[:n]
		b = b[n:]
		switch op {
		case 9:
			r.pings = append(r.pings, payload)
		case 8:
			if len(payload) == 0 {
				r.end, r.reply = "close", nil
				return r
			}
			if len(payload) == 1 {
				return r.protocol()
			}
			code := int(payload[0])<<8 | int(payload[1])
			okCode := (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) || (code >= 3000 && code <= 4999)
			if !okCode || !utf8.Valid(payload[2:]) {
				return r.protocol()
			}
			r.end, r.reply = "close", payload[:2]
			return r
		}
	}
}

func (r refResult) protocol() refResult {
	r.end, r.reply = "protocol", []byte{0x03, 0xEA}
	return r
}

// FuzzFrameReader feeds arbitrary server bytes, cut into arbitrary chunks
// with deadline errors in between and read with arbitrary buffer sizes,
// to the frame reader. It must never panic, never return more (or other)
// bytes than the data frames carried, end the way the reference decoder
// says, and answer exactly the pings (then the close) it was sent.
func FuzzFrameReader(f *testing.F) {
	closeFrame := srv(opClose, true, "\x03\xe8")
	seeds := [][]byte{
		nil,
		cat(srv(opBinary, true, "INFO {\"server_id\":\"x\"}\r\n"), closeFrame),
		cat(srv(opText, false, "hel"), srv(opPing, true, "x"), srv(opContinuation, true, "lo"), closeFrame),
		cat(srv(opBinary, true, strings.Repeat("a", 126)), srv(opPong, true, ""), srv(opClose, true, "")),
		cat(srv(opBinary, true, strings.Repeat("b", 300)), srv(opClose, true, "\x0f\xa0bye")),
		// A 64-bit length, cut short (a whole one needs 64 KiB, which
		// slows the fuzzer down; TestReadFrames reads whole ones).
		{0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0, 'b', 'b'},
		{0x82, 0x7F, 0x80, 0, 0, 0, 0, 0, 0, 0},
		{0x82, 0x81, 1, 2, 3, 4, 'a'},
		{0xC2, 0x00},
		{0x09, 0x00},
		{0x88, 0x01, 0x03},
		cat(srv(opBinary, false, "a"), srv(opBinary, true, "b")),
		{0x82, 0x7E, 0x00},
	}
	for _, s := range seeds {
		f.Add(s, []byte{0, 3, 7}, []byte{5, 1})
		f.Add(s, []byte(nil), []byte(nil))
	}
	f.Fuzz(func(t *testing.T, stream, schedule, readSizes []byte) {
		want := refDecode(stream)
		c, sc := newScriptWS(stream, schedule)
		got, err := readAll(c, readSizes)
		if len(got) > len(want.data) {
			t.Fatalf("returned %d bytes, the frames carried %d", len(got), len(want.data))
		}
		if !bytes.Equal(got, want.data) {
			t.Fatalf("returned %q, the frames carried %q", got, want.data)
		}
		var end string
		switch {
		case err == io.EOF:
			end = "eof"
			if want.end == "close" {
				end = "close"
			}
		case errors.Is(err, ErrProtocol):
			end = "protocol"
		case errors.Is(err, io.ErrUnexpectedEOF):
			end = "unexpected"
		default:
			t.Fatalf("unexpected error %v", err)
		}
		if end != want.end {
			t.Fatalf("ended with %v, want %s", err, want.end)
		}
		frames := decodeClientFrames(t, sc.written())
		var i int
		for ; i < len(frames) && frames[i].op == opPong; i++ {
			if i >= len(want.pings) || !bytes.Equal(frames[i].payload, want.pings[i]) {
				t.Fatalf("pong %d carries %q; pings were %q", i, frames[i].payload, want.pings)
			}
		}
		if i != len(want.pings) {
			t.Fatalf("%d pongs for %d pings", i, len(want.pings))
		}
		rest := frames[i:]
		switch want.end {
		case "close", "protocol":
			if len(rest) != 1 || rest[0].op != opClose || !bytes.Equal(rest[0].payload, want.reply) {
				t.Fatalf("after the pongs the client wrote %+v, want one close % x", rest, want.reply)
			}
		default:
			if len(rest) != 0 {
				t.Fatalf("after the pongs the client wrote %+v, want nothing", rest)
			}
		}
	})
}

// FuzzResponseHead feeds arbitrary bytes to the HTTP response head
// reader used for proxy and websocket answers: no panic, and what it
// accepts is a sane status line and a bounded header.
func FuzzResponseHead(f *testing.F) {
	f.Add([]byte("HTTP/1.1 200 Connection established\r\n\r\nINFO {}\r\n"))
	f.Add([]byte("HTTP/1.0 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"x\"\r\n\r\n"))
	f.Add([]byte("HTTP/1.1 101 Switching Protocols\nUpgrade: websocket\nConnection: Upgrade\n\n\x82\x00"))
	f.Add([]byte("SSH-2.0-OpenSSH_9.6\r\n"))
	f.Add([]byte("HTTP/1.1 200\r\n folded: header\r\n\r\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		br := bufio.NewReaderSize(bytes.NewReader(in), readBufferSize)
		r, err := readResponseHead(br)
		if err != nil {
			return
		}
		if r.code < 100 || r.code > 999 || !strings.HasPrefix(r.status, "HTTP/1.") || hasControl(r.status) {
			t.Fatalf("accepted status %q (code %d)", r.status, r.code)
		}
		lines := 0
		for k, vs := range r.header {
			if k == "" || strings.ContainsAny(k, " \t") || hasControl(k) {
				t.Fatalf("accepted header key %q", k)
			}
			for _, v := range vs {
				if hasControl(v) {
					t.Fatalf("accepted header value %q", v)
				}
			}
			lines += len(vs)
		}
		if lines > maxHeadLines {
			t.Fatalf("accepted %d header lines", lines)
		}
	})
}

func hasControl(s string) bool {
	return strings.IndexFunc(s, func(r rune) bool { return (r < ' ' && r != '\t') || r == 0x7F }) >= 0
}
