package natsproto

import (
	"errors"
	"strings"
	"testing"
)

type parseCase struct {
	name string
	in   string
	ops  []string
	err  string // Error() of the expected error; "" for none
}

func runCases(t *testing.T, cfg Config, cases []parseCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			checkSplits(t, cfg, tc.in, result{ops: tc.ops, err: tc.err})
		})
	}
}

func TestParseServer(t *testing.T) {
	connect := `{"verbose":false,"pedantic":false,"user":"u","pass":"p","tls_required":false,"name":"t","lang":"go","version":"1.55.0","protocol":1,"echo":true,"headers":true,"no_responders":true}`
	runCases(t, Config{Mode: ModeServer}, []parseCase{
		{name: "pub", in: "PUB foo 5\r\nhello\r\n",
			ops: []string{`PUB "foo" "" "hello"`}},
		{name: "pub reply", in: "PUB foo _INBOX.1 5\r\nhello\r\n",
			ops: []string{`PUB "foo" "_INBOX.1" "hello"`}},
		{name: "pub empty payload", in: "PUB foo 0\r\n\r\n",
			ops: []string{`PUB "foo" "" ""`}},
		{name: "pub payload holds CRLF", in: "PUB foo 4\r\n\r\n\r\n\r\n",
			ops: []string{`PUB "foo" "" "\r\n\r\n"`}},
		{name: "pub lower case", in: "pub foo 2\r\nhi\r\n",
			ops: []string{`PUB "foo" "" "hi"`}},
		{name: "pub mixed case", in: "pUb foo 2\r\nhi\r\n",
			ops: []string{`PUB "foo" "" "hi"`}},
		{name: "pub tabs and spaces", in: "PUB\tfoo \t bar\t2\r\nhi\r\n",
			ops: []string{`PUB "foo" "bar" "hi"`}},
		{name: "pub bare LF line", in: "PUB foo 2\nhi\r\n",
			ops: []string{`PUB "foo" "" "hi"`}},
		{name: "pub trailing blank", in: "PUB foo 2 \r\nhi\r\n",
			ops: []string{`PUB "foo" "" "hi"`}},
		{name: "pub CR inside argument is not a separator", in: "PUB f\roo 2\r\nhi\r\n",
			ops: []string{`PUB "f\roo" "" "hi"`}},
		{name: "hpub", in: "HPUB bar 12 14\r\nNATS/1.0\r\n\r\nhi\r\n",
			ops: []string{`HPUB "bar" "" "NATS/1.0\r\n\r\n" "hi"`}},
		{name: "hpub reply", in: "HPUB bar rep 18 20\r\nNATS/1.0\r\nA: b\r\n\r\nhd\r\n",
			ops: []string{`HPUB "bar" "rep" "NATS/1.0\r\nA: b\r\n\r\n" "hd"`}},
		{name: "hpub zero header", in: "HPUB s 0 5\r\nhello\r\n",
			ops: []string{`HPUB "s" "" "" "hello"`}},
		{name: "hpub header only", in: "HPUB s 12 12\r\nNATS/1.0\r\n\r\n\r\n",
			ops: []string{`HPUB "s" "" "NATS/1.0\r\n\r\n" ""`}},
		{name: "sub", in: "SUB foo 1\r\n", ops: []string{`SUB "foo" "" "1"`}},
		{name: "sub nats.go double space", in: "SUB foo  1\r\n", ops: []string{`SUB "foo" "" "1"`}},
		{name: "sub queue", in: "SUB foo q 1\r\n", ops: []string{`SUB "foo" "q" "1"`}},
		{name: "sub opaque sid", in: "sub foo.* abc\r\n", ops: []string{`SUB "foo.*" "" "abc"`}},
		{name: "unsub", in: "UNSUB 1\r\n", ops: []string{`UNSUB "1" -1`}},
		{name: "unsub nats.go trailing space", in: "UNSUB 1 \r\n", ops: []string{`UNSUB "1" -1`}},
		{name: "unsub max", in: "UNSUB 1 10\r\n", ops: []string{`UNSUB "1" 10`}},
		{name: "unsub bad max", in: "UNSUB 1 x\r\n", ops: []string{`UNSUB "1" -1`}},
		{name: "nats.go handshake", in: "CONNECT " + connect + "\r\nPING\r\n",
			ops: []string{"CONNECT " + connect, "PING"}},
		{name: "connect without blank", in: "CONNECT{}\r\n", ops: []string{"CONNECT {}"}},
		{name: "connect empty", in: "CONNECT\r\n", ops: []string{"CONNECT "}},
		{name: "ping pong", in: "PING\r\nPONG\r\nping\r\npong\r\nPiNg\n",
			ops: []string{"PING", "PONG", "PING", "PONG", "PING"}},
		{name: "ping ignores the rest of its line", in: "PING junk\tmore\r\nPONGPONG\r\n",
			ops: []string{"PING", "PONG"}},
		{name: "ok and err", in: "+OK\r\n-ERR 'Stale Connection'\r\n+ok\r\n-err\t'x'\r\n",
			ops: []string{"+OK", `-ERR "Stale Connection"`, "+OK", `-ERR "x"`}},
		{name: "info trailing blank", in: "INFO {\"a\":1} \r\n", ops: []string{`INFO {"a":1}`}},
		{name: "several ops", in: "SUB foo 1\r\nPUB foo 2\r\nhi\r\nUNSUB 1\r\nPING\r\n",
			ops: []string{`SUB "foo" "" "1"`, `PUB "foo" "" "hi"`, `UNSUB "1" -1`, "PING"}},
		{name: "incomplete op is kept", in: "PUB foo 5\r\nhel",
			ops: nil},
		{name: "incomplete line is kept", in: "PING\r\nSUB foo",
			ops: []string{"PING"}},

		{name: "unknown op", in: "FOO bar\r\n", err: "Unknown Protocol Operation"},
		{name: "blank line", in: "\r\n", err: "Unknown Protocol Operation"},
		{name: "unknown op after good", in: "PING\r\nPINX\r\n", ops: []string{"PING"},
			err: "Unknown Protocol Operation"},
		{name: "op without separator", in: "PUBX foo 1\r\nx\r\n", err: "Unknown Protocol Operation"},
		{name: "op followed by CR", in: "UNSUB\r\n", err: "Unknown Protocol Operation"},
		{name: "msg is not a client op", in: "MSG foo 1 2\r\nhi\r\n", err: "Unknown Protocol Operation"},
		{name: "hmsg is not a client op", in: "HMSG foo 1 0 2\r\nhi\r\n", err: "Unknown Protocol Operation"},
		{name: "leaf op on client connection", in: "LS+ foo\r\n", err: "Unknown Protocol Operation"},
		{name: "payload too long", in: "PUB foo 2\r\nhiX\r\n", err: "Unknown Protocol Operation"},
		{name: "payload without CR", in: "PUB foo 2\r\nhi\n", err: "Unknown Protocol Operation"},
		{name: "hpub wrong total size", in: "HPUB bar 12 13\r\nNATS/1.0\r\n\r\nhi\r\n",
			err: "Unknown Protocol Operation"},
		{name: "pub args", in: "PUB foo\r\n", err: `processPub Parse Error: "foo"`},
		{name: "pub too many args", in: "PUB foo bar baz 1\r\n",
			err: `processPub Parse Error: "foo bar baz 1"`},
		{name: "pub empty", in: "PUB \r\n", err: `processPub Parse Error: ""`},
		{name: "pub negative size", in: "PUB foo -1\r\n", err: `processPub Bad or Missing Size: "foo -1"`},
		{name: "pub size not a number", in: "PUB foo bar 1x\r\n",
			err: `processPub Bad or Missing Size: "foo bar 1x"`},
		{name: "pub size ten digits", in: "PUB foo 1000000000\r\n",
			err: `processPub Bad or Missing Size: "foo 1000000000"`},
		{name: "hpub args", in: "HPUB foo 1\r\n", err: `processHeaderPub Parse Error: "foo 1"`},
		{name: "hpub header size", in: "HPUB foo -1 5\r\n",
			err: `processHeaderPub Bad or Missing Header Size: "foo -1 5"`},
		{name: "hpub total size", in: "HPUB foo r 1 x\r\n",
			err: `processHeaderPub Bad or Missing Total Size: "foo r 1 x"`},
		{name: "hpub header over total", in: "HPUB foo 14 12\r\n",
			err: `processHeaderPub Header Size larger then TotalSize: "foo 14 12"`},
		{name: "sub args", in: "SUB foo\r\n", err: `processSub Parse Error: "foo"`},
		{name: "sub too many", in: "SUB a b c d\r\n", err: `processSub Parse Error: "a b c d"`},
		{name: "unsub args", in: "UNSUB 1 2 3\r\n", err: `processUnsub Parse Error: "1 2 3"`},
		{name: "nothing after error", in: "FOO\r\nPING\r\n", err: "Unknown Protocol Operation"},
	})
}

