package natsproto

import (
	"fmt"
	"strings"
	"testing"
)

func b(s string) []byte {
	if s == "" {
		return nil
	}
	return []byte(s)
}

func TestAppendExact(t *testing.T) {
	hdr := []byte("NATS/1.0\r\nA: b\r\n\r\n")
	for _, tc := range []struct {
		name string
		got  []byte
		want string
	}{
		{"info", AppendInfo(nil, b(`{"a":1}`)), "INFO {\"a\":1}\r\n"},
		{"connect", AppendConnect(nil, b(`{}`)), "CONNECT {}\r\n"},
		{"err", AppendErr(nil, "Maximum Payload Violation"), "-ERR 'Maximum Payload Violation'\r\n"},
		{"pub", AppendPub(nil, b("foo"), nil, b("hello")), "PUB foo 5\r\nhello\r\n"},
		{"pub reply", AppendPub(nil, b("foo"), b("r"), nil), "PUB foo r 0\r\n\r\n"},
		{"hpub", AppendHPub(nil, b("bar"), nil, b("NATS/1.0\r\n\r\n"), b("hi")), "HPUB bar 12 14\r\nNATS/1.0\r\n\r\nhi\r\n"},
		{"hpub reply", AppendHPub(nil, b("bar"), b("r"), hdr, b("hd")), "HPUB bar r 18 20\r\nNATS/1.0\r\nA: b\r\n\r\nhd\r\n"},
		{"sub", AppendSub(nil, b("foo"), nil, b("1")), "SUB foo 1\r\n"},
		{"sub queue", AppendSub(nil, b("foo"), b("q"), b("12")), "SUB foo q 12\r\n"},
		{"unsub", AppendUnsub(nil, b("1"), 0), "UNSUB 1\r\n"},
		{"unsub max", AppendUnsub(nil, b("1"), 2), "UNSUB 1 2\r\n"},
		{"msg", AppendMsg(nil, b("foo"), b("1"), nil, b("hello")), "MSG foo 1 5\r\nhello\r\n"},
		{"msg reply", AppendMsg(nil, b("foo"), b("1"), b("_INBOX.x"), b("hi")), "MSG foo 1 _INBOX.x 2\r\nhi\r\n"},
		{"hmsg", AppendHMsg(nil, b("foo"), b("1"), nil, b("NATS/1.0\r\n\r\n"), b("hi")), "HMSG foo 1 12 14\r\nNATS/1.0\r\n\r\nhi\r\n"},
		{"no responders", AppendHMsg(nil, b("_INBOX.x.1"), b("2"), nil, AppendNoRespondersHeader(nil, b("nobody")), nil),
			"HMSG _INBOX.x.1 2 38 38\r\nNATS/1.0 503\r\nNats-Subject: nobody\r\n\r\n\r\n"},
		{"ls+", AppendLSPlus(nil, b("foo.>"), nil, 0), "LS+ foo.>\r\n"},
		{"ls+ queue", AppendLSPlus(nil, b("svc.a"), b("G"), 3), "LS+ svc.a G 3\r\n"},
		{"ls+ weight floor", AppendLSPlus(nil, b("t.q"), b("W"), 0), "LS+ t.q W 1\r\n"},
		{"ls+ weight cap", AppendLSPlus(nil, b("t.q"), b("W"), 5_000_000_000), "LS+ t.q W 999999999\r\n"},
		{"ls-", AppendLSMinus(nil, b("foo.>"), nil), "LS- foo.>\r\n"},
		{"ls- queue", AppendLSMinus(nil, b("t.q"), b("W")), "LS- t.q W\r\n"},
		// The forms below are byte captures from a v2.15.2 hub (reference B.9).
		{"lmsg", AppendLMsg(nil, b("cmd.pi-001.x"), nil, nil, b("hello")), "LMSG cmd.pi-001.x 5\r\nhello\r\n"},
		{"lmsg reply", AppendLMsg(nil, b("cmd.pi-001.y"), b("_INBOX.hub.1"), nil, b("req")), "LMSG cmd.pi-001.y _INBOX.hub.1 3\r\nreq\r\n"},
		{"lmsg queue", AppendLMsg(nil, b("cmd.x"), nil, [][]byte{b("Q")}, b("qx")), "LMSG cmd.x | Q 2\r\nqx\r\n"},
		{"lmsg reply queue", AppendLMsg(nil, b("cmd.x"), b("_INBOX.r"), [][]byte{b("Q")}, b("qr")), "LMSG cmd.x + _INBOX.r Q 2\r\nqr\r\n"},
		{"lmsg queues", AppendLMsg(nil, b("s"), nil, [][]byte{b("a"), b("b")}, b("x")), "LMSG s | a b 1\r\nx\r\n"},
		{"lhmsg", AppendLHMsg(nil, b("cmd.pi-001.h"), nil, nil, hdr, b("hd")), "HMSG cmd.pi-001.h 18 20\r\nNATS/1.0\r\nA: b\r\n\r\nhd\r\n"},
		{"lhmsg reply queue", AppendLHMsg(nil, b("cmd.x"), b("_INBOX.h"), [][]byte{b("Q")}, []byte("NATS/1.0\r\nK: V\r\n\r\n"), b("hq")),
			"HMSG cmd.x + _INBOX.h Q 18 20\r\nNATS/1.0\r\nK: V\r\n\r\nhq\r\n"},
		{"lines", []byte(PingLine + PongLine + OKLine), "PING\r\nPONG\r\n+OK\r\n"},
		{"appends", AppendPub([]byte("PING\r\n"), b("a"), nil, b("x")), "PING\r\nPUB a 1\r\nx\r\n"},
	} {
		if string(tc.got) != tc.want {
			t.Errorf("%s:\ngot  %q\nwant %q", tc.name, tc.got, tc.want)
		}
	}
}

