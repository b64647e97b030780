package leaf

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/canopy-iot/canopy/firmware"
	"github.com/canopy-iot/canopy/firmware/agent"
	"github.com/canopy-iot/canopy/leaf/natsd"
)

// The firmware agent reaches the hub through the local server's internal
// client: its requests and publishes go up the uplink like any local
// client's, with the device's permissions at the hub.

// hubLink is what the fetcher needs of the uplink.
type hubLink interface {
	Up() bool
	Generation() uint64
}

// Errors of the fetcher: the agent retries after either.
var (
	errLinkDown     = errors.New("the link to the hub is down")
	errNotDelivered = errors.New("the hub has no interest in the subject (yet)")
)

// linkPoll is how often the fetcher looks for a new connection of the
// uplink, which has no event for it.
const linkPoll = 200 * time.Millisecond

// firmwareFetcher implements agent.Fetcher.
type firmwareFetcher struct {
	in        *natsd.Internal
	link      hubLink
	inbox     string // _INBOX.<device>.<random>: under the device's _INBOX.<device>.>
	connected chan struct{}
	states    firmwareStates // what the agent reported, for the monitor

	mu      sync.Mutex
	next    uint64
	waiting map[string]waiter // by reply token
}

// waiter is a request waiting for its reply on link gen.
type waiter struct {
	ch  chan fetchReply
	gen uint64
}

var _ agent.Fetcher = (*firmwareFetcher)(nil)

type fetchReply struct {
	hdr, data []byte
	err       error
}

// newFirmwareFetcher subscribes to its inbox at once: the agent may ask
// before watch runs. close ends the subscription.
func newFirmwareFetcher(srv *natsd.Server, link hubLink, device string) (*firmwareFetcher, error) {
	b := make([]byte, 8)
	rand.Read(b)
	f := &firmwareFetcher{
		in:        srv.NewInternal("firmware"),
		link:      link,
		inbox:     "_INBOX." + device + "." + hex.EncodeToString(b),
		connected: make(chan struct{}, 1),
		states:    firmwareStates{subject: firmware.EventsPrefix + device},
		waiting:   map[string]waiter{},
	}
	if _, err := f.in.Subscribe(f.inbox+".*", "", f.onReply); err != nil {
		return nil, fmt.Errorf("firmware: subscribe to its inbox: %w", err)
	}
	return f, nil
}

func (f *firmwareFetcher) close() { f.in.Close() }

