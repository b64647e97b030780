package uplink

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nkeys"

	"github.com/canopy-iot/canopy/leaf/internal/wbuf"
	"github.com/canopy-iot/canopy/leaf/natsd"
	"github.com/canopy-iot/canopy/leaf/natsproto"
	"github.com/canopy-iot/canopy/leaf/subject"
)

// Limits of the link.
const (
	handshakeTimeout = 5 * time.Second
	writeDeadline    = 10 * time.Second
	// maxPending bounds what waits to be written to the hub. Core NATS is
	// at most once: past this, new messages are dropped (and counted)
	// rather than letting a stalled link eat the device's memory.
	maxPending = 32 << 20
	// leafVersion is the nats-server version the leaf speaks as. A hub
	// with leafnodes.min_version compares against it.
	leafVersion = "2.10.0"
	// remoteAccount names the leaf's (single) local account to the hub.
	remoteAccount = "$G"
)

// hubInfo is the part of the hub's INFO the leaf uses.
type hubInfo struct {
	ServerID      string   `json:"server_id"`
	ServerName    string   `json:"server_name"`
	Version       string   `json:"version"`
	ClientID      uint64   `json:"client_id"`
	Nonce         string   `json:"nonce"`
	InfoOnConnect bool     `json:"info_on_connect"`
	LeafnodeURLs  []string `json:"leafnode_urls"`
	TLSRequired   bool     `json:"tls_required"`
	MaxPayload    int64    `json:"max_payload"`
	Headers       bool     `json:"headers"`
	ConnectInfo   bool     `json:"connect_info"`
	RemoteAccount string   `json:"remote_account"`
	Import        *filter  `json:"import"`
	Export        *filter  `json:"export"`
	LameDuckMode  bool     `json:"ldm"`
}

// connectMsg is the leaf's CONNECT (reference B.4): no lang, no echo, no
// cluster, no account; headers on; no compression.
type connectMsg struct {
	JWT           string `json:"jwt,omitempty"`
	NKey          string `json:"nkey,omitempty"`
	Sig           string `json:"sig,omitempty"`
	User          string `json:"user,omitempty"`
	Pass          string `json:"pass,omitempty"`
	Token         string `json:"auth_token,omitempty"`
	Name          string `json:"name"`
	Version       string `json:"version"`
	Protocol      int    `json:"protocol"`
	Headers       bool   `json:"headers"`
	RemoteAccount string `json:"remote_account"`
	CompressMode  string `json:"compress_mode"`
	Isolate       bool   `json:"isolate,omitempty"`
}

// Handshake phases.
const (
	phaseInfo        = iota // waiting for the hub's first INFO
	phaseConnectInfo        // CONNECT sent, waiting for the connect-info INFO
	phaseUp                 // permissions known: interest and messages flow
)

// link is one leafnode connection. Its reader goroutine runs serve; a
// writer goroutine writes what is queued in out.
type link struct {
	natsproto.NopHandler
	u      *Uplink
	target target
	conn   net.Conn
	parser *natsproto.Parser
	batch  natsd.Batch // local clients that got messages during one read

	phase   int
	info    hubInfo // the first INFO
	account string
	hubName string
	hubErr  string        // the last -ERR from the hub
	holdOff time.Duration // wait the hub asked for before reconnecting

	send       *sendFilter // set when phaseUp
	imports    *filter
	maxPayload int

	// The hub's interest: an index of its LS+ keys, changed by the reader
	// only and matched by local publishers.
	remote     subject.Index[struct{}]
	remoteKeys map[subject.Key]*subject.Sub[struct{}]

	outMu   sync.Mutex
	out     wbuf.Queue
	spare   [][]byte
	writer  wbuf.Writer // writer goroutine only
	ready   bool        // interest announced; guarded by outMu
	closed  bool
	flushCh chan struct{}
	done    chan struct{}
	once    sync.Once

	drained     chan struct{} // closed when a backlog over the stall mark is written; guarded by outMu
	lastDropLog atomic.Int64

	up       atomic.Bool // mirrors ready for the publish path
	lameDuck atomic.Bool
	pingsOut atomic.Int32

	deniedMu sync.Mutex
	denied   map[string]bool // subjects already logged as not permitted
}

