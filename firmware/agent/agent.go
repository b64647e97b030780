package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/canopy-iot/canopy/firmware"
)

// Options are what the leaf supplies besides the configuration.
type Options struct {
	// Installers apply firmware, keyed by firmware name (see
	// NewInstallers for the configured file installers). A Desired naming
	// another firmware fails.
	Installers map[string]Installer
	// Healthy is given to a Resumer: it returns nil once this process is
	// fit to keep (for the leaf: its uplink is connected). Default: always
	// healthy.
	Healthy func(context.Context) error
	// Log receives the agent's logs. Default: discarded.
	Log *slog.Logger
}

// DefaultPoll is how often the Desired is read by default (Config.Poll):
// one small request per device, so that a rollout's wave starts within
// it.
const DefaultPoll = 30 * time.Second

// Agent follows one device's desired firmware.
type Agent struct {
	cfg     Config
	device  string
	f       Fetcher
	inst    map[string]Installer
	healthy func(context.Context) error
	log     *slog.Logger
	dir     layout
	limit   *limiter
	conn    signal // fires at every connection to the hub
	ready   chan struct{}
	lan     []*lanServer
	now     func() time.Time // the clock of the maintenance window

	statusMu sync.Mutex
	last     []byte // the last status, sent again after a reconnection
	lastSt   firmware.Status
	unsent   bool // the last status did not reach the hub: sent again at the next read
	poll     time.Duration
}

// Timing. Variables so that tests may shorten them.
var (
	requestTimeout  = 30 * time.Second // one chunk or Desired request
	retryMin        = 1 * time.Second  // after a failed request, doubling to retryMax
	retryMax        = 30 * time.Second
	windowRecheck   = time.Minute
	progressEvery   = 500 * time.Millisecond // downloading status at most this often
	persistEvery    = time.Second            // download state at most this stale
	persistChunks   = 16                     // or after this many chunks
	maxInFlightSize = 1 << 20                // bytes of chunks requested at once
	maxInFlight     = 4
)

// New checks cfg (after defaults) and prepares an agent for device (its
// id at the hub) that reaches the hub through f.
func New(cfg Config, device string, f Fetcher, opts Options) (*Agent, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("firmware: %w", err)
	}
	if cfg.Dir == "" {
		return nil, errors.New("firmware: dir is not set")
	}
	if device == "" {
		return nil, errors.New("firmware: no device id")
	}
	if f == nil {
		return nil, errors.New("firmware: no fetcher")
	}
	if len(cfg.TrustedKeys) == 0 {
		return nil, errors.New("firmware: no trusted keys: nothing could be verified")
	}
	a := &Agent{
		cfg:     cfg,
		device:  device,
		f:       f,
		inst:    opts.Installers,
		healthy: opts.Healthy,
		log:     opts.Log,
		dir:     layout(cfg.Dir),
		limit:   newLimiter(int64(cfg.RateLimit)),
		conn:    newSignal(),
		ready:   make(chan struct{}),
		now:     time.Now,
		poll:    cfg.Poll.Std(),
	}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	a.log = a.log.With("component", "firmware")
	if a.poll <= 0 {
		a.poll = DefaultPoll
	}
	if a.healthy == nil {
		a.healthy = func(context.Context) error { return nil }
	}
	byAddr := map[string]*lanServer{}
	names := make([]string, 0, len(cfg.Installers))
	for name := range cfg.Installers {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		addr := cfg.Installers[name].HTTPListen
		if addr == "" {
			continue
		}
		s := byAddr[addr]
		if s == nil {
			s = newLANServer(addr, a.dir, a.log)
			byAddr[addr] = s
			a.lan = append(a.lan, s)
		}
		s.names[name] = true
	}
	return a, nil
}

// Ready is closed once the LAN servers listen.
func (a *Agent) Ready() <-chan struct{} { return a.ready }

// HTTPAddr is the address that serves firmware name on the LAN (valid
// once Ready), "" when none does.
func (a *Agent) HTTPAddr(name string) string {
	for _, s := range a.lan {
		if s.names[name] {
			return s.Addr()
		}
	}
	return ""
}

// job is the handling of one Desired document.
type job struct {
	doc    []byte
	cancel context.CancelFunc
	done   chan struct{}
}

