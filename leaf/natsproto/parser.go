package natsproto

import (
	"bytes"
	"math/bits"
)

// Mode selects the operations a Parser accepts. The modes differ in more
// than the set: HMSG from a server to a client carries a sid, while HMSG on
// a leafnode link has none and may name queue groups, so the same bytes mean
// different things and the connection kind must decide.
type Mode uint8

const (
	// ModeServer reads what a client sends to a server: CONNECT, PUB, HPUB,
	// SUB and UNSUB, plus the operations every mode accepts (INFO, PING,
	// PONG, +OK, -ERR). This is leaf/natsd's side of a client connection.
	ModeServer Mode = iota
	// ModeClient reads what a server sends to a client: MSG and the sid
	// form of HMSG, plus the common operations. It checks MSG arguments the
	// way nats.go does.
	ModeClient
	// ModeLeaf reads a leafnode link, whose grammar is the same in both
	// directions: CONNECT, LS+, LS-, LMSG and the queue form of HMSG, plus
	// the common operations.
	ModeLeaf
)

func (m Mode) String() string {
	switch m {
	case ModeServer:
		return "server"
	case ModeClient:
		return "client"
	case ModeLeaf:
		return "leaf"
	}
	return "unknown"
}

// Config sets up a Parser. The zero value is a ModeServer parser with
// nats-server's client limits.
type Config struct {
	// Mode selects the dialect. Default ModeServer.
	Mode Mode
	// MaxControlLine bounds the argument part of a control line: the bytes
	// after the operation name and its separating blanks, up to CR LF.
	// Default DefaultMaxControlLine (4096) in ModeServer and
	// DefaultMaxLinkControlLine (65536) in the other modes.
	MaxControlLine int
	// MaxPayload bounds the size a message announces, header included.
	// Default DefaultMaxPayload (1 MiB).
	MaxPayload int
}

// Parser is a push parser for one connection's inbound byte stream. Feed it
// with Parse in chunks of any size; it calls its Handler once per complete
// operation. The outcome does not depend on how the stream is cut.
//
// Case is ignored in operation names, arguments are separated by spaces and
// tabs, and a line ends at LF with an optional CR before it, as in
// nats-server. A Parser is not safe for concurrent use.
//
// In steady state Parse does not allocate: a control line or a payload that
// spans chunks is copied into buffers the parser owns and reuses.
type Parser struct {
	h          Handler
	d          *dialect
	maxLine    int
	maxPayload int

	state state
	op    opcode
	cand  uint16 // ops still matching the name read so far (bit k: d.ops[k])
	n     uint8  // operation name bytes read

	// line holds a control line argument that began in an earlier chunk,
	// and the arguments of a message whose payload spans chunks.
	line []byte
	held bool // the current argument lives in line

	fields []span   // argument fields of the current control line
	queues [][]byte // reused for OnLMsg and OnLHMsg
	msg    msgArgs  // the message whose payload is being read
	pbuf   []byte   // payload (header included) that spans chunks

	err error // sticky: once set, the stream is unusable
}

// payloadKeep is the largest payload buffer kept for reuse after a message.
// A rare big message should not pin its buffer for the connection's life.
const payloadKeep = 64 << 10

// NewParser returns a parser that delivers to h. It panics if cfg.Mode is
// not one of the Mode constants.
func NewParser(h Handler, cfg Config) *Parser {
	if int(cfg.Mode) >= len(dialects) {
		panic("natsproto: unknown parser mode")
	}
	p := &Parser{h: h, d: &dialects[cfg.Mode], maxLine: cfg.MaxControlLine}
	if p.maxLine <= 0 {
		p.maxLine = DefaultMaxControlLine
		if cfg.Mode != ModeServer {
			p.maxLine = DefaultMaxLinkControlLine
		}
	}
	p.SetMaxPayload(cfg.MaxPayload)
	p.startOp()
	return p
}

// SetMaxPayload changes the payload limit for messages whose control line
// has not been read yet, e.g. once the hub's INFO tells its max_payload.
// n ≤ 0 selects DefaultMaxPayload. It may be called from a Handler method.
func (p *Parser) SetMaxPayload(n int) {
	if n <= 0 {
		n = DefaultMaxPayload
	}
	p.maxPayload = n
}

// Reset forgets any partial operation and any error, keeping the buffers,
// so the parser can serve a new connection.
func (p *Parser) Reset() {
	p.line, p.held = p.line[:0], false
	p.pbuf = p.pbuf[:0]
	p.msg = msgArgs{}
	p.err = nil
	p.startOp()
}

// Parse consumes buf, calling the Handler for every operation it completes.
// Bytes of an unfinished operation are kept for the next call; buf itself
// is not retained.
//
// An error is fatal to the connection: ErrUnknownOp, ErrMaxControlLine,
// ErrMaxPayload, an *ArgError, or an error returned by the Handler, which is
// passed through unchanged. After an error, Parse returns the same error
// until Reset.
func (p *Parser) Parse(buf []byte) error {
	if p.err != nil {
		return p.err
	}
	if err := p.parse(buf); err != nil {
		p.err = err
		return err
	}
	return nil
}

type state uint8

const (
	stOpName   state = iota // reading the operation name
	stOpSep                 // the name must be followed by a space or tab
	stSpaces                // blanks before the argument
	stArg                   // the argument, up to LF
	stSkipLine              // PING, PONG, +OK: ignore the rest of the line
	stPayload               // message bytes (header and payload)
	stEndR                  // the CR after the payload
	stEndN                  // the LF after the payload
)

