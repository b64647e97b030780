package dial

import (
	"bytes"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"testing"
)

func TestAppendFrameHeader(t *testing.T) {
	tests := []struct {
		length int
		header string // hex, unmasked binary frame with FIN
	}{
		{0, "8200"},
		{1, "8201"},
		{125, "827d"},
		{126, "827e007e"},
		{127, "827e007f"},
		{65535, "827effff"},
		{65536, "827f0000000000010000"},
		{1 << 20, "827f0000000000100000"},
	}
	for _, tt := range tests {
		payload := bytes.Repeat([]byte{'x'}, tt.length)
		got := appendFrame(nil, opBinary, true, nil, payload)
		hdr := len(tt.header) / 2
		if h := hex.EncodeToString(got[:hdr]); h != tt.header {
			t.Errorf("length %d: header %s, want %s", tt.length, h, tt.header)
		}
		if !bytes.Equal(got[hdr:], payload) {
			t.Errorf("length %d: payload changed", tt.length)
		}

		// Masked, as the client sends it: same length encoding with the
		// mask bit, the key, and the payload XORed with the key.
		key := [4]byte{0x01, 0x80, 0xFF, 0x37}
		masked := appendFrame(nil, opBinary, true, &key, payload)
		want, _ := hex.DecodeString(tt.header)
		want[1] |= 0x80
		want = append(want, key[:]...)
		for i, b := range payload {
			want = append(want, b^key[i%4])
		}
		if !bytes.Equal(masked, want) {
			t.Errorf("length %d: masked frame differs", tt.length)
		}
		if f := decodeClientFrames(t, masked); len(f) != 1 || !bytes.Equal(f[0].payload, payload) || f[0].op != opBinary || !f[0].fin {
			t.Errorf("length %d: masked frame does not round-trip", tt.length)
		}
	}
	// Opcode and FIN go into the first byte as they are.
	if got := appendFrame(nil, opContinuation, false, nil, nil); !bytes.Equal(got, []byte{0x00, 0x00}) {
		t.Errorf("non-final continuation: % x", got)
	}
	if got := appendFrame(nil, opPing, true, nil, []byte("hi")); !bytes.Equal(got, []byte{0x89, 0x02, 'h', 'i'}) {
		t.Errorf("ping: % x", got)
	}
}

func TestMaskBytes(t *testing.T) {
	key := [4]byte{1, 2, 3, 4}
	for n := range 40 {
		b := bytes.Repeat([]byte{0xAA}, n)
		maskBytes(b, key)
		for i := range b {
			if b[i] != 0xAA^key[i%4] {
				t.Fatalf("len %d: byte %d is %x", n, i, b[i])
			}
		}
	}
}

func TestReadFrames(t *testing.T) {
	long := func(n int) string { return strings.Repeat("a", n-1) + "z" }
	closeFrame := srv(opClose, true, "\x03\xe8") // 1000
	tests := []struct {
		name   string
		stream []byte
		want   string
		pongs  []string
	}{
		{"empty binary", cat(srv(opBinary, true, ""), closeFrame), "", nil},
		{"125", cat(srv(opBinary, true, long(125)), closeFrame), long(125), nil},
		{"126", cat(srv(opBinary, true, long(126)), closeFrame), long(126), nil},
		{"65535", cat(srv(opBinary, true, long(65535)), closeFrame), long(65535), nil},
		{"65536", cat(srv(opBinary, true, long(65536)), closeFrame), long(65536), nil},
		{"text frames too", cat(srv(opText, true, "INFO {}\r\n"), closeFrame), "INFO {}\r\n", nil},
		{"messages in a row", cat(srv(opBinary, true, "PING\r\n"), srv(opText, true, "PONG\r\n"), closeFrame), "PING\r\nPONG\r\n", nil},
		{"fragmented", cat(srv(opText, false, "hel"), srv(opContinuation, false, ""), srv(opContinuation, true, "lo"), closeFrame), "hello", nil},
		{"long fragments", cat(srv(opBinary, false, long(70000)), srv(opContinuation, true, long(300))), long(70000) + long(300), nil},
		{"ping inside a fragmented message", cat(srv(opBinary, false, "ab"), srv(opPing, true, "x"), srv(opContinuation, true, "cd"), closeFrame), "abcd", []string{"x"}},
		{"pings and pongs between messages", cat(srv(opPing, true, ""), srv(opBinary, true, "1"), srv(opPong, true, "p"), srv(opPing, true, long(125)), srv(opBinary, true, "2"), closeFrame), "12", []string{"", long(125)}},
		{"end without close frame", srv(opBinary, true, "bye"), "bye", nil},
	}
	for _, tt := range tests {
		for _, sched := range []struct {
			name      string
			schedule  []byte
			readSizes []byte
		}{
			{"whole", nil, nil},
			{"bytewise with deadlines", []byte{0, 1}, []byte{1, 7}},
			{"odd chunks", []byte{3, 0, 17, 5, 31}, []byte{2, 13, 255}},
		} {
			t.Run(tt.name+"/"+sched.name, func(t *testing.T) {
				c, sc := newScriptWS(tt.stream, sched.schedule)
				got, err := readAll(c, sched.readSizes)
				if !errors.Is(err, io.EOF) || err != io.EOF {
					t.Fatalf("Read ended with %v, want io.EOF", err)
				}
				if string(got) != tt.want {
					t.Fatalf("read %d bytes %.40q, want %d bytes %.40q", len(got), got, len(tt.want), tt.want)
				}
				// The same io.EOF again.
				if n, err := c.Read(make([]byte, 10)); n != 0 || err != io.EOF {
					t.Fatalf("Read after the end: %d, %v", n, err)
				}
				frames := decodeClientFrames(t, sc.written())
				var pongs []string
				for _, f := range frames {
					if f.op == opPong {
						pongs = append(pongs, string(f.payload))
					}
				}
				if strings.Join(pongs, "|") != strings.Join(tt.pongs, "|") || len(pongs) != len(tt.pongs) {
					t.Errorf("pongs %q, want %q", pongs, tt.pongs)
				}
				var last []clientFrame
				if len(frames) > 0 {
					last = frames[len(frames)-1:]
				}
				closed := bytes.HasSuffix(tt.stream, closeFrame)
				switch {
				case closed && (len(last) == 0 || last[0].op != opClose || string(last[0].payload) != "\x03\xe8"):
					t.Errorf("close frame not answered with a close 1000: %+v", last)
				case !closed && len(last) == 1 && last[0].op == opClose:
					t.Errorf("close frame sent although the server sent none")
				}
			})
		}
	}
}