func TestParseClient(t *testing.T) {
	info := `{"server_id":"NBIF","server_name":"s1","version":"2.15.2","proto":1,"headers":true,"max_payload":1048576,"client_id":5}`
	runCases(t, Config{Mode: ModeClient}, []parseCase{
		{name: "info", in: "INFO " + info + " \r\n", ops: []string{"INFO " + info}},
		{name: "msg", in: "MSG foo 1 5\r\nhello\r\n", ops: []string{`MSG "foo" "1" "" "hello"`}},
		{name: "msg reply", in: "msg foo 22 _INBOX.x 2\r\nhi\r\n",
			ops: []string{`MSG "foo" "22" "_INBOX.x" "hi"`}},
		{name: "hmsg", in: "HMSG foo 1 12 14\r\nNATS/1.0\r\n\r\nhi\r\n",
			ops: []string{`HMSG "foo" "1" "" "NATS/1.0\r\n\r\n" "hi"`}},
		{name: "no responders", in: "HMSG _INBOX.x.1 2 38 38\r\nNATS/1.0 503\r\nNats-Subject: nobody\r\n\r\n\r\n",
			ops: []string{`HMSG "_INBOX.x.1" "2" "" "NATS/1.0 503\r\nNats-Subject: nobody\r\n\r\n" ""`}},
		{name: "hmsg reply", in: "HMSG foo 1 r 12 14\r\nNATS/1.0\r\n\r\nhi\r\n",
			ops: []string{`HMSG "foo" "1" "r" "NATS/1.0\r\n\r\n" "hi"`}},
		{name: "control ops", in: "PING\r\nPONG\r\n+OK\r\n-ERR 'Authorization Violation'\r\n",
			ops: []string{"PING", "PONG", "+OK", `-ERR "Authorization Violation"`}},

		{name: "pub is not a server op", in: "PUB foo 1\r\nx\r\n", err: "Unknown Protocol Operation"},
		{name: "connect is not a server op", in: "CONNECT {}\r\n", err: "Unknown Protocol Operation"},
		{name: "lmsg is not a server op", in: "LMSG foo 1\r\nx\r\n", err: "Unknown Protocol Operation"},
		{name: "msg args", in: "MSG foo 1\r\n", err: `processMsgArgs Parse Error: 'foo 1'`},
		{name: "msg sid", in: "MSG foo x 1\r\n", err: `processMsgArgs Bad or Missing Sid: 'foo x 1'`},
		{name: "msg size", in: "MSG foo 1 r x\r\n", err: `processMsgArgs Bad or Missing Size: 'foo 1 r x'`},
		{name: "hmsg args", in: "HMSG foo 1 2\r\n", err: `processHeaderMsgArgs Parse Error: 'foo 1 2'`},
		{name: "hmsg sid", in: "HMSG foo -1 2 2\r\n",
			err: `processHeaderMsgArgs Bad or Missing Sid: 'foo -1 2 2'`},
		{name: "hmsg header over total", in: "HMSG foo 1 3 2\r\n",
			err: `processHeaderMsgArgs Bad or Missing Header Size: 'foo 1 3 2'`},
		{name: "hmsg size", in: "HMSG foo 1 0 x\r\n", // nats.go checks the header size first
			err: `processHeaderMsgArgs Bad or Missing Header Size: 'foo 1 0 x'`},
	})
}

