package natsproto

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// recorder is a Handler that writes every operation as a line of text, so
// parses can be compared as plain string lists. It copies nothing it does
// not format at once, which checks that slices are read during the call.
type recorder struct {
	ops []string
	// failOn makes the handler return errHandler for that operation name.
	failOn string
}

var errHandler = errors.New("handler refused")

func (r *recorder) add(op string, format string, a ...any) error {
	line := op
	if format != "" {
		line += " " + fmt.Sprintf(format, a...)
	}
	r.ops = append(r.ops, line)
	if op == r.failOn {
		return errHandler
	}
	return nil
}

func queueList(qs [][]byte) string {
	var b strings.Builder
	b.WriteByte('[')
	for i, q := range qs {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%q", q)
	}
	b.WriteByte(']')
	return b.String()
}

func (r *recorder) OnInfo(j []byte) error    { return r.add("INFO", "%s", j) }
func (r *recorder) OnConnect(j []byte) error { return r.add("CONNECT", "%s", j) }
func (r *recorder) OnPing() error            { return r.add("PING", "") }
func (r *recorder) OnPong() error            { return r.add("PONG", "") }
func (r *recorder) OnOK() error              { return r.add("+OK", "") }
func (r *recorder) OnErr(t []byte) error     { return r.add("-ERR", "%q", t) }
func (r *recorder) OnPub(s, rep, p []byte) error {
	return r.add("PUB", "%q %q %q", s, rep, p)
}
func (r *recorder) OnHPub(s, rep, h, p []byte) error {
	return r.add("HPUB", "%q %q %q %q", s, rep, h, p)
}
func (r *recorder) OnSub(s, q, sid []byte) error { return r.add("SUB", "%q %q %q", s, q, sid) }
func (r *recorder) OnUnsub(sid []byte, max int) error {
	return r.add("UNSUB", "%q %d", sid, max)
}
func (r *recorder) OnMsg(s, sid, rep, p []byte) error {
	return r.add("MSG", "%q %q %q %q", s, sid, rep, p)
}
func (r *recorder) OnHMsg(s, sid, rep, h, p []byte) error {
	return r.add("HMSG", "%q %q %q %q %q", s, sid, rep, h, p)
}
func (r *recorder) OnLSPlus(s, q []byte, w int) error { return r.add("LS+", "%q %q %d", s, q, w) }
func (r *recorder) OnLSMinus(s, q []byte) error       { return r.add("LS-", "%q %q", s, q) }
func (r *recorder) OnLMsg(s, rep []byte, qs [][]byte, p []byte) error {
	return r.add("LMSG", "%q %q %s %q", s, rep, queueList(qs), p)
}
func (r *recorder) OnLHMsg(s, rep []byte, qs [][]byte, h, p []byte) error {
	return r.add("LHMSG", "%q %q %s %q %q", s, rep, queueList(qs), h, p)
}

var _ Handler = (*recorder)(nil)

// result is what a whole parse produced.
type result struct {
	ops []string
	err string
}

func (r result) String() string {
	return fmt.Sprintf("ops:\n  %s\nerr: %q", strings.Join(r.ops, "\n  "), r.err)
}

func (r result) equal(o result) bool {
	if r.err != o.err || len(r.ops) != len(o.ops) {
		return false
	}
	for i := range r.ops {
		if r.ops[i] != o.ops[i] {
			return false
		}
	}
	return true
}

// parseChunks feeds the chunks to a new parser in order, each from a fresh
// buffer that is scribbled over once Parse returns, so a parser that keeps
// a reference to the caller's bytes is caught. It stops at the first error.
func parseChunks(cfg Config, chunks [][]byte) result {
	rec := &recorder{}
	p := NewParser(rec, cfg)
	var err error
	for _, c := range chunks {
		buf := append([]byte(nil), c...)
		err = p.Parse(buf)
		for i := range buf {
			buf[i] = '#'
		}
		if err != nil {
			break
		}
	}
	res := result{ops: rec.ops}
	if err != nil {
		res.err = err.Error()
	}
	return res
}

// splits returns the input whole, as every two-chunk split, and one byte
// at a time.
func splits(in []byte) [][][]byte {
	out := [][][]byte{{in}}
	for i := 1; i < len(in); i++ {
		out = append(out, [][]byte{in[:i], in[i:]})
	}
	bytewise := make([][]byte, len(in))
	for i := range in {
		bytewise[i] = in[i : i+1]
	}
	return append(out, bytewise)
}

// checkSplits parses in every way splits lists and fails unless each gives
// want.
func checkSplits(t *testing.T, cfg Config, in string, want result) {
	t.Helper()
	for _, chunks := range splits([]byte(in)) {
		got := parseChunks(cfg, chunks)
		if !got.equal(want) {
			t.Fatalf("input %q in %d chunks (first %d bytes):\ngot  %v\nwant %v",
				in, len(chunks), len(chunks[0]), got, want)
		}
	}
}
