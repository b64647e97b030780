package natsproto

import (
	"fmt"
	"hash/fnv"
	"testing"
)

// Real protocol lines for each dialect, from nats.go, nats-server and the
// captures in the protocol reference.
var fuzzSeeds = [...][]string{
	ModeServer: {
		"CONNECT {\"verbose\":false,\"pedantic\":false,\"tls_required\":false,\"name\":\"t\",\"lang\":\"go\",\"version\":\"1.55.0\",\"protocol\":1,\"echo\":true,\"headers\":true,\"no_responders\":true}\r\nPING\r\n",
		"SUB foo  1\r\nSUB _INBOX.x.* 2\r\nSUB svc q 3\r\nUNSUB 1 \r\nUNSUB 3 2\r\n",
		"PUB foo 5\r\nhello\r\nPUB svc _INBOX.x.1 3\r\nreq\r\n",
		"HPUB bar 12 14\r\nNATS/1.0\r\n\r\nhi\r\nHPUB bar r 18 20\r\nNATS/1.0\r\nA: b\r\n\r\nhd\r\n",
		"HPUB s 0 5\r\nhello\r\npub foo 0\n\r\nping\npong\r\n+OK\r\n-ERR 'x'\r\n",
		"PUB foo 2\r\nhiX\r\n",
		"HPUB bar 14 12\r\n",
	},
	ModeClient: {
		"INFO {\"server_id\":\"N\",\"version\":\"2.15.2\",\"proto\":1,\"headers\":true,\"max_payload\":1048576,\"client_id\":5} \r\n+OK\r\nPONG\r\n",
		"MSG foo 1 5\r\nhello\r\nMSG foo 1 _INBOX.x 2\r\nhi\r\n",
		"HMSG _INBOX.x.1 2 38 38\r\nNATS/1.0 503\r\nNats-Subject: nobody\r\n\r\n\r\n",
		"HMSG foo 1 r 12 14\r\nNATS/1.0\r\n\r\nhi\r\nPING\r\n-ERR 'Stale Connection'\r\n",
		"MSG foo x 1\r\n",
	},
	ModeLeaf: {
		"INFO {\"server_id\":\"NBBN\",\"proto\":3,\"headers\":true,\"max_payload\":1048576,\"client_id\":5,\"nonce\":\"iCn_i4eY_a0A1po\",\"info_on_connect\":true,\"leafnode_urls\":[\"127.0.0.1:44895\"]} \r\n",
		"CONNECT {\"version\":\"2.15.2\",\"name\":\"realleaf\",\"headers\":true,\"remote_account\":\"$G\",\"protocol\":3}\r\n",
		"LS+ $SYS.REQ.USER.INFO\r\nLS+ $LDS.fLPtxHN4me6L8Y9TtuFDQh\r\nLS+ svc.a G 1\r\nLS+ foo.>\r\nLS- t.q W\r\nLS- foo.>\r\n",
		"LMSG cmd.pi-001.x 5\r\nhello\r\nLMSG cmd.pi-001.y _INBOX.hub.1 3\r\nreq\r\n",
		"LMSG cmd.x | Q 2\r\nqx\r\nLMSG cmd.x + _INBOX.r Q 2\r\nqr\r\n",
		"HMSG cmd.pi-001.h 18 20\r\nNATS/1.0\r\nA: b\r\n\r\nhd\r\nHMSG cmd.x + _INBOX.h Q 18 20\r\nNATS/1.0\r\nK: V\r\n\r\nhq\r\n",
		"LMSG svc.q + _INBOX.PC30LDcrxq93HIkZgU7rnB.w4445wFu qq 6\r\nping-q\r\nPING\r\nPONG\r\n",
		"LS+ foo grp\r\n",
		"LMSG foo x q 5\r\n",
	},
}

// fuzzConfig reads the parser setup from the selector byte: the low bits
// pick the mode, bit 2 picks tiny limits so the fuzzer reaches them.
func fuzzConfig(sel byte) Config {
	cfg := Config{Mode: Mode(sel & 3 % 3)}
	if sel&4 != 0 {
		cfg.MaxControlLine, cfg.MaxPayload = 24, 16
	}
	return cfg
}