func TestParseLeaf(t *testing.T) {
	// Lines captured between a v2.15.2 hub and leaf (reference B.2, B.9).
	hubInfo := `{"server_id":"NBBN","server_name":"hub1","version":"2.15.2","proto":3,"go":"go1.26.8","host":"127.0.0.1","port":44895,"headers":true,"auth_required":true,"max_payload":1048576,"ip":"127.0.0.1:44895","client_id":5,"nonce":"iCn_i4eY_a0A1po","compression":"s2_auto","api_lvl":5,"info_on_connect":true,"leafnode_urls":["127.0.0.1:44895"]}`
	leafConnect := `{"version":"2.15.2","user":"leaf","pass":"s3cr3t","server_id":"NBBE","name":"realleaf","cluster":"realleaf","headers":true,"compress_mode":"off","remote_account":"$G","protocol":3}`
	runCases(t, Config{Mode: ModeLeaf}, []parseCase{
		{name: "hub info", in: "INFO " + hubInfo + " \r\n", ops: []string{"INFO " + hubInfo}},
		{name: "leaf connect", in: "CONNECT " + leafConnect + "\r\n", ops: []string{"CONNECT " + leafConnect}},
		{name: "interest batch",
			in: "LS+ $SYS.REQ.USER.INFO\r\nLS+ $LDS.fLPtxHN4me6L8Y9TtuFDQh\r\nLS+ svc.a G 1\r\nLS+ foo.>\r\n",
			ops: []string{`LS+ "$SYS.REQ.USER.INFO" "" 1`, `LS+ "$LDS.fLPtxHN4me6L8Y9TtuFDQh" "" 1`,
				`LS+ "svc.a" "G" 1`, `LS+ "foo.>" "" 1`}},
		{name: "queue weights", in: "LS+ t.q W 1\r\nLS+ t.q W 2\r\nLS+ t.q W 1\r\nLS- t.q W\r\nLS- foo.>\r\n",
			ops: []string{`LS+ "t.q" "W" 1`, `LS+ "t.q" "W" 2`, `LS+ "t.q" "W" 1`, `LS- "t.q" "W"`, `LS- "foo.>" ""`}},
		{name: "weight below one counts as one", in: "LS+ a q 0\r\nLS+ a q x\r\nLS+ a q 1000000000\r\nLS+ a q 999999999\r\n",
			ops: []string{`LS+ "a" "q" 1`, `LS+ "a" "q" 1`, `LS+ "a" "q" 1`, `LS+ "a" "q" 999999999`}},
		{name: "ls- with another count is ignored", in: "LS- a b c\r\nPING\r\n", ops: []string{"PING"}},
		{name: "lmsg", in: "LMSG cmd.pi-001.x 5\r\nhello\r\n",
			ops: []string{`LMSG "cmd.pi-001.x" "" [] "hello"`}},
		{name: "lmsg reply", in: "LMSG cmd.pi-001.y _INBOX.hub.1 3\r\nreq\r\n",
			ops: []string{`LMSG "cmd.pi-001.y" "_INBOX.hub.1" [] "req"`}},
		{name: "lmsg queue", in: "LMSG cmd.x | Q 2\r\nqx\r\n",
			ops: []string{`LMSG "cmd.x" "" ["Q"] "qx"`}},
		{name: "lmsg reply queue", in: "LMSG cmd.x + _INBOX.r Q 2\r\nqr\r\n",
			ops: []string{`LMSG "cmd.x" "_INBOX.r" ["Q"] "qr"`}},
		{name: "lmsg queues", in: "LMSG svc.q + _INBOX.PC30LDcrxq93HIkZgU7rnB.w4445wFu qq q2 q3 6\r\nping-q\r\n",
			ops: []string{`LMSG "svc.q" "_INBOX.PC30LDcrxq93HIkZgU7rnB.w4445wFu" ["qq" "q2" "q3"] "ping-q"`}},
		{name: "lmsg reply indicator without queues", in: "LMSG a + r 1\r\nx\r\n",
			ops: []string{`LMSG "a" "r" [] "x"`}},
		{name: "hmsg", in: "HMSG cmd.pi-001.h 18 20\r\nNATS/1.0\r\nA: b\r\n\r\nhd\r\n",
			ops: []string{`LHMSG "cmd.pi-001.h" "" [] "NATS/1.0\r\nA: b\r\n\r\n" "hd"`}},
		{name: "hmsg reply", in: "HMSG s r 12 12\r\nNATS/1.0\r\n\r\n\r\n",
			ops: []string{`LHMSG "s" "r" [] "NATS/1.0\r\n\r\n" ""`}},
		{name: "hmsg reply queue", in: "HMSG cmd.x + _INBOX.h Q 18 20\r\nNATS/1.0\r\nK: V\r\n\r\nhq\r\n",
			ops: []string{`LHMSG "cmd.x" "_INBOX.h" ["Q"] "NATS/1.0\r\nK: V\r\n\r\n" "hq"`}},
		{name: "hmsg queues", in: "HMSG cmd.x | Q R 12 14\r\nNATS/1.0\r\n\r\nhq\r\n",
			ops: []string{`LHMSG "cmd.x" "" ["Q" "R"] "NATS/1.0\r\n\r\n" "hq"`}},
		{name: "keepalive", in: "PING\r\nPONG\r\n-ERR 'Stale Connection'\r\n",
			ops: []string{"PING", "PONG", `-ERR "Stale Connection"`}},
		{name: "js ack reply", in: "LMSG _INBOX.i $JS.ACK.S.C.1.2.3.4.5@orders.new 2\r\nok\r\n",
			ops: []string{`LMSG "_INBOX.i" "$JS.ACK.S.C.1.2.3.4.5@orders.new" [] "ok"`}},

		{name: "pub on a leaf link", in: "PUB foo 1\r\nx\r\n", err: "Unknown Protocol Operation"},
		{name: "msg on a leaf link", in: "MSG foo 1 1\r\nx\r\n", err: "Unknown Protocol Operation"},
		{name: "sub on a leaf link", in: "SUB foo 1\r\n", err: "Unknown Protocol Operation"},
		{name: "ls without sign", in: "LS foo\r\n", err: "Unknown Protocol Operation"},
		{name: "queue without weight", in: "LS+ foo grp\r\n", err: `processLeafSub Parse Error: 'foo grp'`},
		{name: "ls+ too many", in: "LS+ a b c d\r\n", err: `processLeafSub Parse Error: 'a b c d'`},
		{name: "lmsg args", in: "LMSG foo\r\n", err: `processLeafMsgArgs Parse Error: '[foo]'`},
		{name: "lmsg size", in: "LMSG foo x\r\n", err: `processLeafMsgArgs Bad or Missing Size: '[foo x]'`},
		{name: "lmsg indicator", in: "LMSG foo x q 5\r\n",
			err: `processLeafMsgArgs Bad or Missing Reply Indicator: 'x'`},
		{name: "lmsg long indicator", in: "LMSG foo ++ q 5\r\n",
			err: `processLeafMsgArgs Bad or Missing Reply Indicator: '++'`},
		{name: "hmsg args", in: "HMSG foo 1\r\n", err: `processLeafHeaderMsgArgs Parse Error: '[foo 1]'`},
		{name: "hmsg indicator", in: "HMSG foo r q 1 2\r\n",
			err: `processLeafHeaderMsgArgs Bad or Missing Reply Indicator: 'r'`},
		{name: "hmsg header size", in: "HMSG foo x 2\r\n",
			err: `processLeafHeaderMsgArgs Bad or Missing Header Size: 'foo x 2'`},
		{name: "hmsg size", in: "HMSG foo | q 1 x\r\n",
			err: `processLeafHeaderMsgArgs Bad or Missing Size: '[foo | q 1 x]'`},
		{name: "hmsg header over total", in: "HMSG foo 14 12\r\n",
			err: `processLeafHeaderMsgArgs Header Size larger then TotalSize: 'foo 14 12'`},
		{name: "lmsg bad end", in: "LMSG a 1\r\nxy\r\n", err: "Unknown Protocol Operation"},
	})
}