// Run follows the device's Desired until ctx ends. It returns an error
// only when it cannot start (a LAN listener, the firmware directory).
func (a *Agent) Run(ctx context.Context) error {
	if err := os.MkdirAll(a.cfg.Dir, 0o750); err != nil {
		return fmt.Errorf("firmware: %w", err)
	}
	for i, s := range a.lan {
		if err := s.listen(); err != nil {
			for _, started := range a.lan[:i] {
				started.close()
			}
			return fmt.Errorf("firmware: %w", err)
		}
	}
	var lanWG sync.WaitGroup
	for _, s := range a.lan {
		lanWG.Add(1)
		go func() { defer lanWG.Done(); s.serve() }()
	}
	defer func() {
		for _, s := range a.lan {
			s.close()
		}
		lanWG.Wait()
	}()
	close(a.ready)

	a.resume(ctx)

	var (
		cur     *job
		handled string // desiredKey of the Desired handled last
		retry   = retryMin
	)
	stopJob := func() {
		if cur != nil {
			cur.cancel()
			<-cur.done
			cur = nil
		}
	}
	defer stopJob()
	// consider starts handling d unless that is done or under way. A
	// Desired is handled once per revision: the hub writing it again,
	// even unchanged, retries it (a failed one included); reading the
	// same revision again (every Poll, at each connection, after a
	// restart) only reports what became of it.
	consider := func(d desired) {
		if d.doc == nil { // none, deleted or purged: nothing desired
			if cur != nil {
				a.log.Info("desired firmware withdrawn; stopping")
			}
			stopJob()
			handled = ""
			return
		}
		key := d.key()
		running := cur != nil
		if running {
			select {
			case <-cur.done:
				running = false
			default:
			}
		}
		if running && bytes.Equal(cur.doc, d.doc) {
			handled = key
			return
		}
		if !running && key == handled {
			return
		}
		if f, ok := a.dir.readFailure(); ok && f.Desired == key {
			a.log.Debug("desired firmware failed before; waiting for the hub to write it again", "rollout", f.Status.Rollout)
			a.report(f.Status)
			handled = key
			return
		}
		stopJob()
		handled = key
		jctx, cancel := context.WithCancel(ctx)
		j := &job{doc: d.doc, cancel: cancel, done: make(chan struct{})}
		cur = j
		go func() {
			defer close(j.done)
			a.handle(jctx, ctx, key, d.doc)
		}()
	}

	read := time.NewTimer(0) // the first read, at once
	defer read.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-a.f.Connected():
			a.conn.fire()
			a.resend(true)
			read.Reset(0)
		case <-read.C:
			d, err := a.readDesired(ctx)
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				a.log.Debug("cannot read the desired firmware; retrying", "err", err, "in", retry)
				read.Reset(retry)
				retry = min(2*retry, retryMax, a.poll)
				continue
			}
			retry = retryMin
			read.Reset(a.poll)
			a.resend(false)
			consider(d)
		}
	}
}

// desired is a Desired document as read, with its revision in the KV
// bucket (0 when the reply did not say).
type desired struct {
	doc []byte
	rev uint64
}

// key identifies a write of the Desired: its content and revision.
func (d desired) key() string {
	return desiredID(d.doc) + "@" + strconv.FormatUint(d.rev, 10)
}

// readDesired reads the device's Desired; doc is nil when there is none.
func (a *Agent) readDesired(ctx context.Context) (desired, error) {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	hdr, data, err := a.f.Request(ctx, desiredGetSubject(a.device), nil)
	if err != nil {
		return desired{}, fmt.Errorf("read desired firmware: %w", err)
	}
	st, err := parseStatus(hdr)
	if err != nil {
		return desired{}, fmt.Errorf("read desired firmware: %w", err)
	}
	switch st.code {
	case 0:
	case 404: // never set
		return desired{}, nil
	default:
		return desired{}, fmt.Errorf("read desired firmware: the hub answered %s", st)
	}
	switch headerValue(hdr, "KV-Operation") {
	case "DEL", "PURGE":
		return desired{}, nil
	}
	if len(data) == 0 {
		return desired{}, nil
	}
	rev, _ := strconv.ParseUint(headerValue(hdr, "Nats-Sequence"), 10, 64)
	return desired{doc: data, rev: rev}, nil
}

// report sends a status to the hub: the device's key of the status
// bucket, and the events subject. It returns the status as sent.
func (a *Agent) report(st firmware.Status) firmware.Status {
	st.Device = a.device
	st.Updated = a.now().UTC()
	b, err := json.Marshal(st)
	if err != nil {
		a.log.Error("cannot encode a firmware status", "err", err)
		return st
	}
	a.statusMu.Lock()
	prev := a.lastSt
	a.last, a.lastSt = b, st
	// A status that is not sent (the link is down, the hub's interest
	// has not arrived yet) is sent again after the next connection or
	// read: only the last one matters to the bucket. Events are for
	// whoever listens now; nobody listening is no error.
	err = a.f.Publish(statusSubject(a.device), b)
	a.unsent = err != nil
	a.f.Publish(eventsSubject(a.device), b)
	a.statusMu.Unlock()
	if err != nil {
		a.log.Debug("firmware status not sent; it is sent again at the next connection", "err", err)
	}
	if st.State == prev.State && st.Version == prev.Version && st.Reason == prev.Reason {
		return st
	}
	attrs := []any{"name", st.Name, "version", st.Version, "state", st.State, "rollout", st.Rollout}
	switch st.State {
	case firmware.StateFailed, firmware.StateRolledBack:
		a.log.Warn("firmware update failed", append(attrs, "reason", st.Reason)...)
	default:
		if st.Reason != "" {
			attrs = append(attrs, "reason", st.Reason)
		}
		a.log.Info("firmware update", attrs...)
	}
	return st
}