// connect dials t and runs the handshake up to the connect-info INFO.
func (u *Uplink) connect(ctx context.Context, t target) (*link, error) {
	ctx, cancel := context.WithTimeout(ctx, handshakeTimeout)
	defer cancel()
	conn, err := dialHub(ctx, t, u.cfg)
	if err != nil {
		return nil, err
	}
	l := &link{
		u: u, target: t, conn: conn,
		remoteKeys: map[subject.Key]*subject.Sub[struct{}]{},
		flushCh:    make(chan struct{}, 1),
		done:       make(chan struct{}),
		denied:     map[string]bool{},
	}
	l.parser = natsproto.NewParser(l, natsproto.Config{Mode: natsproto.ModeLeaf})
	if err := l.handshake(ctx); err != nil {
		conn.Close()
		return l, err
	}
	return l, nil
}

func (l *link) handshake(ctx context.Context) error {
	deadline, _ := ctx.Deadline()
	l.conn.SetDeadline(deadline)
	if err := l.readUntil(phaseConnectInfo); err != nil { // the first INFO
		return fmt.Errorf("waiting for the hub's INFO: %w", err)
	}
	if l.info.ClientID == 0 || !(l.info.InfoOnConnect || len(l.info.LeafnodeURLs) > 0) {
		return errors.New("not a leafnode port (the INFO is a client port's or another server's)")
	}
	if needTLS(l.target, l.info.TLSRequired) {
		tc, err := upgradeTLS(ctx, l.conn, l.target, l.u.cfg)
		if err != nil {
			return err
		}
		l.conn = tc
		l.conn.SetDeadline(deadline)
	}
	connect, err := l.connectMsg()
	if err != nil {
		return err
	}
	js, _ := json.Marshal(connect)
	if _, err := l.conn.Write(natsproto.AppendConnect(nil, js)); err != nil {
		return fmt.Errorf("send CONNECT: %w", err)
	}
	if err := l.readUntil(phaseUp); err != nil {
		if l.hubErr != "" {
			return fmt.Errorf("hub: %s", l.hubErr)
		}
		return fmt.Errorf("waiting for the hub to accept the connection: %w", err)
	}
	l.conn.SetDeadline(time.Time{})
	return nil
}

