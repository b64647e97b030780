package uplink

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/canopy-iot/canopy/leaf/natsd"
	"github.com/canopy-iot/canopy/leaf/subject"
)

// Server is what the uplink needs from the local server (*natsd.Server).
type Server interface {
	Deliver(b *natsd.Batch, route, subj, reply, hdr, payload []byte, queues [][]byte) bool
	LockedInterest(fn func(keys iter.Seq2[subject.Key, int]))
}

var _ Server = (*natsd.Server)(nil)
var _ natsd.Uplink = (*Uplink)(nil)

// stableAfter is how long a connection must last for the backoff to start
// over: a hub that accepts and then drops the link at once must not be
// hammered.
const stableAfter = 10 * time.Second

// Uplink keeps one leafnode connection to the hub up.
type Uplink struct {
	cfg  Config
	log  *slog.Logger
	srv  Server
	down *filter // the configured down list, nil when unset
	// local are filters whose messages reach the device another way
	// (its commands, pulled from a stream): interest within them is not
	// announced, or each would arrive twice.
	local []string

	cur atomic.Pointer[link] // the ready connection, or nil

	urlMu      sync.Mutex
	configured []*url.URL
	discovered []string // host:port from the hub's leafnode_urls
	next       int

	stats     counters
	errMu     sync.Mutex
	lastError string // last failure, for Stats and log de-duplication
}

// New checks cfg (after defaults; name is the leaf's server_name) and
// prepares the link to the hub; srv is the local server.
func New(cfg Config, name string, srv Server, log *slog.Logger) (*Uplink, error) {
	cfg = cfg.WithDefaults(name)
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	u := &Uplink{cfg: cfg, log: log.With("component", "uplink"), srv: srv}
	for _, raw := range cfg.URLs {
		p, _ := parseURL(raw) // validated
		u.configured = append(u.configured, p)
	}
	if len(cfg.Down) > 0 {
		u.down = &filter{Allow: cfg.Down}
	}
	return u, nil
}

// KeepLocal stops local interest within filter from being announced to
// the hub. Call it before Run.
func (u *Uplink) KeepLocal(filter string) { u.local = append(u.local, filter) }

func (u *Uplink) keptLocal(subj string) bool {
	for _, f := range u.local {
		if subject.SubsetOf(subj, f) {
			return true
		}
	}
	return false
}

// Run keeps the link up until ctx ends.
func (u *Uplink) Run(ctx context.Context) error {
	attempt := 0
	for ctx.Err() == nil {
		target := u.pickURL()
		started := time.Now()
		l, err := u.connect(ctx, target)
		cleanClose := false
		if err == nil {
			u.linkUp(l)
			err = l.serve(ctx)
			u.linkDown(l, err)
			lasted := time.Since(started)
			if lasted >= stableAfter {
				attempt = 0
			}
			// A hub that closes an established link without an error is
			// going away on purpose (lame duck mode, a restart): try the
			// next node at once. Not for a link that dies as soon as it is
			// up, which would make a hot loop.
			cleanClose = errors.Is(err, io.EOF) && l.hubErr == "" && lasted >= time.Second
		}
		if ctx.Err() != nil {
			return nil
		}
		u.noteFailure(target, err)
		delay := u.backoff(attempt)
		switch {
		case l != nil && l.holdOff > 0:
			delay = l.holdOff
		case cleanClose || (l != nil && l.lameDuck.Load()):
			delay = 0
		}
		u.rotateURL()
		attempt++
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(delay):
		}
	}
	return nil
}

// backoff is the wait before attempt n+1: doubling from ReconnectMin up to
// ReconnectMax, then taken at random in its upper half so that a fleet
// whose hub restarted does not come back in lockstep. It never exceeds
// ReconnectMax, which therefore bounds how long a restored link stays
// unused.
func (u *Uplink) backoff(n int) time.Duration {
	d := u.cfg.ReconnectMin.Std()
	for range min(n, 30) {
		d *= 2
		if d >= u.cfg.ReconnectMax.Std() {
			d = u.cfg.ReconnectMax.Std()
			break
		}
	}
	return d/2 + rand.N(d/2+1)
}

// target is one hub address to try, with the configured URL it came from
// (for credentials and the TLS server name).
type target struct {
	url    *url.URL
	origin *url.URL
}

func (t target) String() string { return t.url.Redacted() }

func (u *Uplink) pickURL() target {
	u.urlMu.Lock()
	defer u.urlMu.Unlock()
	all := len(u.configured) + len(u.discovered)
	i := u.next % all
	if i < len(u.configured) {
		return target{url: u.configured[i], origin: u.configured[i]}
	}
	// A discovered address is a bare host:port: reach it the way the
	// first configured URL says (scheme, credentials, TLS name).
	origin := u.configured[0]
	d := *origin
	d.Host = u.discovered[i-len(u.configured)]
	return target{url: &d, origin: origin}
}

// rotateURL moves to the next address after a failure. After a success
// the link stays on the address that works: it does not return to the
// first URL, which would make it flap between nodes.
func (u *Uplink) rotateURL() {
	u.urlMu.Lock()
	u.next++
	u.urlMu.Unlock()
}