// resend sends the last status again: what was published while the
// link was down never reached the bucket. always false sends it only
// when it was not sent.
func (a *Agent) resend(always bool) {
	a.statusMu.Lock()
	defer a.statusMu.Unlock()
	if a.last != nil && (always || a.unsent) {
		a.unsent = a.f.Publish(statusSubject(a.device), a.last) != nil
	}
}

// resume lets the installers that work across restarts report the
// outcome of an install the previous process began.
func (a *Agent) resume(ctx context.Context) {
	names := make([]string, 0, len(a.inst))
	for name := range a.inst {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		p, hasPending := a.dir.readPending(name)
		r, ok := a.inst[name].(Resumer)
		if !ok {
			if hasPending { // an installer that cannot resume: nothing is pending
				os.Remove(a.dir.pendingPath(name))
			}
			continue
		}
		st, ok := r.Resume(ctx, a.healthy)
		if !ok {
			if hasPending {
				// The process ended before the installer arranged the
				// restart: the install is retried from the staged file.
				a.log.Info("an interrupted install is retried", "name", name, "version", p.Version)
				os.Remove(a.dir.pendingPath(name))
			}
			continue
		}
		if st.Name == "" {
			st.Name = name
		}
		if hasPending && st.Rollout == "" {
			var d firmware.Desired
			if json.Unmarshal(p.Desired, &d) == nil {
				st.Rollout = d.Rollout
			}
		}
		if hasPending && st.Version == p.Version {
			if st.State == firmware.StateApplied {
				if err := a.promote(name, p.Signed, p.Staged); err != nil {
					a.log.Warn("cannot record the applied firmware", "name", name, "err", err)
				}
			} else {
				// Not retried by a read at start or reconnection.
				if err := a.dir.writeFailure(failure{Desired: p.Key, Status: st}); err != nil {
					a.log.Warn("cannot record a failed update", "err", err)
				}
				os.Remove(a.dir.pendingPath(name))
			}
		}
		if rec, ok := a.dir.readInstalled(name); ok && st.Running == "" {
			st.Running = rec.m.Version
		}
		a.report(st)
	}
}

// promote records name's applied firmware: the staged artifact (when the
// installer left it) becomes installed/<name>/artifact, for chunk reuse
// and LAN serving, and the signed manifest says which version it is. The
// artifact goes first: a crash between the two leaves the old version
// recorded, and the next download of the new one reuses every chunk.
func (a *Agent) promote(name string, signed []byte, staged string) error {
	dir := a.dir.installedDir(name)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return err
	}
	art := a.dir.installedArtifact(name)
	if _, err := os.Stat(staged); err == nil {
		if err := renameDurable(staged, art); err != nil {
			return fmt.Errorf("keep the applied artifact: %w", err)
		}
	} else if err := os.Remove(art); err != nil && !errors.Is(err, os.ErrNotExist) {
		// The old artifact must not be served as the new version.
		return fmt.Errorf("remove the replaced artifact: %w", err)
	}
	if err := writeFileAtomic(a.dir.installedManifest(name), signed, 0o640); err != nil {
		return err
	}
	os.Remove(a.dir.pendingPath(name))
	return nil
}

// signal is a broadcast: wait returns a channel closed at the next fire.
type signal struct {
	mu sync.Mutex
	ch chan struct{}
}

func newSignal() signal { return signal{ch: make(chan struct{})} }

func (s *signal) wait() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ch
}

func (s *signal) fire() {
	s.mu.Lock()
	defer s.mu.Unlock()
	close(s.ch)
	s.ch = make(chan struct{})
}

// cleanOthers removes the downloads and staged artifacts of name's other
// versions: only one version of a firmware is wanted at a time.
func (a *Agent) cleanOthers(m firmware.Manifest) {
	keep := map[string]bool{
		a.dir.partPath(m): true, a.dir.statePath(m): true, a.dir.stagedPath(m): true,
	}
	for _, dir := range []string{a.dir.downloadDir(m.Name), a.dir.stagedDir(m.Name)} {
		entries, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
		for _, e := range entries {
			p := filepath.Join(dir, e.Name())
			if !keep[p] {
				os.Remove(p)
			}
		}
	}
}
