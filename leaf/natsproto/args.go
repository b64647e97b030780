package natsproto

// span is a field of a control line argument, as offsets into it, so the
// fields survive moving the argument into the parser's own buffer.
type span struct{ lo, hi int }

// in returns the field's bytes, or nil for an absent field. The capacity is
// clipped so a handler appending to it cannot overwrite what follows.
func (s span) in(arg []byte) []byte {
	if s.hi == s.lo {
		return nil
	}
	return arg[s.lo:s.hi:s.hi]
}

// msgArgs are the arguments of a message operation.
type msgArgs struct {
	arg     []byte // the control line argument the spans index
	subject span
	reply   span
	sid     span
	q0, q1  int // queue names are fields[q0:q1]
	hdr     int // header bytes at the start of the message; -1 if none
	size    int // message bytes after the control line, CR LF excluded
}

// split cuts arg into fields at spaces and tabs, and also at CR when cr is
// set. nats-server splits PUB and HPUB on blanks only and every other
// operation on CR too (client.go: processPub, splitArg). LF never occurs:
// it ends the line.
func (p *Parser) split(arg []byte, cr bool) []span {
	f := p.fields[:0]
	start := -1
	for i, b := range arg {
		if b == ' ' || b == '\t' || (cr && b == '\r') {
			if start >= 0 {
				f = append(f, span{start, i})
				start = -1
			}
		} else if start < 0 {
			start = i
		}
	}
	if start >= 0 {
		f = append(f, span{start, len(arg)})
	}
	p.fields = f
	return f
}

// fieldBytes lists the fields as nats-server's leaf errors print them.
// Error path only.
func fieldBytes(arg []byte, f []span) [][]byte {
	out := make([][]byte, len(f))
	for i, s := range f {
		out[i] = s.in(arg)
	}
	return out
}

// parseSize reads a decimal size of at most nine digits, as nats-server's
// parseSize does; anything else is -1.
func parseSize(d []byte) int {
	if len(d) == 0 || len(d) > 9 {
		return -1
	}
	n := 0
	for _, c := range d {
		if c < '0' || c > '9' {
			return -1
		}
		n = n*10 + int(c-'0')
	}
	return n
}