// TestAppendRoundTrip encodes operations and parses them back, whole and
// in every split.
func TestAppendRoundTrip(t *testing.T) {
	hdr := AppendHeader(nil, &Header{Status: "100", Description: "Idle Heartbeat",
		Fields: []HeaderField{{"K", "v1"}, {"K", "v2"}}})
	big := strings.Repeat("payload ", 40)
	var queues [][]byte
	for i := range 5 {
		queues = append(queues, []byte(fmt.Sprintf("q%d", i)))
	}
	for _, tc := range []struct {
		name string
		mode Mode
		in   []byte
		want []string
	}{
		{"server", ModeServer, cat(
			AppendConnect(nil, b(`{"verbose":false}`)),
			[]byte(PingLine),
			AppendSub(nil, b("foo.*"), nil, b("1")),
			AppendSub(nil, b("foo.*"), b("workers"), b("2")),
			AppendPub(nil, b("foo.a"), b("_INBOX.r"), b(big)),
			AppendPub(nil, b("foo.b"), nil, nil),
			AppendHPub(nil, b("foo.c"), nil, hdr, b("body")),
			AppendHPub(nil, b("foo.d"), b("r"), nil, b("body")),
			AppendUnsub(nil, b("1"), 5),
			AppendUnsub(nil, b("2"), 0),
			[]byte(PongLine),
		), []string{
			`CONNECT {"verbose":false}`, "PING",
			`SUB "foo.*" "" "1"`, `SUB "foo.*" "workers" "2"`,
			fmt.Sprintf(`PUB "foo.a" "_INBOX.r" %q`, big),
			`PUB "foo.b" "" ""`,
			fmt.Sprintf(`HPUB "foo.c" "" %q "body"`, hdr),
			`HPUB "foo.d" "r" "" "body"`,
			`UNSUB "1" 5`, `UNSUB "2" -1`, "PONG",
		}},
		{"client", ModeClient, cat(
			AppendInfo(nil, b(`{"max_payload":1048576}`)),
			[]byte(OKLine),
			AppendMsg(nil, b("foo"), b("1"), nil, b("hello")),
			AppendMsg(nil, b("foo"), b("1"), b("r"), b(big)),
			AppendHMsg(nil, b("foo"), b("2"), b("r"), hdr, nil),
			AppendErr(nil, "Permissions Violation for Publish to \"x\""),
		), []string{
			`INFO {"max_payload":1048576}`, "+OK",
			`MSG "foo" "1" "" "hello"`,
			fmt.Sprintf(`MSG "foo" "1" "r" %q`, big),
			fmt.Sprintf(`HMSG "foo" "2" "r" %q ""`, hdr),
			`-ERR "Permissions Violation for Publish to \"x\""`,
		}},
		{"leaf", ModeLeaf, cat(
			AppendConnect(nil, b(`{"headers":true}`)),
			AppendLSPlus(nil, b("a.>"), nil, 7),
			AppendLSPlus(nil, b("svc"), b("G"), 3),
			AppendLSMinus(nil, b("svc"), b("G")),
			AppendLSMinus(nil, b("a.>"), nil),
			AppendLMsg(nil, b("a.b"), nil, nil, b("x")),
			AppendLMsg(nil, b("a.b"), b("r"), nil, b(big)),
			AppendLMsg(nil, b("svc"), b("r"), queues, b("q")),
			AppendLMsg(nil, b("svc"), nil, queues[:1], b("q")),
			AppendLHMsg(nil, b("a.h"), nil, nil, hdr, b("p")),
			AppendLHMsg(nil, b("a.h"), b("r"), queues[:2], hdr, nil),
		), []string{
			`CONNECT {"headers":true}`,
			`LS+ "a.>" "" 1`, `LS+ "svc" "G" 3`, `LS- "svc" "G"`, `LS- "a.>" ""`,
			`LMSG "a.b" "" [] "x"`,
			fmt.Sprintf(`LMSG "a.b" "r" [] %q`, big),
			`LMSG "svc" "r" ["q0" "q1" "q2" "q3" "q4"] "q"`,
			`LMSG "svc" "" ["q0"] "q"`,
			fmt.Sprintf(`LHMSG "a.h" "" [] %q "p"`, hdr),
			fmt.Sprintf(`LHMSG "a.h" "r" ["q0" "q1"] %q ""`, hdr),
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkSplits(t, Config{Mode: tc.mode}, string(tc.in), result{ops: tc.want})
		})
	}
}

func cat(parts ...[]byte) []byte {
	var out []byte
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}
