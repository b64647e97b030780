// Package downlink brings a device's commands down from the hub. The hub
// keeps them in its COMMANDS stream (subjects cmd.<device>.>) while the
// device is away; when the link is up, the leaf pulls them through a
// durable consumer named after the device, writes each to its store,
// acknowledges it to the hub only once it is on disk, and then delivers
// it to local subscribers (NATS clients and, through the bridge, MQTT) on
// its own subject. Commands arrive in order and once: a redelivery the
// hub makes because an acknowledgement was lost is recognised by its
// stream sequence, and a command stored but not yet delivered when the
// power went is delivered after the restart.
package downlink

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/canopy-iot/canopy/internal/config"
	"github.com/canopy-iot/canopy/internal/logging"
	"github.com/canopy-iot/canopy/leaf/natsd"
	"github.com/canopy-iot/canopy/leaf/stream"
	"github.com/canopy-iot/canopy/store"
)

// Config is the `commands:` block of leaf.yaml.
type Config struct {
	// Enabled pulls commands while the uplink is configured. Default: on
	// when the uplink authenticates with credentials (see leaf.Config).
	Enabled *bool `yaml:"enabled"`
	// Stream is the hub's command stream. Default COMMANDS.
	Stream string `yaml:"stream"`
	// Domain is the JetStream domain the leaf addresses the hub's
	// JetStream by, as for streams (streams[].upstream.domain). Default
	// "canopy"; "none" for the plain $JS.API prefix.
	Domain string `yaml:"domain"`
	// Batch is how many commands one pull asks for. Default 64.
	Batch int `yaml:"batch"`
}

// Defaults.
const (
	DefaultStream = "COMMANDS"
	DefaultBatch  = 64
)

// WithDefaults returns c with every unset field at its default.
func (c Config) WithDefaults() Config {
	if c.Enabled == nil {
		on := true
		c.Enabled = &on
	}
	if c.Stream == "" {
		c.Stream = DefaultStream
	}
	if c.Batch == 0 {
		c.Batch = DefaultBatch
	}
	if c.Domain == "" {
		c.Domain = stream.DefaultDomain
	}
	return c
}

// On reports whether commands are pulled (given an uplink).
func (c Config) On() bool { return c.Enabled == nil || *c.Enabled }

// Validate reports the block's problems, with paths relative to it.
func (c Config) Validate() error {
	var errs config.List
	if c.Stream != "" && !validToken(c.Stream) {
		errs.Addf("stream", "%q is not a JetStream stream name", c.Stream)
	}
	if c.Domain != "" && !validToken(c.Domain) {
		errs.Addf("domain", "%q is not a JetStream domain", c.Domain)
	}
	if c.Batch < 0 || c.Batch > 1024 {
		errs.Addf("batch", "must be between 1 and 1024")
	}
	return errs.Err()
}

func validToken(s string) bool {
	for _, r := range s {
		if !(r == '-' || r == '_' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
			return false
		}
	}
	return s != ""
}

// Link is what the downlink needs to know of the uplink.
type Link interface {
	Up() bool
	// Generation changes whenever the link was re-established.
	Generation() uint64
}

// Downlink pulls the device's commands.
type Downlink struct {
	cfg    Config
	device string
	in     *natsd.Internal
	link   Link
	table  *store.Table
	log    *slog.Logger
	inbox  string
	api    string
	warn   logging.Every

	mu      sync.Mutex
	last    uint64 // stream sequence of the last command taken
	waiting int    // stored commands nobody has received yet
	replies chan reply
}

type reply struct {
	kind         string // "create" or "msg"
	subject      string
	ack          string // the reply subject
	hdr, payload []byte
}

// Store keys. Pending commands are kept under pendingPrefix + their
// stream sequence (zero-padded, so that keys sort in order) until they
// are delivered; lastKey holds the stream sequence of the last command
// taken, so redeliveries are recognised after the pending entry is gone.
const (
	pendingPrefix = "pending/"
	lastKey       = "last"
)