func TestParseLimits(t *testing.T) {
	sub := func(argLen int) string { // a SUB whose argument is argLen bytes
		return "SUB " + strings.Repeat("a", argLen-2) + " 1"
	}
	subOp := func(argLen int) string {
		return `SUB "` + strings.Repeat("a", argLen-2) + `" "" "1"`
	}
	t.Run("default control line", func(t *testing.T) {
		checkSplits(t, Config{}, sub(4096)+"\r\n", result{ops: []string{subOp(4096)}})
		checkSplits(t, Config{}, sub(4097)+"\r\n", result{err: "maximum control line exceeded"})
		// An unterminated line fails once it is too long.
		checkSplits(t, Config{}, sub(4097), result{err: "maximum control line exceeded"})
		checkSplits(t, Config{}, sub(4096)+"\r", result{})
	})
	t.Run("leaf control line", func(t *testing.T) {
		cfg := Config{Mode: ModeLeaf}
		line := "LS+ " + strings.Repeat("a", DefaultMaxLinkControlLine) + "\r\n"
		got := parseChunks(cfg, [][]byte{[]byte(line)})
		if got.err != "" || len(got.ops) != 1 {
			t.Fatalf("65536-byte argument: %v", got)
		}
		line = "LS+ " + strings.Repeat("a", DefaultMaxLinkControlLine+1) + "\r\n"
		if got := parseChunks(cfg, [][]byte{[]byte(line)}); got.err != ErrMaxControlLine.Error() {
			t.Fatalf("65537-byte argument: %v", got)
		}
	})
	small := Config{MaxControlLine: 8, MaxPayload: 10}
	runCases(t, small, []parseCase{
		{name: "limit counts the argument only", in: "PUB    foo 10\r\n0123456789\r\n",
			ops: []string{`PUB "foo" "" "0123456789"`}},
		{name: "over control line", in: "PUB foo.bar 1\r\n", err: "maximum control line exceeded"},
		{name: "CR does not count", in: "PUB a b 1\r\nx\r\n", ops: []string{`PUB "a" "b" "x"`}},
		{name: "embedded CR counts", in: "PUB abc d 1\rx\r\n", err: "maximum control line exceeded"},
		{name: "connect json counts", in: "CONNECT {\"ab\":12}\r\n", err: "maximum control line exceeded"},
		{name: "ping junk does not count", in: "PING " + strings.Repeat("x", 100) + "\r\n",
			ops: []string{"PING"}},
		{name: "leading blanks do not count", in: "SUB" + strings.Repeat(" ", 100) + "foo 1\r\n",
			ops: []string{`SUB "foo" "" "1"`}},
		{name: "over payload", in: "PUB foo 11\r\n", err: "Maximum Payload Violation"},
		{name: "hpub total over payload", in: "HPUB f 1 11\r\n", err: "Maximum Payload Violation"},
		{name: "bad args before payload limit", in: "HPUB f 12 11\r\n",
			err: `processHeaderPub Header Size larger then TotalSize: "f 12 11"`},
	})
	runCases(t, Config{Mode: ModeLeaf, MaxPayload: 4}, []parseCase{
		{name: "lmsg over payload", in: "LMSG foo 5\r\n", err: "Maximum Payload Violation"},
		{name: "hmsg over payload", in: "HMSG foo 0 5\r\n", err: "Maximum Payload Violation"},
	})
	runCases(t, Config{Mode: ModeClient, MaxPayload: 4}, []parseCase{
		{name: "msg over payload", in: "MSG foo 1 5\r\n", err: "Maximum Payload Violation"},
	})
}