// fuzzChunks cuts in into chunks whose sizes come from a generator seeded
// with a hash of the whole fuzz input, so a failure reproduces from the
// corpus entry alone. The top bits of sel bound the chunk size.
func fuzzChunks(sel byte, in []byte) [][]byte {
	h := fnv.New64a()
	h.Write([]byte{sel})
	h.Write(in)
	x := h.Sum64() | 1
	maxChunk := 1 + int(sel>>3)*3
	var chunks [][]byte
	for len(in) > 0 {
		x ^= x << 13 // xorshift64
		x ^= x >> 7
		x ^= x << 17
		n := min(1+int(x%uint64(maxChunk)), len(in))
		chunks = append(chunks, in[:n])
		in = in[n:]
	}
	return chunks
}

// FuzzParser checks that the parser never panics, that the operations and
// error it reports do not depend on how the input is cut, and that the
// operations it accepts, written back with the Append functions, parse to
// the same operations.
func FuzzParser(f *testing.F) {
	for mode, seeds := range fuzzSeeds {
		for _, s := range seeds {
			f.Add(byte(mode), []byte(s))
			f.Add(byte(mode)|4|0x50, []byte(s))
		}
	}
	f.Fuzz(func(t *testing.T, sel byte, in []byte) {
		cfg := fuzzConfig(sel)
		whole := parseChunks(cfg, [][]byte{in})

		bytewise := make([][]byte, len(in))
		for i := range in {
			bytewise[i] = in[i : i+1]
		}
		if got := parseChunks(cfg, bytewise); !got.equal(whole) {
			t.Fatalf("mode %v, one byte at a time:\n%v\nwhole:\n%v", cfg.Mode, got, whole)
		}
		chunks := fuzzChunks(sel, in)
		if got := parseChunks(cfg, chunks); !got.equal(whole) {
			t.Fatalf("mode %v, %d chunks:\n%v\nwhole:\n%v", cfg.Mode, len(chunks), got, whole)
		}

		enc := &reencoder{}
		p := NewParser(enc, cfg)
		_ = p.Parse(in)
		again := parseChunks(cfg, [][]byte{enc.out})
		if want := (result{ops: whole.ops}); !again.equal(want) {
			t.Fatalf("mode %v, re-encoded as %q:\n%v\noriginal:\n%v", cfg.Mode, enc.out, again, want)
		}
	})
}

// reencoder writes every operation it is handed back out with the Append
// functions.
type reencoder struct {
	out []byte
}

func (e *reencoder) put(b []byte) error { e.out = b; return nil }

func (e *reencoder) OnInfo(j []byte) error    { return e.put(AppendInfo(e.out, j)) }
func (e *reencoder) OnConnect(j []byte) error { return e.put(AppendConnect(e.out, j)) }
func (e *reencoder) OnPing() error            { return e.put(append(e.out, PingLine...)) }
func (e *reencoder) OnPong() error            { return e.put(append(e.out, PongLine...)) }
func (e *reencoder) OnOK() error              { return e.put(append(e.out, OKLine...)) }
func (e *reencoder) OnErr(t []byte) error     { return e.put(AppendErr(e.out, string(t))) }
func (e *reencoder) OnPub(s, r, p []byte) error {
	return e.put(AppendPub(e.out, s, r, p))
}
func (e *reencoder) OnHPub(s, r, h, p []byte) error {
	return e.put(AppendHPub(e.out, s, r, h, p))
}
func (e *reencoder) OnSub(s, q, sid []byte) error { return e.put(AppendSub(e.out, s, q, sid)) }
func (e *reencoder) OnUnsub(sid []byte, max int) error {
	if max == 0 {
		// AppendUnsub leaves out a max ≤ 0, which reads back as -1;
		// keep the 0 so the operation lists compare equal.
		return e.put(fmt.Appendf(e.out, "UNSUB %s 0\r\n", sid))
	}
	return e.put(AppendUnsub(e.out, sid, max))
}
func (e *reencoder) OnMsg(s, sid, r, p []byte) error {
	return e.put(AppendMsg(e.out, s, sid, r, p))
}
func (e *reencoder) OnHMsg(s, sid, r, h, p []byte) error {
	return e.put(AppendHMsg(e.out, s, sid, r, h, p))
}
func (e *reencoder) OnLSPlus(s, q []byte, w int) error {
	return e.put(AppendLSPlus(e.out, s, q, w))
}
func (e *reencoder) OnLSMinus(s, q []byte) error { return e.put(AppendLSMinus(e.out, s, q)) }
func (e *reencoder) OnLMsg(s, r []byte, qs [][]byte, p []byte) error {
	return e.put(AppendLMsg(e.out, s, r, qs, p))
}
func (e *reencoder) OnLHMsg(s, r []byte, qs [][]byte, h, p []byte) error {
	return e.put(AppendLHMsg(e.out, s, r, qs, h, p))
}
