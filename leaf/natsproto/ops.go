package natsproto

// opcode identifies an operation once its name has been read.
type opcode uint8

const (
	opInfo opcode = iota + 1
	opConnect
	opPing
	opPong
	opOK
	opErr
	opPub
	opHPub
	opSub
	opUnsub
	opMsg  // MSG, server to client
	opHMsg // HMSG with a sid, server to client
	opLSPlus
	opLSMinus
	opLMsg
	opLHMsg // HMSG on a leafnode link
)

// opDef is an operation name as a mode accepts it, and the state that
// follows the name.
type opDef struct {
	name string // upper case
	code opcode
	next state
}

// What follows the name: INFO and CONNECT take their argument right away,
// as in nats-server; PING, PONG and +OK ignore the rest of their line; the
// others need a space or tab first.
var (
	opInfoDef    = opDef{"INFO", opInfo, stSpaces}
	opConnectDef = opDef{"CONNECT", opConnect, stSpaces}
	opPingDef    = opDef{"PING", opPing, stSkipLine}
	opPongDef    = opDef{"PONG", opPong, stSkipLine}
	opOKDef      = opDef{"+OK", opOK, stSkipLine}
	opErrDef     = opDef{"-ERR", opErr, stOpSep}
)

// dialect is a mode's operations, with an index by first byte (either
// case) so the common first step of a name match is one lookup.
type dialect struct {
	ops   []opDef
	first [256]uint16 // bit k set: ops[k] starts with that byte
}

var dialects = func() (d [len(modeOps)]dialect) {
	for m, ops := range modeOps {
		d[m].ops = ops
		for k, op := range ops {
			c := op.name[0]
			d[m].first[c] |= 1 << k
			if 'A' <= c && c <= 'Z' {
				d[m].first[c+'a'-'A'] |= 1 << k
			}
		}
	}
	return d
}()

// modeOps lists each mode's operations. No name may be a prefix of another
// within a mode, and a mode has at most 16 (the parser's candidate mask).
var modeOps = [...][]opDef{
	ModeServer: {
		opInfoDef, opConnectDef, opPingDef, opPongDef, opOKDef, opErrDef,
		{"PUB", opPub, stOpSep},
		{"HPUB", opHPub, stOpSep},
		{"SUB", opSub, stOpSep},
		{"UNSUB", opUnsub, stOpSep},
	},
	ModeClient: {
		opInfoDef, opPingDef, opPongDef, opOKDef, opErrDef,
		{"MSG", opMsg, stOpSep},
		{"HMSG", opHMsg, stOpSep},
	},
	ModeLeaf: {
		opInfoDef, opConnectDef, opPingDef, opPongDef, opOKDef, opErrDef,
		{"LS+", opLSPlus, stOpSep},
		{"LS-", opLSMinus, stOpSep},
		{"LMSG", opLMsg, stOpSep},
		{"HMSG", opLHMsg, stOpSep},
	},
}