// readUntil reads and handles what the hub sends until the handshake
// reaches phase, or fails.
func (l *link) readUntil(phase int) error {
	buf := make([]byte, 32<<10)
	for l.phase < phase {
		n, err := l.conn.Read(buf)
		if n > 0 {
			if perr := l.parser.Parse(buf[:n]); perr != nil {
				return perr
			}
		}
		if l.phase >= phase {
			return nil
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// connectMsg builds the CONNECT, signing the hub's nonce. Credential
// files are read now, so a rotated file is used at the next connection.
func (l *link) connectMsg() (*connectMsg, error) {
	c := l.u.cfg
	m := &connectMsg{
		Name: c.Name, Version: leafVersion, Protocol: 1, Headers: true,
		RemoteAccount: remoteAccount, CompressMode: "off", Isolate: *c.Isolate,
	}
	sign := func(kp nkeys.KeyPair) error {
		defer kp.Wipe()
		sig, err := kp.Sign([]byte(l.info.Nonce))
		if err != nil {
			return fmt.Errorf("sign nonce: %w", err)
		}
		m.Sig = base64.RawURLEncoding.EncodeToString(sig)
		return nil
	}
	switch {
	case c.Credentials != "":
		jwt, kp, err := readCreds(c.Credentials)
		if err != nil {
			return nil, err
		}
		m.JWT = jwt
		return m, sign(kp)
	case c.NKeySeedFile != "":
		kp, err := readSeed(c.NKeySeedFile)
		if err != nil {
			return nil, err
		}
		m.NKey, _ = kp.PublicKey()
		return m, sign(kp)
	case c.User != "":
		m.User, m.Pass = c.User, c.Password
		if c.PasswordFile != "" {
			p, err := readSecret(c.PasswordFile)
			if err != nil {
				return nil, err
			}
			m.Pass = p
		}
	case c.Token != "" || c.TokenFile != "":
		m.Token = c.Token
		if c.TokenFile != "" {
			t, err := readSecret(c.TokenFile)
			if err != nil {
				return nil, err
			}
			m.Token = t
		}
	case l.target.origin.User != nil:
		// Credentials in the URL, as nats-server's remotes accept them.
		m.User = l.target.origin.User.Username()
		m.Pass, _ = l.target.origin.User.Password()
	}
	return m, nil
}

func readSecret(file string) (string, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("read %s: %w", file, unwrapPath(err))
	}
	return strings.TrimSpace(string(b)), nil
}

// serve announces local interest, then reads from the hub until the link
// fails or ctx ends.
func (l *link) serve(ctx context.Context) error {
	go l.writeLoop()
	defer l.close()
	l.u.srv.LockedInterest(func(keys iter.Seq2[subject.Key, int]) {
		l.outMu.Lock()
		for k, n := range keys {
			l.appendInterest(k.Subject, k.Queue, n)
		}
		l.ready = true
		l.outMu.Unlock()
		l.up.Store(true)
		l.u.cur.Store(l)
	})
	l.signalFlush()

	stop := context.AfterFunc(ctx, func() { l.conn.Close() })
	defer stop()
	pinger := time.AfterFunc(l.u.cfg.PingInterval.Std(), l.ping)
	defer pinger.Stop()

	buf := make([]byte, 32<<10)
	for {
		n, err := l.conn.Read(buf)
		if n > 0 {
			l.u.stats.bytesIn.Add(uint64(n))
			perr := l.parser.Parse(buf[:n])
			l.batch.Flush()
			if perr != nil {
				return fmt.Errorf("from hub: %w", perr)
			}
		}
		if err != nil {
			if l.hubErr != "" {
				return fmt.Errorf("hub: %s", l.hubErr)
			}
			return err
		}
		select {
		case <-l.done:
			return errors.New("link closed")
		default:
		}
	}
}

// ping keeps the link checked: a hub that stops answering is given up
// after MaxPingsOut pings, long before TCP would notice.
func (l *link) ping() {
	select {
	case <-l.done:
		return
	default:
	}
	if int(l.pingsOut.Add(1)) > l.u.cfg.MaxPingsOut {
		l.u.log.Warn("hub stopped answering pings, reconnecting", "url", l.target.String())
		l.close()
		return
	}
	l.queue(pingLine)
	time.AfterFunc(l.u.cfg.PingInterval.Std(), l.ping)
}

func (l *link) close() {
	l.once.Do(func() {
		l.up.Store(false)
		l.outMu.Lock()
		l.closed = true
		if l.drained != nil {
			close(l.drained)
			l.drained = nil
		}
		l.outMu.Unlock()
		close(l.done)
		l.conn.Close()
	})
}

// queue appends a protocol line and wakes the writer.
func (l *link) queue(line []byte) {
	l.outMu.Lock()
	if !l.closed {
		l.out.Write(line)
	}
	l.outMu.Unlock()
	l.signalFlush()
}

var (
	pingLine = []byte(natsproto.PingLine)
	pongLine = []byte(natsproto.PongLine)
)

func (l *link) signalFlush() {
	select {
	case l.flushCh <- struct{}{}:
	default:
	}
}

func (l *link) writeLoop() {
	for {
		select {
		case <-l.flushCh:
		case <-l.done:
			return
		}
		l.outMu.Lock()
		chunks := l.out.Take(l.spare)
		l.spare = nil
		l.outMu.Unlock()
		if len(chunks) == 0 {
			l.outMu.Lock()
			l.spare = chunks
			l.outMu.Unlock()
			continue
		}
		l.conn.SetWriteDeadline(time.Now().Add(writeDeadline))
		n, chunks, err := l.writer.WriteTo(l.conn, chunks)
		l.u.stats.bytesOut.Add(uint64(n))
		if err != nil {
			l.u.log.Debug("write to hub failed", "err", err)
			l.close()
			return
		}
		l.outMu.Lock()
		if l.spare == nil {
			l.spare = chunks
		}
		if l.drained != nil && l.out.Len() <= maxPending/4*3 {
			close(l.drained)
			l.drained = nil
		}
		l.outMu.Unlock()
	}
}

// announce sends a change of local interest, if the hub may hear it.
func (l *link) announce(subj, queue string, count int) {
	l.outMu.Lock()
	if !l.ready || l.closed {
		l.outMu.Unlock()
		return
	}
	l.appendInterest(subj, queue, count)
	l.outMu.Unlock()
	l.signalFlush()
}

// appendInterest writes LS+ or LS- for a local (subject, queue) whose
// count is now count. Plain interest is announced when it appears and
// withdrawn when it goes; a queue's weight is its number of local members
// and is re-sent on every change. Interest the device may not receive is
// not announced: the hub would close the link for a literal one.
func (l *link) appendInterest(subj, queue string, count int) {
	if l.u.keptLocal(subj) {
		return
	}
	if !l.imports.allowsInterest(subj) || !l.u.down.allowsInterest(subj) {
		if count > 0 {
			l.noteDenied("subscribe", subj)
		}
		return
	}
	s, q := []byte(subj), []byte(queue)
	b := l.out.Tail(len(s) + len(q) + 20)
	switch {
	case count <= 0:
		b = natsproto.AppendLSMinus(b, s, q)
	case queue != "":
		b = natsproto.AppendLSPlus(b, s, q, count)
	case count == 1:
		b = natsproto.AppendLSPlus(b, s, nil, 0)
	}
	l.out.Commit(b)
}

// noteDenied logs, once per subject, that the device's permissions (or
// the configured filters) keep a subject from the link.
func (l *link) noteDenied(what, subj string) {
	l.deniedMu.Lock()
	defer l.deniedMu.Unlock()
	key := what + " " + subj
	if l.denied[key] || len(l.denied) > 1024 {
		return
	}
	l.denied[key] = true
	l.u.log.Warn("not permitted on the uplink, kept local", "op", what, "subject", subj)
}

// forward sends a local publish to the hub (reference B.10). Over three
// quarters of maxPending queued, it returns a channel closed once the
// writer drained the queue, on which the local publisher is slowed (at
// most a few milliseconds per read); at maxPending, messages are dropped,
// counted and logged: core NATS is at most once, and a stalled hub must
// not eat the device's memory.
func (l *link) forward(subj, reply, hdr, payload []byte, localGroups []string) (bool, chan struct{}) {
	if !l.up.Load() {
		return false, nil
	}
	res := l.remote.MatchBytes(subj)
	if res.Empty() {
		return false, nil
	}
	if !l.send.allows(subj) {
		l.noteDenied("publish", string(subj))
		return false, nil
	}
	if len(hdr)+len(payload) > l.maxPayload {
		l.noteDenied("publish over the hub's max_payload", string(subj))
		return false, nil
	}
	var queues [][]byte
	for _, g := range res.Groups {
		if !contains(localGroups, g.Queue) {
			queues = append(queues, []byte(g.Queue))
		}
	}
	if len(res.Plain) == 0 && len(queues) == 0 {
		return false, nil
	}
	size := len(subj) + len(reply) + len(hdr) + len(payload) + 40
	for _, q := range queues {
		size += len(q) + 1
	}
	l.outMu.Lock()
	if l.closed {
		l.outMu.Unlock()
		return false, nil
	}
	if l.out.Len() > maxPending {
		l.outMu.Unlock()
		l.noteDropped()
		return false, nil
	}
	b := l.out.Tail(size)
	if len(hdr) > 0 {
		b = natsproto.AppendLHMsg(b, subj, reply, queues, hdr, payload)
	} else {
		b = natsproto.AppendLMsg(b, subj, reply, queues, payload)
	}
	l.out.Commit(b)
	var drained chan struct{}
	if l.out.Len() > maxPending/4*3 {
		if l.drained == nil {
			l.drained = make(chan struct{})
		}
		drained = l.drained
	}
	l.outMu.Unlock()
	l.signalFlush()
	l.u.stats.msgsOut.Add(1)
	return true, drained
}

// noteDropped counts a message dropped for a full link queue and says so,
// at most every few seconds.
func (l *link) noteDropped() {
	n := l.u.stats.dropped.Add(1)
	now := time.Now().UnixNano()
	if last := l.lastDropLog.Load(); now-last > int64(dropLogEvery) && l.lastDropLog.CompareAndSwap(last, now) {
		l.u.log.Warn("uplink queue full, dropping messages for the hub", "dropped_total", n, "queued_bytes", maxPending)
	}
}

const dropLogEvery = 5 * time.Second

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// The natsproto.Handler methods for what the hub sends.

func (l *link) OnInfo(js []byte) error {
	var info hubInfo
	if err := json.Unmarshal(js, &info); err != nil {
		return fmt.Errorf("bad INFO from hub: %w", err)
	}
	if len(info.LeafnodeURLs) > 0 {
		l.u.setDiscovered(info.LeafnodeURLs)
	}
	if info.LameDuckMode {
		l.lameDuck.Store(true)
	}
	switch {
	case l.phase == phaseInfo:
		l.info = info
		l.phase = phaseConnectInfo
	case l.phase == phaseConnectInfo && info.ConnectInfo:
		l.account, l.hubName = info.RemoteAccount, info.ServerName
		l.imports = info.Import
		l.send = newSendFilter(info.Export, l.u.cfg.Up)
		l.maxPayload = int(info.MaxPayload)
		if l.maxPayload <= 0 {
			l.maxPayload = natsproto.DefaultMaxPayload
		}
		l.parser.SetMaxPayload(l.maxPayload)
		l.phase = phaseUp
	}
	return nil
}

func (l *link) OnPing() error {
	l.queue(pongLine)
	return nil
}

func (l *link) OnPong() error {
	l.pingsOut.Store(0)
	return nil
}

func (l *link) OnErr(text []byte) error {
	l.hubErr = string(text)
	t := strings.ToLower(l.hubErr)
	switch {
	case strings.Contains(t, "loop detected"), strings.Contains(t, "same cluster name"):
		l.holdOff = 30 * time.Second
	case strings.Contains(t, "minimum version"):
		l.holdOff = 5 * time.Second
	}
	if l.phase == phaseUp {
		l.u.log.Warn("hub reported an error", "err", l.hubErr)
	}
	return nil
}

func (l *link) OnLSPlus(subj, queue []byte, weight int) error {
	key := subject.Key{Subject: string(subj), Queue: string(queue)}
	sub := &subject.Sub[struct{}]{Subject: key.Subject, Queue: key.Queue, Weight: weight}
	old := l.remoteKeys[key]
	var err error
	if old != nil {
		err = l.remote.Replace(old, sub)
	} else {
		err = l.remote.Insert(sub)
	}
	if err != nil {
		// nats-server answers an invalid LS+ with an error and goes on.
		l.u.log.Debug("ignoring invalid interest from hub", "subject", key.Subject, "err", err)
		return nil
	}
	l.remoteKeys[key] = sub
	return nil
}

func (l *link) OnLSMinus(subj, queue []byte) error {
	key := subject.Key{Subject: string(subj), Queue: string(queue)}
	if old := l.remoteKeys[key]; old != nil {
		delete(l.remoteKeys, key)
		l.remote.Remove(old)
	}
	return nil
}

func (l *link) OnLMsg(subj, reply []byte, queues [][]byte, payload []byte) error {
	l.deliver(subj, reply, queues, nil, payload)
	return nil
}

func (l *link) OnLHMsg(subj, reply []byte, queues [][]byte, hdr, payload []byte) error {
	l.deliver(subj, reply, queues, hdr, payload)
	return nil
}

func (l *link) deliver(route, reply []byte, queues [][]byte, hdr, payload []byte) {
	subj := route
	if s, r, ok := splitJSAck(reply); ok {
		subj, reply = s, r
	}
	if l.u.srv.Deliver(&l.batch, route, subj, reply, hdr, payload, queues) {
		l.u.stats.msgsIn.Add(1)
	}
}

// splitJSAck undoes the hub's rewrite of a JetStream delivery that crosses
// a leaf link (reference B.11): the reply "$JS.ACK.<...>@<subject>" carries
// the stream subject the client must see. The "@" counts only after at
// least 8 dots and not as the last byte; the first such "@" wins, since
// stream and consumer names may contain "@".
func splitJSAck(reply []byte) (subj, ack []byte, ok bool) {
	if !bytes.HasPrefix(reply, prefixJSAck) {
		return nil, nil, false
	}
	dots := 0
	for i, b := range reply {
		switch {
		case b == '.':
			dots++
		case b == '@' && dots >= 8 && i < len(reply)-1:
			return reply[i+1:], reply[:i], true
		}
	}
	return nil, nil, false
}