// setDiscovered records the hub cluster's leafnode addresses.
func (u *Uplink) setDiscovered(addrs []string) {
	u.urlMu.Lock()
	defer u.urlMu.Unlock()
	known := map[string]bool{}
	for _, c := range u.configured {
		known[c.Host] = true
	}
	var fresh []string
	for _, a := range addrs {
		if !known[a] {
			known[a] = true
			fresh = append(fresh, a)
		}
	}
	u.discovered = fresh
}

func (u *Uplink) linkUp(l *link) {
	u.stats.connectedAt.Store(time.Now().UnixNano())
	u.stats.url.Store(l.target.String())
	if u.stats.connects.Add(1) > 1 {
		u.stats.reconnects.Add(1)
	}
	u.errMu.Lock()
	u.lastError = ""
	u.errMu.Unlock()
	u.log.Info("uplink connected", "url", l.target.String(), "account", l.account, "hub", l.hubName)
}

func (u *Uplink) linkDown(l *link, err error) {
	u.cur.CompareAndSwap(l, nil)
	u.stats.connectedAt.Store(0)
	u.log.Info("uplink disconnected", "url", l.target.String(), "err", err)
}

// noteFailure logs why an attempt failed: at warn level when the reason
// changed, at debug level when it is the same as last time, so a hub that
// refuses the device's credentials does not flood the log.
func (u *Uplink) noteFailure(t target, err error) {
	if err == nil {
		err = errors.New("connection closed")
	}
	msg := err.Error()
	u.errMu.Lock()
	same := msg == u.lastError
	u.lastError = msg
	u.errMu.Unlock()
	if same {
		u.log.Debug("uplink connect failed again", "url", t.String(), "err", err)
		return
	}
	if isAuthError(msg) {
		u.log.Error("hub refused the device's credentials", "url", t.String(), "err", err)
		return
	}
	u.log.Warn("uplink connect failed", "url", t.String(), "err", err)
}

func isAuthError(msg string) bool {
	m := strings.ToLower(msg)
	return strings.Contains(m, "authorization violation") || strings.Contains(m, "authentication")
}

// Interest implements natsd.Uplink: announce local interest to the hub.
func (u *Uplink) Interest(subj, queue string, count int) {
	if l := u.cur.Load(); l != nil {
		l.announce(subj, queue, count)
	}
}

// Forward implements natsd.Uplink: send a local publish to the hub where
// the hub has interest and the device may publish.
func (u *Uplink) Forward(subj, reply, hdr, payload []byte, localGroups []string) (bool, chan struct{}) {
	l := u.cur.Load()
	if l == nil {
		return false, nil
	}
	return l.forward(subj, reply, hdr, payload, localGroups)
}

// Stats is the link's state, for status commands and metrics.
type Stats struct {
	Connected  bool
	URL        string    // the hub address of the current or last link
	Since      time.Time // when the current link came up
	Reconnects uint64    // links established after the first
	MsgsIn     uint64    // messages from the hub delivered locally
	MsgsOut    uint64    // messages sent to the hub
	Dropped    uint64    // messages for the hub dropped because the link's queue was full
	BytesIn    uint64
	BytesOut   uint64
	LastError  string // why the last attempt or link failed
}

type counters struct {
	connectedAt                        atomic.Int64
	url                                atomic.Value // string
	connects, reconnects               atomic.Uint64
	msgsIn, msgsOut, bytesIn, bytesOut atomic.Uint64
	dropped                            atomic.Uint64
}

// Stats returns the link's current state.
func (u *Uplink) Stats() Stats {
	s := Stats{
		Reconnects: u.stats.reconnects.Load(),
		MsgsIn:     u.stats.msgsIn.Load(), MsgsOut: u.stats.msgsOut.Load(), Dropped: u.stats.dropped.Load(),
		BytesIn: u.stats.bytesIn.Load(), BytesOut: u.stats.bytesOut.Load(),
	}
	if at := u.stats.connectedAt.Load(); at != 0 && u.cur.Load() != nil {
		s.Connected, s.Since = true, time.Unix(0, at)
	}
	s.URL, _ = u.stats.url.Load().(string)
	u.errMu.Lock()
	s.LastError = u.lastError
	u.errMu.Unlock()
	return s
}

func (u *Uplink) String() string { return fmt.Sprintf("uplink(%s)", u.cfg.Name) }

// KnownURLs lists the hub addresses the link may use: the configured URLs
// and those the hub advertised.
func (u *Uplink) KnownURLs() []string {
	u.urlMu.Lock()
	defer u.urlMu.Unlock()
	var out []string
	for _, c := range u.configured {
		out = append(out, c.Redacted())
	}
	return append(out, u.discovered...)
}

// Up reports whether the link is connected and ready for messages.
func (u *Uplink) Up() bool { return u.cur.Load() != nil }

// Generation counts the links established so far: a change means the link
// went down and up again since it was last read, and whatever awaited an
// answer over the old link will not get one.
func (u *Uplink) Generation() uint64 { return u.stats.connects.Load() }