// watch tells the agent of every new connection of the uplink until ctx
// ends.
func (f *firmwareFetcher) watch(ctx context.Context) {
	t := time.NewTicker(linkPoll)
	defer t.Stop()
	var seen uint64
	for {
		g, up := f.link.Generation(), f.link.Up()
		if g != seen && up {
			seen = g
			select {
			case f.connected <- struct{}{}:
			default:
			}
		}
		// A reply never crosses a link that went down: the requests sent
		// on it fail now rather than at their timeout.
		f.mu.Lock()
		for token, w := range f.waiting {
			if !up || w.gen != g {
				w.ch <- fetchReply{err: errLinkDown}
				delete(f.waiting, token)
			}
		}
		f.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// onReply runs on the uplink's goroutine: it copies and hands over.
func (f *firmwareFetcher) onReply(subj, _, hdr, payload []byte) {
	token := string(subj[len(f.inbox)+1:])
	f.mu.Lock()
	w, ok := f.waiting[token]
	delete(f.waiting, token)
	f.mu.Unlock()
	if ok {
		w.ch <- fetchReply{hdr: append([]byte(nil), hdr...), data: append([]byte(nil), payload...)}
	}
}

func (f *firmwareFetcher) Request(ctx context.Context, subject string, payload []byte) ([]byte, []byte, error) {
	if !f.link.Up() {
		return nil, nil, errLinkDown
	}
	// Buffered: whoever answers (the reply or the link watch) removes
	// the waiter first, so one value at most is sent.
	ch := make(chan fetchReply, 1)
	f.mu.Lock()
	f.next++
	token := strconv.FormatUint(f.next, 10)
	f.waiting[token] = waiter{ch: ch, gen: f.link.Generation()}
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		delete(f.waiting, token)
		f.mu.Unlock()
	}()
	if !f.in.Publish([]byte(subject), []byte(f.inbox+"."+token), nil, payload) {
		return nil, nil, errNotDelivered
	}
	select {
	case <-ctx.Done():
		return nil, nil, ctx.Err()
	case r := <-ch:
		return r.hdr, r.data, r.err
	}
}

func (f *firmwareFetcher) Publish(subject string, payload []byte) error {
	f.states.note(subject, payload)
	if !f.link.Up() {
		return errLinkDown
	}
	if !f.in.Publish([]byte(subject), nil, nil, payload) {
		return errNotDelivered
	}
	return nil
}

func (f *firmwareFetcher) Connected() <-chan struct{} { return f.connected }

// healthy returns nil once the uplink is up: a new canopy-leaf that
// reaches its hub is fit to keep.
func (f *firmwareFetcher) healthy(ctx context.Context) error {
	t := time.NewTicker(linkPoll)
	defer t.Stop()
	for !f.link.Up() {
		select {
		case <-ctx.Done():
			return errors.New("the uplink did not connect")
		case <-t.C:
		}
	}
	return nil
}

// ErrRestart is what Run returns when a self-update arranged for the
// process to restart into the new canopy-leaf: main exits non-zero and
// the service manager starts it again.
var ErrRestart = errors.New("restarting into the updated canopy-leaf")

// firmwarePart is the firmware agent of a node and what it runs on.
type firmwarePart struct {
	agent   *agent.Agent
	fetcher *firmwareFetcher
	restart chan struct{} // closed when a self installer asks for a restart
	once    sync.Once
	cancel  context.CancelFunc
	done    chan error
}

// startFirmware runs the firmware agent when firmware is on and the leaf
// has a hub, once the local server runs, and returns when the agent
// serves (its LAN listeners are bound).
func (n *Node) startFirmware() error {
	cfg := n.cfg.Firmware
	if !cfg.On() || n.uplink == nil {
		return nil
	}
	f, err := newFirmwareFetcher(n.nats, n.uplink, n.device)
	if err != nil {
		return err
	}
	p := &firmwarePart{fetcher: f, restart: make(chan struct{})}
	installers := agent.NewInstallers(cfg, n.log)
	if self := agent.SelfFor(cfg, n.cfg.DataDir); self != nil {
		self.Log = n.log.With("component", "firmware")
		self.Restart = func() error {
			p.once.Do(func() { close(p.restart) })
			return nil
		}
		for name, ic := range cfg.Installers {
			if ic.Type == agent.TypeSelf {
				installers[name] = self
			}
		}
	}
	p.agent, err = agent.New(cfg, n.device, f, agent.Options{Installers: installers, Healthy: f.healthy, Log: n.log})
	if err != nil {
		f.close()
		return err
	}
	if err := p.start(); err != nil {
		return err
	}
	n.firmware = p
	return nil
}

// start runs the agent; stop ends it (a no-op without one).
func (p *firmwarePart) start() error {
	ctx, cancel := context.WithCancel(context.Background())
	p.cancel, p.done = cancel, make(chan error, 1)
	go p.fetcher.watch(ctx)
	go func() { p.done <- p.agent.Run(ctx) }()
	select {
	case <-p.agent.Ready():
		return nil
	case err := <-p.done:
		cancel()
		p.fetcher.close()
		p.cancel = nil
		return err
	}
}

func (p *firmwarePart) stop() {
	if p == nil || p.cancel == nil {
		return
	}
	p.cancel()
	<-p.done
	p.fetcher.close()
	p.cancel = nil
}

// restarting is closed when a self-update wants the process restarted.
func (p *firmwarePart) restarting() <-chan struct{} {
	if p == nil {
		return nil
	}
	return p.restart
}
