package natsproto

import (
	"strings"
	"testing"
)

// TestParseNoAllocs proves the message path does not allocate in steady
// state, fed whole and in every two-chunk split, once the parser's buffers
// have grown on a first pass.
func TestParseNoAllocs(t *testing.T) {
	if testing.CoverMode() != "" {
		t.Skip("coverage counters allocate")
	}
	payload := strings.Repeat("p", 100)
	hdr := "NATS/1.0\r\nA: b\r\n\r\n"
	for _, tc := range []struct {
		name string
		mode Mode
		in   string
	}{
		{"PUB", ModeServer, "PUB foo.bar _INBOX.abc.def 100\r\n" + payload + "\r\n"},
		{"HPUB", ModeServer, "HPUB foo.bar _INBOX.abc.def 18 118\r\n" + hdr + payload + "\r\n"},
		{"SUB UNSUB PING", ModeServer, "SUB foo.* q 1\r\nUNSUB 1 5\r\nPING\r\n"},
		{"MSG", ModeClient, "MSG foo.bar 12 _INBOX.abc 100\r\n" + payload + "\r\n"},
		{"HMSG", ModeClient, "HMSG foo.bar 12 _INBOX.abc 18 118\r\n" + hdr + payload + "\r\n"},
		{"LMSG", ModeLeaf, "LMSG foo.bar + _INBOX.abc q1 q2 q3 100\r\n" + payload + "\r\n"},
		{"leaf HMSG", ModeLeaf, "HMSG foo.bar | q1 q2 18 118\r\n" + hdr + payload + "\r\n"},
		{"LS+ LS-", ModeLeaf, "LS+ foo q 3\r\nLS- foo q\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := []byte(tc.in)
			p := NewParser(NopHandler{}, Config{Mode: tc.mode})
			feedSplits := func() {
				if err := p.Parse(in); err != nil {
					t.Fatal(err)
				}
				for i := 1; i < len(in); i++ {
					if err := p.Parse(in[:i]); err != nil {
						t.Fatal(err)
					}
					if err := p.Parse(in[i:]); err != nil {
						t.Fatal(err)
					}
				}
			}
			feedSplits() // warm-up: buffers grow to their working size
			if n := testing.AllocsPerRun(20, feedSplits); n != 0 {
				t.Fatalf("%.1f allocations per run of %d parses", n, 2*len(in)-1)
			}
		})
	}
}

func TestAppendNoAllocs(t *testing.T) {
	subject, sid, reply := []byte("foo.bar"), []byte("12"), []byte("_INBOX.abc")
	hdr, payload := []byte("NATS/1.0\r\nA: b\r\n\r\n"), []byte(strings.Repeat("p", 100))
	queues := [][]byte{[]byte("q1"), []byte("q2")}
	dst := make([]byte, 0, 1024)
	n := testing.AllocsPerRun(100, func() {
		d := AppendMsg(dst[:0], subject, sid, reply, payload)
		d = AppendHMsg(d, subject, sid, reply, hdr, payload)
		d = AppendPub(d, subject, reply, payload)
		d = AppendHPub(d, subject, reply, hdr, payload)
		d = AppendSub(d, subject, queues[0], sid)
		d = AppendUnsub(d, sid, 10)
		d = AppendLSPlus(d, subject, queues[0], 3)
		d = AppendLSMinus(d, subject, queues[0])
		d = AppendLMsg(d, subject, reply, queues, payload)
		d = AppendLHMsg(d, subject, nil, queues, hdr, payload)
		d = AppendErr(d, "Maximum Payload Violation")
		d = AppendNoRespondersHeader(d, subject)
		_ = d
	})
	if n != 0 {
		t.Fatalf("%.1f allocations", n)
	}
}