func TestParseDefaults(t *testing.T) {
	for _, tc := range []struct {
		cfg                 Config
		maxLine, maxPayload int
	}{
		{Config{}, 4096, 1 << 20},
		{Config{Mode: ModeClient}, 65536, 1 << 20},
		{Config{Mode: ModeLeaf}, 65536, 1 << 20},
		{Config{Mode: ModeLeaf, MaxControlLine: 100, MaxPayload: 7}, 100, 7},
		{Config{MaxControlLine: -1, MaxPayload: -1}, 4096, 1 << 20},
	} {
		p := NewParser(NopHandler{}, tc.cfg)
		if p.maxLine != tc.maxLine || p.maxPayload != tc.maxPayload {
			t.Errorf("%+v: limits %d, %d; want %d, %d", tc.cfg, p.maxLine, p.maxPayload, tc.maxLine, tc.maxPayload)
		}
	}
	defer func() {
		if recover() == nil {
			t.Error("NewParser accepted an unknown mode")
		}
	}()
	NewParser(NopHandler{}, Config{Mode: Mode(9)})
}

func TestParseErrorIsSticky(t *testing.T) {
	rec := &recorder{}
	p := NewParser(rec, Config{})
	err := p.Parse([]byte("PING\r\nBAD\r\n"))
	if err != ErrUnknownOp {
		t.Fatalf("err = %v", err)
	}
	if err2 := p.Parse([]byte("PING\r\n")); err2 != err {
		t.Fatalf("second Parse: %v", err2)
	}
	if len(rec.ops) != 1 {
		t.Fatalf("ops after error: %v", rec.ops)
	}
	p.Reset()
	if err := p.Parse([]byte("PING\r\n")); err != nil || len(rec.ops) != 2 {
		t.Fatalf("after Reset: %v, %v", err, rec.ops)
	}
}