// New prepares the downlink for device; st holds its state (a table
// named "commands").
func New(cfg Config, device string, st *store.Store, srv *natsd.Server, link Link, log *slog.Logger) (*Downlink, error) {
	cfg = cfg.WithDefaults()
	t, err := st.Table("commands")
	if err != nil {
		return nil, fmt.Errorf("commands: %w", err)
	}
	api := stream.APIPrefix(cfg.Domain)
	d := &Downlink{
		cfg: cfg, device: device, in: srv.NewInternal("commands"), link: link, table: t,
		log:     log.With("component", "commands"),
		inbox:   "_INBOX." + device + "." + strconv.FormatInt(time.Now().UnixNano(), 36) + ".cmd",
		api:     api,
		warn:    logging.Every{Interval: time.Minute},
		replies: make(chan reply, 4*cfg.Batch),
	}
	if v, ok, err := t.Get(lastKey); err != nil {
		return nil, fmt.Errorf("commands: %w", err)
	} else if ok && len(v) == 8 {
		d.last = binary.BigEndian.Uint64(v)
	}
	return d, nil
}

// Run delivers what an earlier run stored but did not deliver, then pulls
// commands whenever the link is up, until ctx ends.
func (d *Downlink) Run(ctx context.Context) error {
	defer d.in.Close()
	if err := d.deliverPending(); err != nil {
		return err
	}
	unsub, err := d.in.Subscribe(d.inbox+".*", "", func(subj, rep, hdr, payload []byte) {
		// A command comes with its own subject (the uplink restores it
		// from the acknowledgement subject, where the hub put it); the
		// hub's answers come on the inbox.
		r := reply{kind: "msg", subject: string(subj), ack: string(rep),
			hdr: append([]byte(nil), hdr...), payload: append([]byte(nil), payload...)}
		if rest, ok := strings.CutPrefix(r.subject, d.inbox+"."); ok {
			r.kind = rest
		}
		// Never block the link's reader: a command dropped here is
		// redelivered by the hub after the consumer's ack wait.
		select {
		case d.replies <- r:
		default:
		}
	})
	if err != nil {
		return fmt.Errorf("commands: %w", err)
	}
	defer unsub()
	var ready uint64 // link generation the consumer was made on
	for ctx.Err() == nil {
		if !d.link.Up() {
			if !sleep(ctx, 100*time.Millisecond) {
				break
			}
			continue
		}
		if g := d.link.Generation(); g != ready {
			if err := d.ensureConsumer(ctx); err != nil {
				if ok, n := d.warn.Allow(); ok {
					d.log.Warn("cannot set up the command consumer on the hub; retrying", "stream", d.cfg.Stream, "err", err, "suppressed", n)
				}
				if !sleep(ctx, 2*time.Second) {
					break
				}
				continue
			}
			ready = g
		}
		if d.stalled() {
			// Nobody on the device listens yet: keep the rest on the hub.
			if err := d.deliverPending(); err != nil {
				return err
			}
			if d.stalled() && !sleep(ctx, 250*time.Millisecond) {
				break
			}
			continue
		}
		if err := d.pull(ctx); err != nil && ctx.Err() == nil {
			d.log.Debug("command pull ended", "err", err)
			sleep(ctx, 200*time.Millisecond)
		}
	}
	return nil
}

func (d *Downlink) stalled() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.waiting > 0
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

func (d *Downlink) filter() string { return "cmd." + d.device + ".>" }

