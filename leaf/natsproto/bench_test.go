package natsproto

import (
	"strconv"
	"strings"
	"testing"
)

func benchPub(b *testing.B, size int) {
	msg := []byte("PUB foo.bar " + strconv.Itoa(size) + "\r\n" + strings.Repeat("x", size) + "\r\n")
	p := NewParser(NopHandler{}, Config{})
	b.ReportAllocs()
	b.SetBytes(int64(len(msg)))
	for b.Loop() {
		if err := p.Parse(msg); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParsePub16(b *testing.B)  { benchPub(b, 16) }
func BenchmarkParsePub256(b *testing.B) { benchPub(b, 256) }

// BenchmarkParsePub256Split feeds each message in two reads cut inside the
// payload, the path that copies into the parser's buffers.
func BenchmarkParsePub256Split(b *testing.B) {
	msg := []byte("PUB foo.bar 256\r\n" + strings.Repeat("x", 256) + "\r\n")
	cut := len(msg) / 2
	p := NewParser(NopHandler{}, Config{})
	b.ReportAllocs()
	b.SetBytes(int64(len(msg)))
	for b.Loop() {
		if err := p.Parse(msg[:cut]); err != nil {
			b.Fatal(err)
		}
		if err := p.Parse(msg[cut:]); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseLMsgQueues(b *testing.B) {
	msg := []byte("LMSG svc.q + _INBOX.PC30LDcrxq93HIkZgU7rnB.w4445wFu q1 q2 16\r\n" + strings.Repeat("x", 16) + "\r\n")
	p := NewParser(NopHandler{}, Config{Mode: ModeLeaf})
	b.ReportAllocs()
	b.SetBytes(int64(len(msg)))
	for b.Loop() {
		if err := p.Parse(msg); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAppendMsg(b *testing.B) {
	subject, sid, reply := []byte("foo.bar"), []byte("12"), []byte("_INBOX.abc")
	payload := []byte(strings.Repeat("x", 16))
	dst := AppendMsg(nil, subject, sid, reply, payload)
	b.ReportAllocs()
	b.SetBytes(int64(len(dst)))
	for b.Loop() {
		dst = AppendMsg(dst[:0], subject, sid, reply, payload)
	}
}