func (p *Parser) parse(buf []byte) error {
	// argStart is where the argument begins in buf; an argument carried
	// over from the previous chunk continues at 0.
	i, argStart := 0, 0
	for i < len(buf) {
		switch p.state {
		case stOpName:
			if err := p.opByte(buf[i]); err != nil {
				return err
			}
			i++

		case stOpSep:
			if b := buf[i]; b != ' ' && b != '\t' {
				return ErrUnknownOp
			}
			p.state = stSpaces
			i++

		case stSpaces:
			if b := buf[i]; b == ' ' || b == '\t' {
				i++
				continue
			}
			// This byte starts the argument, or is the LF of an empty one.
			p.state, argStart = stArg, i

		case stArg:
			j := bytes.IndexByte(buf[i:], '\n')
			if j < 0 {
				if err := p.holdArg(buf[argStart:]); err != nil {
					return err
				}
				i = len(buf)
				continue
			}
			end := i + j
			arg := buf[argStart:end]
			if p.held {
				if err := p.holdArg(arg); err != nil {
					return err
				}
				arg = p.line
			}
			i = end + 1
			if n := len(arg); n > 0 && arg[n-1] == '\r' {
				arg = arg[:n-1]
			}
			if len(arg) > p.maxLine {
				return ErrMaxControlLine
			}
			if err := p.control(arg); err != nil {
				return err
			}

		case stSkipLine:
			j := bytes.IndexByte(buf[i:], '\n')
			if j < 0 {
				i = len(buf)
				continue
			}
			i += j + 1
			if err := p.bare(); err != nil {
				return err
			}

		case stPayload:
			size := p.msg.size
			if len(p.pbuf) == 0 && len(buf)-i >= size+2 {
				// The whole message is in buf: deliver it in place.
				end := i + size
				if buf[end] != '\r' || buf[end+1] != '\n' {
					return ErrUnknownOp
				}
				if err := p.deliver(buf[i:end:end]); err != nil {
					return err
				}
				i = end + 2
				p.endMsg()
				continue
			}
			p.keepArg()
			if cap(p.pbuf) < size {
				p.pbuf = make([]byte, 0, size)
			}
			n := min(size-len(p.pbuf), len(buf)-i)
			p.pbuf = append(p.pbuf, buf[i:i+n]...)
			i += n
			if len(p.pbuf) == size {
				p.state = stEndR
			}

		case stEndR:
			if buf[i] != '\r' {
				return ErrUnknownOp
			}
			p.state = stEndN
			i++

		case stEndN:
			if buf[i] != '\n' {
				return ErrUnknownOp
			}
			i++
			if err := p.deliver(p.pbuf[:len(p.pbuf):len(p.pbuf)]); err != nil {
				return err
			}
			p.endMsg()
		}
	}
	if p.state >= stPayload {
		// The message arguments still point into buf, which the caller
		// may reuse once we return.
		p.keepArg()
	}
	return nil
}

// opByte advances the operation name match by one byte.
func (p *Parser) opByte(b byte) error {
	var next uint16
	if p.n == 0 {
		next = p.d.first[b]
	} else {
		if 'a' <= b && b <= 'z' {
			b -= 'a' - 'A'
		}
		for m := p.cand; m != 0; m &= m - 1 {
			k := bits.TrailingZeros16(m)
			if name := p.d.ops[k].name; int(p.n) < len(name) && name[p.n] == b {
				next |= 1 << k
			}
		}
	}
	if next == 0 {
		return ErrUnknownOp
	}
	p.cand = next
	p.n++
	// No name is a prefix of another in one mode, so a complete name is
	// the last candidate standing.
	if next&(next-1) == 0 {
		if d := &p.d.ops[bits.TrailingZeros16(next)]; int(p.n) == len(d.name) {
			p.op, p.state = d.code, d.next
		}
	}
	return nil
}

// holdArg appends part of a control line argument to line, failing as soon
// as the argument is certain to exceed the limit. A trailing CR is not
// counted: if LF follows, it is not part of the argument.
func (p *Parser) holdArg(part []byte) error {
	n := len(p.line) + len(part)
	last := byte(0)
	if len(part) > 0 {
		last = part[len(part)-1]
	} else if len(p.line) > 0 {
		last = p.line[len(p.line)-1]
	}
	if last == '\r' {
		n--
	}
	if n > p.maxLine {
		return ErrMaxControlLine
	}
	p.line = append(p.line, part...)
	p.held = true
	return nil
}

// keepArg moves the current message's arguments out of the caller's buffer.
func (p *Parser) keepArg() {
	if p.held {
		return
	}
	p.line = append(p.line[:0], p.msg.arg...)
	p.msg.arg = p.line
	p.held = true
}

func (p *Parser) startOp() {
	p.state, p.cand, p.n = stOpName, 0, 0
}

// endLine finishes an operation without payload.
func (p *Parser) endLine() {
	p.line, p.held = p.line[:0], false
	p.startOp()
}

// endMsg finishes a message.
func (p *Parser) endMsg() {
	if cap(p.pbuf) > payloadKeep {
		p.pbuf = nil
	} else {
		p.pbuf = p.pbuf[:0]
	}
	p.msg = msgArgs{}
	p.endLine()
}

// bare delivers an operation that takes no arguments.
func (p *Parser) bare() error {
	op := p.op
	p.startOp()
	switch op {
	case opPing:
		return p.h.OnPing()
	case opPong:
		return p.h.OnPong()
	default:
		return p.h.OnOK()
	}
}