// ensureConsumer creates the device's durable consumer, or finds it as
// it is: creating it again with the same configuration is a no-op.
func (d *Downlink) ensureConsumer(ctx context.Context) error {
	req, _ := json.Marshal(map[string]any{
		"stream_name": d.cfg.Stream,
		"config": map[string]any{
			"durable_name":   d.device,
			"filter_subject": d.filter(),
			"ack_policy":     "explicit",
			"deliver_policy": "all",
			"ack_wait":       int64(ackWait),
			// One command in flight keeps them in order: a pull request
			// the hub still holds for an earlier link (it assumes interest
			// for a young request) may swallow a command; the hub then
			// redelivers that one after ack_wait, before any later one.
			"max_ack_pending": 1,
		},
	})
	subj := fmt.Sprintf("%s.CONSUMER.CREATE.%s.%s.%s", d.api, d.cfg.Stream, d.device, d.filter())
	d.drain()
	if !d.in.Publish([]byte(subj), []byte(d.inbox+".create"), nil, req) {
		return errors.New("the hub does not serve JetStream here")
	}
	for {
		r, err := d.next(ctx, 5*time.Second)
		if err != nil {
			return err
		}
		if r.kind != "create" {
			continue // a late message of an earlier pull: it will be redelivered
		}
		var resp struct {
			Error *struct {
				Description string `json:"description"`
			} `json:"error"`
		}
		if err := json.Unmarshal(r.payload, &resp); err != nil {
			return fmt.Errorf("unreadable answer: %q", r.payload)
		}
		if resp.Error != nil {
			return errors.New(resp.Error.Description)
		}
		return nil
	}
}

// drain drops stale replies.
func (d *Downlink) drain() {
	for {
		select {
		case <-d.replies:
		default:
			return
		}
	}
}

var errTimeout = errors.New("no answer from the hub")

func (d *Downlink) next(ctx context.Context, wait time.Duration) (reply, error) {
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case r := <-d.replies:
		return r, nil
	case <-ctx.Done():
		return reply{}, ctx.Err()
	case <-t.C:
		return reply{}, errTimeout
	}
}

// ackWait is how long the hub waits for a command's acknowledgement
// before delivering it again.
const ackWait = 10 * time.Second

// pullExpiry is how long one pull waits at the hub for commands; a
// command sent meanwhile arrives at once.
const pullExpiry = 5 * time.Second

// pull asks for a batch and takes what comes until the pull ends (the
// hub's 408/404 status, or silence past the expiry).
func (d *Downlink) pull(ctx context.Context) error {
	req, _ := json.Marshal(map[string]any{"batch": d.cfg.Batch, "expires": int64(pullExpiry)})
	subj := fmt.Sprintf("%s.CONSUMER.MSG.NEXT.%s.%s", d.api, d.cfg.Stream, d.device)
	gen := d.link.Generation()
	if !d.in.Publish([]byte(subj), []byte(d.inbox+".msg"), nil, req) {
		return errors.New("link down")
	}
	got := 0
	for got < d.cfg.Batch {
		r, err := d.next(ctx, pullExpiry+2*time.Second)
		if err != nil {
			return err
		}
		if r.kind != "msg" {
			continue
		}
		if status(r.hdr) != "" {
			return nil // 404 no messages, 408 expired, 409: the pull is over
		}
		if err := d.take(r); err != nil {
			return err
		}
		got++
		if d.stalled() {
			// The rest of the batch is redelivered after ack_wait; take
			// recognises nothing of it as new until it is delivered.
			return nil
		}
		if d.link.Generation() != gen {
			return errors.New("link re-established")
		}
	}
	return nil
}

// status returns the status code of a header-only JetStream answer
// ("NATS/1.0 404 No Messages"), "" for a message.
func status(hdr []byte) string {
	line, _, _ := strings.Cut(string(hdr), "\r\n")
	code, ok := strings.CutPrefix(line, "NATS/1.0 ")
	if !ok {
		return ""
	}
	code, _, _ = strings.Cut(code, " ")
	return code
}

