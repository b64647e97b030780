package natsproto

// Handler receives the operations a Parser reads, one call per complete
// operation, in stream order.
//
// Every byte slice passed to a method is valid only during the call: it
// points into the buffer given to Parse or into the parser's own buffers,
// which are reused for the next operation. Copy what must outlive the call.
// An absent optional argument (reply, queue) is nil.
//
// A non-nil error stops parsing: Parse returns it unchanged, and every later
// Parse returns it too. Use this to close the connection from inside a
// callback, e.g. for an operation before CONNECT when auth is required.
//
// Which methods are called depends on the parser's Mode; embed NopHandler to
// implement only those.
type Handler interface {
	// OnInfo gets the JSON of an INFO, trailing blanks removed. All modes.
	OnInfo(json []byte) error
	// OnPing is called for PING; answer each with one PONG, in order.
	// All modes.
	OnPing() error
	// OnPong is called for PONG. All modes.
	OnPong() error
	// OnOK is called for +OK. All modes.
	OnOK() error
	// OnErr gets the text of an -ERR with its single quotes removed. All
	// modes. nats-server closes a client connection that sends one; on a
	// leaf link it logs the text and waits for the peer to close.
	OnErr(text []byte) error
	// OnConnect gets the JSON of a CONNECT, trailing blanks removed.
	// ModeServer and ModeLeaf.
	OnConnect(json []byte) error

	// OnPub is called for PUB. ModeServer.
	OnPub(subject, reply, payload []byte) error
	// OnHPub is called for HPUB. ModeServer. header is the whole header
	// block, the blank line that ends it included; it may be empty
	// ("HPUB s 0 5"), which nats-server treats as no header. On a
	// connection whose CONNECT lacked headers:true, return an error to
	// close it.
	OnHPub(subject, reply, header, payload []byte) error
	// OnSub is called for SUB. ModeServer. The sid is opaque: echo it back
	// as is.
	OnSub(subject, queue, sid []byte) error
	// OnUnsub is called for UNSUB. ModeServer. max is the message count
	// after which the subscription ends; it is -1 when absent or not a
	// number, as in nats-server, which removes the subscription at once
	// when max ≤ 0.
	OnUnsub(sid []byte, max int) error

	// OnMsg is called for MSG. ModeClient.
	OnMsg(subject, sid, reply, payload []byte) error
	// OnHMsg is called for the client form of HMSG, which carries a sid.
	// ModeClient.
	OnHMsg(subject, sid, reply, header, payload []byte) error

	// OnLSPlus is called for LS+. ModeLeaf. For a queue subscription,
	// weight is the number of members, at least 1 (a missing or bad weight
	// counts as 1, as in nats-server); for a plain one, queue is nil and
	// weight is 1. The leaf protocol names no account: the link is bound
	// to one.
	OnLSPlus(subject, queue []byte, weight int) error
	// OnLSMinus is called for LS-. ModeLeaf.
	OnLSMinus(subject, queue []byte) error
	// OnLMsg is called for LMSG. ModeLeaf. queues lists the queue groups
	// the sender chose ("LMSG s | q1 q2 n"); nil when the message is for
	// plain subscribers only.
	OnLMsg(subject, reply []byte, queues [][]byte, payload []byte) error
	// OnLHMsg is called for the leaf form of HMSG, which has no sid and
	// may name queues as LMSG does. ModeLeaf.
	OnLHMsg(subject, reply []byte, queues [][]byte, header, payload []byte) error
}

// NopHandler implements every Handler method by doing nothing. Embed it and
// override the methods the parser's mode delivers.
type NopHandler struct{}

var _ Handler = NopHandler{}

func (NopHandler) OnInfo([]byte) error                                { return nil }
func (NopHandler) OnPing() error                                      { return nil }
func (NopHandler) OnPong() error                                      { return nil }
func (NopHandler) OnOK() error                                        { return nil }
func (NopHandler) OnErr([]byte) error                                 { return nil }
func (NopHandler) OnConnect([]byte) error                             { return nil }
func (NopHandler) OnPub(_, _, _ []byte) error                         { return nil }
func (NopHandler) OnHPub(_, _, _, _ []byte) error                     { return nil }
func (NopHandler) OnSub(_, _, _ []byte) error                         { return nil }
func (NopHandler) OnUnsub([]byte, int) error                          { return nil }
func (NopHandler) OnMsg(_, _, _, _ []byte) error                      { return nil }
func (NopHandler) OnHMsg(_, _, _, _, _ []byte) error                  { return nil }
func (NopHandler) OnLSPlus(_, _ []byte, _ int) error                  { return nil }
func (NopHandler) OnLSMinus(_, _ []byte) error                        { return nil }
func (NopHandler) OnLMsg(_, _ []byte, _ [][]byte, _ []byte) error     { return nil }
func (NopHandler) OnLHMsg(_, _ []byte, _ [][]byte, _, _ []byte) error { return nil }