func TestReadCloseStatus(t *testing.T) {
	tests := []struct {
		name  string
		body  string
		reply string
	}{
		{"no status", "", ""},
		{"going away with reason", "\x03\xe9server shutdown", "\x03\xe9"},
		{"application code", "\x0f\xa0", "\x0f\xa0"}, // 4000
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, sc := newScriptWS(srv(opClose, true, tt.body), nil)
			if _, err := c.Read(make([]byte, 8)); err != io.EOF {
				t.Fatalf("Read: %v, want io.EOF", err)
			}
			f := decodeClientFrames(t, sc.written())
			if len(f) != 1 || f[0].op != opClose || string(f[0].payload) != tt.reply {
				t.Fatalf("reply %+v, want one close with % x", f, tt.reply)
			}
			if _, err := c.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
				t.Errorf("Write after the close handshake: %v, want net.ErrClosed", err)
			}
		})
	}
}

func TestReadProtocolViolations(t *testing.T) {
	tests := []struct {
		name   string
		stream []byte
		want   string // in the error
		read   string // payload returned before the violation
	}{
		{"RSV1 (compression not negotiated)", []byte{0xC2, 0x00}, "reserved bits", ""},
		{"RSV3", []byte{0x92, 0x00}, "reserved bits", ""},
		{"unknown data opcode", []byte{0x83, 0x00}, "unknown opcode 0x3", ""},
		{"unknown control opcode", []byte{0x8B, 0x00}, "unknown opcode 0xb", ""},
		{"masked by the server", []byte{0x82, 0x81, 1, 2, 3, 4, 'a' ^ 1}, "masked frame", ""},
		{"ping longer than 125", cat([]byte{0x89, 0x7E, 0x00, 0x7E}, bytes.Repeat([]byte{'p'}, 126)), "longer than 125", ""},
		{"close with 64-bit length", []byte{0x88, 0x7F, 0, 0, 0, 0, 0, 0, 0, 2, 3, 0xe8}, "longer than 125", ""},
		{"fragmented ping", []byte{0x09, 0x00}, "fragmented control frame", ""},
		{"continuation without a message", cat(srv(opBinary, true, "ok"), srv(opContinuation, true, "x")), "continuation frame without a message", "ok"},
		{"new message inside a fragmented one", cat(srv(opBinary, false, "a"), srv(opBinary, true, "b")), "new message before the final frame", "a"},
		{"64-bit length with the top bit", []byte{0x82, 0x7F, 0x80, 0, 0, 0, 0, 0, 0, 0}, "most significant bit", ""},
		{"close with a 1-byte body", []byte{0x88, 0x01, 0x03}, "1-byte body", ""},
		{"close with status 1005", []byte{0x88, 0x02, 0x03, 0xED}, "status code 1005", ""},
		{"close with status 999", []byte{0x88, 0x02, 0x03, 0xE7}, "status code 999", ""},
		{"close with status 2000", []byte{0x88, 0x02, 0x07, 0xD0}, "status code 2000", ""},
		{"close reason not UTF-8", []byte{0x88, 0x04, 0x03, 0xE8, 0xFF, 0xFE}, "not UTF-8", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, sc := newScriptWS(tt.stream, nil)
			got, err := readAll(c, nil)
			if !errors.Is(err, ErrProtocol) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want ErrProtocol mentioning %q", err, tt.want)
			}
			if string(got) != tt.read {
				t.Errorf("read %q before the error, want %q", got, tt.read)
			}
			if _, again := c.Read(make([]byte, 4)); again != err {
				t.Errorf("second Read: %v, want the same error", again)
			}
			f := decodeClientFrames(t, sc.written())
			if len(f) != 1 || f[0].op != opClose || string(f[0].payload) != "\x03\xea" {
				t.Errorf("client sent %+v, want one close 1002", f)
			}
		})
	}
}