func TestParseResetDropsPartialOp(t *testing.T) {
	rec := &recorder{}
	p := NewParser(rec, Config{})
	if err := p.Parse([]byte("PUB foo 5\r\nhel")); err != nil {
		t.Fatal(err)
	}
	p.Reset()
	if err := p.Parse([]byte("PUB bar 2\r\nhi\r\n")); err != nil {
		t.Fatal(err)
	}
	if want := `PUB "bar" "" "hi"`; len(rec.ops) != 1 || rec.ops[0] != want {
		t.Fatalf("ops %v, want [%s]", rec.ops, want)
	}
}

func TestHandlerErrorStopsParse(t *testing.T) {
	for _, op := range []string{"CONNECT", "PING", "PUB", "HPUB", "SUB"} {
		t.Run(op, func(t *testing.T) {
			in := "CONNECT {}\r\nPING\r\nPUB a 1\r\nx\r\nHPUB a 0 1\r\nx\r\nSUB a 1\r\nPONG\r\n"
			for _, chunks := range splits([]byte(in)) {
				rec := &recorder{failOn: op}
				p := NewParser(rec, Config{})
				var err error
				for _, c := range chunks {
					if err = p.Parse(c); err != nil {
						break
					}
				}
				if !errors.Is(err, errHandler) {
					t.Fatalf("err = %v", err)
				}
				if last := rec.ops[len(rec.ops)-1]; !strings.HasPrefix(last, op) {
					t.Fatalf("an op followed the failing %s: %v", op, rec.ops)
				}
			}
		})
	}
}