// validSid is nats.go's test for a MSG sid: a non-negative decimal number.
func validSid(d []byte) bool {
	if len(d) == 0 || len(d) > 19 {
		return false
	}
	for _, c := range d {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

func clip(b []byte) []byte { return b[:len(b):len(b)] }

// trimBlanks removes trailing spaces and tabs: nats-server writes
// "INFO {...} \r\n".
func trimBlanks(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return clip(b)
}

// errText strips the quotes nats-server puts around an -ERR text.
func errText(b []byte) []byte {
	b = trimBlanks(b)
	if len(b) > 0 && b[0] == '\'' {
		b = b[1:]
	}
	if len(b) > 0 && b[len(b)-1] == '\'' {
		b = b[:len(b)-1]
	}
	return clip(b)
}

// control handles a complete control line.
func (p *Parser) control(arg []byte) error {
	var err error
	switch p.op {
	case opInfo:
		err = p.h.OnInfo(trimBlanks(arg))
	case opConnect:
		err = p.h.OnConnect(trimBlanks(arg))
	case opErr:
		err = p.h.OnErr(errText(arg))
	case opSub:
		err = p.sub(arg)
	case opUnsub:
		err = p.unsub(arg)
	case opLSPlus:
		err = p.lsPlus(arg)
	case opLSMinus:
		err = p.lsMinus(arg)
	default:
		return p.msgStart(arg)
	}
	p.endLine()
	return err
}

func (p *Parser) sub(arg []byte) error {
	f := p.split(arg, true)
	switch len(f) {
	case 2:
		return p.h.OnSub(f[0].in(arg), nil, f[1].in(arg))
	case 3:
		return p.h.OnSub(f[0].in(arg), f[1].in(arg), f[2].in(arg))
	}
	return argErrorf("SUB", "processSub Parse Error: %q", arg)
}

func (p *Parser) unsub(arg []byte) error {
	f := p.split(arg, true)
	switch len(f) {
	case 1:
		return p.h.OnUnsub(f[0].in(arg), -1)
	case 2:
		return p.h.OnUnsub(f[0].in(arg), parseSize(f[1].in(arg)))
	}
	return argErrorf("UNSUB", "processUnsub Parse Error: %q", arg)
}

func (p *Parser) lsPlus(arg []byte) error {
	f := p.split(arg, true)
	switch len(f) {
	case 1:
		return p.h.OnLSPlus(f[0].in(arg), nil, 1)
	case 3:
		// A missing or malformed weight counts as one member
		// (leafnode.go: processLeafSub).
		w := max(parseSize(f[2].in(arg)), 1)
		return p.h.OnLSPlus(f[0].in(arg), f[1].in(arg), w)
	}
	return argErrorf("LS+", "processLeafSub Parse Error: '%s'", arg)
}

// lsMinus passes on "LS- subject" and "LS- subject queue". nats-server looks
// any other argument up as a key that cannot exist and ignores it, so we do
// too.
func (p *Parser) lsMinus(arg []byte) error {
	f := p.split(arg, true)
	switch len(f) {
	case 1:
		return p.h.OnLSMinus(f[0].in(arg), nil)
	case 2:
		return p.h.OnLSMinus(f[0].in(arg), f[1].in(arg))
	}
	return nil
}

// msgStart reads a message's control line and moves on to its payload.
func (p *Parser) msgStart(arg []byte) error {
	p.msg = msgArgs{arg: arg, hdr: -1}
	var err error
	switch p.op {
	case opPub:
		err = p.pubArgs(arg)
	case opHPub:
		err = p.hpubArgs(arg)
	case opMsg:
		err = p.msgArgs(arg)
	case opHMsg:
		err = p.hmsgArgs(arg)
	case opLMsg:
		err = p.lmsgArgs(arg)
	case opLHMsg:
		err = p.lhmsgArgs(arg)
	}
	if err != nil {
		return err
	}
	// nats-server checks the limit after the arguments (client.go:
	// processPub), so a bad line reports its own error first.
	if p.msg.size > p.maxPayload {
		return ErrMaxPayload
	}
	p.state = stPayload
	return nil
}

// pubArgs: PUB <subject> [reply] <size>
func (p *Parser) pubArgs(arg []byte) error {
	m, f := &p.msg, p.split(arg, false)
	switch len(f) {
	case 2:
		m.subject, m.size = f[0], parseSize(f[1].in(arg))
	case 3:
		m.subject, m.reply, m.size = f[0], f[1], parseSize(f[2].in(arg))
	default:
		return argErrorf("PUB", "processPub Parse Error: %q", arg)
	}
	if m.size < 0 {
		return argErrorf("PUB", "processPub Bad or Missing Size: %q", arg)
	}
	return nil
}

// hpubArgs: HPUB <subject> [reply] <header size> <total size>
func (p *Parser) hpubArgs(arg []byte) error {
	m, f := &p.msg, p.split(arg, false)
	switch len(f) {
	case 3:
		m.subject = f[0]
	case 4:
		m.subject, m.reply = f[0], f[1]
	default:
		return argErrorf("HPUB", "processHeaderPub Parse Error: %q", arg)
	}
	m.hdr = parseSize(f[len(f)-2].in(arg))
	m.size = parseSize(f[len(f)-1].in(arg))
	switch {
	case m.hdr < 0:
		return argErrorf("HPUB", "processHeaderPub Bad or Missing Header Size: %q", arg)
	case m.size < 0:
		return argErrorf("HPUB", "processHeaderPub Bad or Missing Total Size: %q", arg)
	case m.hdr > m.size:
		// "then" is nats-server's spelling.
		return argErrorf("HPUB", "processHeaderPub Header Size larger then TotalSize: %q", arg)
	}
	return nil
}

// msgArgs: MSG <subject> <sid> [reply] <size>, checked as nats.go does
// (parser.go: processMsgArgs).
func (p *Parser) msgArgs(arg []byte) error {
	m, f := &p.msg, p.split(arg, true)
	switch len(f) {
	case 3:
		m.subject, m.sid = f[0], f[1]
	case 4:
		m.subject, m.sid, m.reply = f[0], f[1], f[2]
	default:
		return argErrorf("MSG", "processMsgArgs Parse Error: '%s'", arg)
	}
	m.size = parseSize(f[len(f)-1].in(arg))
	if !validSid(m.sid.in(arg)) {
		return argErrorf("MSG", "processMsgArgs Bad or Missing Sid: '%s'", arg)
	}
	if m.size < 0 {
		return argErrorf("MSG", "processMsgArgs Bad or Missing Size: '%s'", arg)
	}
	return nil
}

// hmsgArgs: HMSG <subject> <sid> [reply] <header size> <total size>, checked
// as nats.go does (parser.go: processHeaderMsgArgs).
func (p *Parser) hmsgArgs(arg []byte) error {
	m, f := &p.msg, p.split(arg, true)
	switch len(f) {
	case 4:
		m.subject, m.sid = f[0], f[1]
	case 5:
		m.subject, m.sid, m.reply = f[0], f[1], f[2]
	default:
		return argErrorf("HMSG", "processHeaderMsgArgs Parse Error: '%s'", arg)
	}
	m.hdr = parseSize(f[len(f)-2].in(arg))
	m.size = parseSize(f[len(f)-1].in(arg))
	if !validSid(m.sid.in(arg)) {
		return argErrorf("HMSG", "processHeaderMsgArgs Bad or Missing Sid: '%s'", arg)
	}
	// A bad total size (-1) is always below the header size, so nats.go's
	// separate "Bad or Missing Size" check never fires; this one covers it.
	if m.hdr < 0 || m.hdr > m.size {
		return argErrorf("HMSG", "processHeaderMsgArgs Bad or Missing Header Size: '%s'", arg)
	}
	return nil
}

// leafQueues reads the reply indicator of a leaf message with queue names
// and sets reply and the queue range; sizes is how many size fields end the
// line (leafnode.go: processLeafMsgArgs, processLeafHeaderMsgArgs).
func (p *Parser) leafQueues(arg []byte, f []span, sizes int, fn string) error {
	m, ind := &p.msg, f[1].in(arg)
	switch {
	case len(ind) == 1 && ind[0] == '+':
		m.reply, m.q0 = f[2], 3
	case len(ind) == 1 && ind[0] == '|':
		m.q0 = 2
	default:
		return argErrorf(p.opName(), "%s Bad or Missing Reply Indicator: '%s'", fn, ind)
	}
	m.q1 = max(len(f)-sizes, m.q0)
	return nil
}

// lmsgArgs: LMSG <subject> [reply] <size>, or with queues
// LMSG <subject> + <reply> <queue>... <size> | LMSG <subject> | <queue>... <size>
func (p *Parser) lmsgArgs(arg []byte) error {
	const fn = "processLeafMsgArgs"
	m, f := &p.msg, p.split(arg, true)
	switch len(f) {
	case 0, 1:
		return argErrorf("LMSG", "%s Parse Error: '%s'", fn, fieldBytes(arg, f))
	case 2:
	case 3:
		m.reply = f[1]
	default:
		if err := p.leafQueues(arg, f, 1, fn); err != nil {
			return err
		}
	}
	m.subject = f[0]
	m.size = parseSize(f[len(f)-1].in(arg))
	if m.size < 0 {
		return argErrorf("LMSG", "%s Bad or Missing Size: '%s'", fn, fieldBytes(arg, f))
	}
	return nil
}

// lhmsgArgs: the leaf HMSG, laid out as LMSG with a header size before the
// total size.
func (p *Parser) lhmsgArgs(arg []byte) error {
	const fn = "processLeafHeaderMsgArgs"
	m, f := &p.msg, p.split(arg, true)
	switch len(f) {
	case 0, 1, 2:
		return argErrorf("HMSG", "%s Parse Error: '%s'", fn, fieldBytes(arg, f))
	case 3:
	case 4:
		m.reply = f[1]
	default:
		if err := p.leafQueues(arg, f, 2, fn); err != nil {
			return err
		}
	}
	m.subject = f[0]
	m.hdr = parseSize(f[len(f)-2].in(arg))
	m.size = parseSize(f[len(f)-1].in(arg))
	switch {
	case m.hdr < 0:
		return argErrorf("HMSG", "%s Bad or Missing Header Size: '%s'", fn, arg)
	case m.size < 0:
		return argErrorf("HMSG", "%s Bad or Missing Size: '%s'", fn, fieldBytes(arg, f))
	case m.hdr > m.size:
		return argErrorf("HMSG", "%s Header Size larger then TotalSize: '%s'", fn, arg)
	}
	return nil
}

func (p *Parser) opName() string {
	if p.op == opLMsg {
		return "LMSG"
	}
	return "HMSG"
}

// deliver hands a complete message to the handler. data is the header
// followed by the payload.
func (p *Parser) deliver(data []byte) error {
	m := &p.msg
	a := m.arg
	subject, reply := m.subject.in(a), m.reply.in(a)
	var header, payload []byte = nil, data
	if m.hdr >= 0 {
		header, payload = data[:m.hdr:m.hdr], data[m.hdr:]
	}
	switch p.op {
	case opPub:
		return p.h.OnPub(subject, reply, payload)
	case opHPub:
		return p.h.OnHPub(subject, reply, header, payload)
	case opMsg:
		return p.h.OnMsg(subject, m.sid.in(a), reply, payload)
	case opHMsg:
		return p.h.OnHMsg(subject, m.sid.in(a), reply, header, payload)
	case opLMsg:
		return p.h.OnLMsg(subject, reply, p.queueList(), payload)
	default:
		return p.h.OnLHMsg(subject, reply, p.queueList(), header, payload)
	}
}

func (p *Parser) queueList() [][]byte {
	m := &p.msg
	if m.q0 == m.q1 {
		return nil
	}
	q := p.queues[:0]
	for _, s := range p.fields[m.q0:m.q1] {
		q = append(q, s.in(m.arg))
	}
	p.queues = q
	return q[:len(q):len(q)]
}