func TestReadTruncated(t *testing.T) {
	tests := []struct {
		name   string
		stream []byte
		read   string
		want   error
	}{
		{"nothing", nil, "", io.EOF},
		{"between messages", srv(opBinary, true, "ab"), "ab", io.EOF},
		{"half a header", []byte{0x82}, "", io.ErrUnexpectedEOF},
		{"half an extended length", []byte{0x82, 0x7E, 0x01}, "", io.ErrUnexpectedEOF},
		{"inside a payload", []byte{0x82, 0x05, 'a', 'b'}, "ab", io.ErrUnexpectedEOF},
		{"inside a ping", []byte{0x89, 0x05, 'a', 'b'}, "", io.ErrUnexpectedEOF},
		{"between fragments", srv(opBinary, false, "ab"), "ab", io.ErrUnexpectedEOF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _ := newScriptWS(tt.stream, []byte{0, 1})
			got, err := readAll(c, nil)
			if string(got) != tt.read || !errors.Is(err, tt.want) {
				t.Fatalf("read %q, %v; want %q, %v", got, err, tt.read, tt.want)
			}
			if tt.want == io.EOF && err != io.EOF {
				t.Fatalf("error %v is not io.EOF itself", err)
			}
		})
	}
}

func TestReadDeadlineKeepsFrame(t *testing.T) {
	// A deadline in the middle of an extended header, then in the
	// middle of the payload: nothing is lost.
	stream := srv(opBinary, true, strings.Repeat("q", 300))
	c, _ := newScriptWS(stream, []byte{2, 0, 1, 0, 200, 0, 255})
	var got []byte
	var timeouts int
	buf := make([]byte, 1000)
	for {
		n, err := c.Read(buf)
		got = append(got, buf[:n]...)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			timeouts++
			continue
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if timeouts == 0 || string(got) != strings.Repeat("q", 300) {
		t.Fatalf("%d timeouts, read %d bytes", timeouts, len(got))
	}
}

func TestWriteFrames(t *testing.T) {
	c, sc := newScriptWS(nil, nil)
	big := bytes.Repeat([]byte("0123456789"), 20000) // 200000 bytes: 3 full frames and a rest
	for _, p := range [][]byte{[]byte("CONNECT {}\r\n"), nil, big} {
		n, err := c.Write(p)
		if n != len(p) || err != nil {
			t.Fatalf("Write(%d bytes) = %d, %v", len(p), n, err)
		}
	}
	frames := decodeClientFrames(t, sc.written())
	var sizes []int
	var all []byte
	for _, f := range frames {
		if f.op != opBinary || !f.fin {
			t.Fatalf("frame op %x fin %v, want final binary frames", f.op, f.fin)
		}
		sizes = append(sizes, len(f.payload))
		all = append(all, f.payload...)
	}
	want := []int{12, maxWriteFrame, maxWriteFrame, maxWriteFrame, len(big) - 3*maxWriteFrame}
	if len(sizes) != len(want) {
		t.Fatalf("frame sizes %v, want %v", sizes, want)
	}
	for i := range want {
		if sizes[i] != want[i] {
			t.Fatalf("frame sizes %v, want %v", sizes, want)
		}
	}
	if !bytes.Equal(all, append([]byte("CONNECT {}\r\n"), big...)) {
		t.Fatal("payload differs")
	}
}

func TestCloseSendsCloseFrame(t *testing.T) {
	c, sc := newScriptWS(nil, nil)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	f := decodeClientFrames(t, sc.written())
	if len(f) != 1 || f[0].op != opClose || string(f[0].payload) != "\x03\xe8" {
		t.Fatalf("Close wrote %+v, want one close 1000", f)
	}
	if !sc.closed {
		t.Fatal("underlying conn left open")
	}
	if _, err := c.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Write after Close: %v", err)
	}
}