// maxPayloadSetter raises the limit from inside OnInfo, as the uplink does
// once the hub's INFO tells its max_payload.
type maxPayloadSetter struct {
	recorder
	p *Parser
}

func (m *maxPayloadSetter) OnInfo(j []byte) error {
	m.p.SetMaxPayload(8)
	return m.recorder.OnInfo(j)
}

func TestSetMaxPayloadFromHandler(t *testing.T) {
	h := &maxPayloadSetter{}
	h.p = NewParser(h, Config{Mode: ModeLeaf, MaxPayload: 2})
	err := h.p.Parse([]byte("INFO {}\r\nLMSG a 8\r\n12345678\r\nLMSG a 9\r\n"))
	if err != ErrMaxPayload {
		t.Fatalf("err = %v", err)
	}
	if len(h.ops) != 2 {
		t.Fatalf("ops %v", h.ops)
	}
}

func TestHandlerCannotOverwriteStream(t *testing.T) {
	// Slices handed out are clipped, so appending to one cannot scribble
	// over the bytes that follow it in the caller's buffer.
	h := &appender{}
	p := NewParser(h, Config{})
	if err := p.Parse([]byte("PUB a r 2\r\nhi\r\nPUB b 2\r\nho\r\n")); err != nil {
		t.Fatal(err)
	}
	if h.n != 2 {
		t.Fatalf("%d messages", h.n)
	}
}

type appender struct {
	NopHandler
	n int
}

func (a *appender) OnPub(subject, reply, payload []byte) error {
	a.n++
	_ = append(subject, 'X')
	_ = append(reply, 'X')
	_ = append(payload, 'X', 'X')
	return nil
}

func TestWireText(t *testing.T) {
	for _, tc := range []struct {
		err  error
		text string
		ok   bool
	}{
		{ErrUnknownOp, "Unknown Protocol Operation", true},
		{ErrMaxControlLine, "maximum control line exceeded", true},
		{ErrMaxPayload, "Maximum Payload Violation", true},
		{&ArgError{Op: "PUB", Text: "processPub Parse Error: \"\""}, "", false},
		{errHandler, "", false},
	} {
		text, ok := WireText(tc.err)
		if text != tc.text || ok != tc.ok {
			t.Errorf("WireText(%v) = %q, %v", tc.err, text, ok)
		}
	}
	var err error = &ArgError{Op: "SUB", Text: "x"}
	if !errors.Is(err, ErrBadArgs) {
		t.Error("ArgError does not match ErrBadArgs")
	}
	if got := (Mode(7)).String(); got != "unknown" {
		t.Errorf("Mode(7) = %q", got)
	}
}