// take stores a command, acknowledges it to the hub and delivers it.
func (d *Downlink) take(r reply) error {
	ack, subj, ok := splitAck(r.ack)
	if !ok {
		return fmt.Errorf("command without a JetStream acknowledgement subject (%q)", r.ack)
	}
	if subj == "" {
		subj = r.subject
	}
	seq, ok := streamSeq(ack)
	if !ok {
		return fmt.Errorf("unreadable acknowledgement subject %q", ack)
	}
	d.mu.Lock()
	dup := seq <= d.last
	d.mu.Unlock()
	if dup {
		// Taken before; its acknowledgement got lost on the way.
		d.ack(ack)
		return nil
	}
	// The command and the sequence that marks it taken are on disk
	// before the hub hears of it.
	var last [8]byte
	binary.BigEndian.PutUint64(last[:], seq)
	if err := d.table.Put(pendingKey(seq), stream.EncodeRecord([]byte(subj), r.hdr, r.payload)); err != nil {
		return fmt.Errorf("store command: %w", err)
	}
	if err := d.table.Put(lastKey, last[:]); err != nil {
		return fmt.Errorf("store command: %w", err)
	}
	d.mu.Lock()
	d.last = seq
	d.mu.Unlock()
	d.ack(ack)
	return d.deliverPending()
}

// ack tells the hub a command is safe on the device. A lost ack is
// harmless: the hub redelivers and take recognises the sequence.
func (d *Downlink) ack(subject string) {
	d.in.Publish([]byte(subject), nil, nil, []byte("+ACK"))
}

// deliverPending hands stored commands, in order, to local subscribers
// only (they must not go back up to the hub, which stores cmd.> itself)
// and forgets each once delivered. It stops at the first command nobody
// on the device listens to: commands wait on the device (and, as the
// downlink stops pulling, on the hub) until an application subscribes.
// At start it also finds what a previous run stored but did not deliver.
func (d *Downlink) deliverPending() error {
	type pending struct {
		seq uint64
		rec []byte
	}
	var todo []pending
	err := d.table.Range(pendingPrefix, func(key string, value []byte) error {
		seq, err := strconv.ParseUint(strings.TrimPrefix(key, pendingPrefix), 10, 64)
		if err != nil {
			return fmt.Errorf("bad key %q", key)
		}
		todo = append(todo, pending{seq, append([]byte(nil), value...)})
		return nil
	})
	if err != nil {
		return fmt.Errorf("commands: %w", err)
	}
	done := 0
	for _, p := range todo {
		subj, hdr, payload, err := stream.DecodeRecord(p.rec)
		if err != nil {
			return fmt.Errorf("stored command %d: %w", p.seq, err)
		}
		if !d.in.PublishLocal(subj, nil, hdr, payload) {
			break
		}
		if err := d.table.Delete(pendingKey(p.seq)); err != nil {
			return fmt.Errorf("forget delivered command %d: %w", p.seq, err)
		}
		done++
	}
	d.mu.Lock()
	d.waiting = len(todo) - done
	d.mu.Unlock()
	return nil
}

func pendingKey(seq uint64) string { return fmt.Sprintf("%s%020d", pendingPrefix, seq) }

// splitAck separates the acknowledgement subject from the command's
// subject, which nats-server appends after an '@' when it delivers a
// JetStream message over a leafnode connection (the uplink usually
// restores it already; subject is then "").
func splitAck(reply string) (ack, subject string, ok bool) {
	if !strings.HasPrefix(reply, "$JS.ACK.") {
		return "", "", false
	}
	ack, subject, _ = strings.Cut(reply, "@")
	return ack, subject, true
}

// streamSeq reads the stream sequence from an acknowledgement subject:
// $JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<time>.<pending>,
// or the newer form with <domain>.<account hash> after $JS.ACK and a
// random token at the end.
func streamSeq(ack string) (uint64, bool) {
	t := strings.Split(ack, ".")
	var tok string
	switch {
	case len(t) == 9:
		tok = t[5]
	case len(t) >= 11:
		tok = t[7]
	default:
		return 0, false
	}
	seq, err := strconv.ParseUint(tok, 10, 64)
	return seq, err == nil && seq > 0
}
