package hub

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/canopy-iot/canopy/firmware"
	"github.com/canopy-iot/canopy/hub/fleet"
	"github.com/canopy-iot/canopy/internal/logging"
)

// The rollout controller runs inside every hub node in operator mode (with
// JetStream on). For each tenant of the key directory it connects, in
// process, as the tenant's admin, watches the tenant's "fw-rollouts" and
// "fw-status" buckets and, while it holds the tenant's lease (see
// rolloutLease), drives each running rollout: it writes the Desired of
// each wave's devices into "fw-desired", and halts or completes the
// rollout (see Rollout.Next). Tenants added to the key directory are
// picked up within rolloutTiming.tenantScan, removed ones dropped.

// rolloutTiming are the controller's intervals; tests shorten them.
type rolloutTiming struct {
	tenantScan time.Duration // how often the key directory's tenants are re-read
	leaseTTL   time.Duration // see rolloutLease
	sessions   sessionTiming
}

var defaultRolloutTiming = rolloutTiming{
	tenantScan: 2 * time.Second,
	leaseTTL:   12 * time.Second,
	sessions:   sessionTiming{credsTTL: 24 * time.Hour, retry: time.Second, maxRetry: time.Minute},
}

// rolloutController is the running controller of one hub.
type rolloutController struct {
	log     *slog.Logger
	keys    *fleet.Keys
	connect func(creds []byte, name string) (*nats.Conn, error)
	holder  string
	timing  rolloutTiming

	cancel context.CancelFunc
	done   chan struct{}
}

// rolloutControllers holds each running hub's controller. (A field of Hub
// would do; this keeps the controller in its own files.)
var rolloutControllers sync.Map // *Hub → *rolloutController

// startRollouts starts the rollout controller in operator mode.
func (h *Hub) startRollouts() error {
	h.mu.Lock()
	cfg := h.cfg
	h.mu.Unlock()
	if h.op == nil || cfg.JetStream.Enabled == nil || !*cfg.JetStream.Enabled {
		return nil
	}
	// A key directory of its own, so that the provisioning log names the
	// controller as the actor of the admin credentials it mints.
	keys, err := fleet.Open(cfg.Operator.KeyDir, h.log)
	if err != nil {
		return fmt.Errorf("operator.key_dir: %w", err)
	}
	keys.SetActor("rollout-controller")
	ns := h.ns
	c := &rolloutController{
		log:    h.log.With("component", "rollout"),
		keys:   keys,
		holder: ns.Name(),
		timing: defaultRolloutTiming,
		connect: func(creds []byte, name string) (*nats.Conn, error) {
			return rolloutConnect(creds, nats.InProcessServer(ns), nats.Name(name), nats.NoReconnect())
		},
	}
	c.start()
	rolloutControllers.Store(h, c)
	return nil
}

// stopRollouts stops it and waits for it.
func (h *Hub) stopRollouts() {
	if c, ok := rolloutControllers.LoadAndDelete(h); ok {
		c.(*rolloutController).stop()
	}
}

// rolloutConnect connects with a credentials file's content. In process,
// the connection needs no URL, no TLS and no port.
func rolloutConnect(creds []byte, opts ...nats.Option) (*nats.Conn, error) {
	userJWT, err := jwt.ParseDecoratedJWT(creds)
	if err != nil {
		return nil, fmt.Errorf("credentials: %w", err)
	}
	kp, err := jwt.ParseDecoratedUserNKey(creds)
	if err != nil {
		return nil, fmt.Errorf("credentials: %w", err)
	}
	opts = append([]nats.Option{
		nats.Timeout(adminTimeout),
		nats.UserJWT(
			func() (string, error) { return userJWT, nil },
			func(nonce []byte) ([]byte, error) { return kp.Sign(nonce) },
		),
	}, opts...)
	return nats.Connect("", opts...)
}

func (c *rolloutController) start() {
	ctx, cancel := context.WithCancel(context.Background())
	c.cancel, c.done = cancel, make(chan struct{})
	go func() {
		defer close(c.done)
		c.run(ctx)
	}()
}

func (c *rolloutController) stop() {
	c.cancel()
	<-c.done
}

// run keeps one worker per tenant of the key directory.
func (c *rolloutController) run(ctx context.Context) {
	workers := newTenantWorkers(c.runTenant)
	defer workers.stop()
	var scanErrs logging.Every
	scanErrs.Interval = 10 * time.Minute
	tick := time.NewTicker(c.timing.tenantScan)
	defer tick.Stop()
	for {
		tenants, err := c.keys.Tenants()
		if err != nil {
			if ok, n := scanErrs.Allow(); ok {
				c.log.Warn("rollout controller cannot list tenants", "err", err, "suppressed", n)
			}
		} else {
			names := make([]string, len(tenants))
			for i, t := range tenants {
				names[i] = t.Name
			}
			workers.sync(ctx, names)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// runTenant runs the tenant's rollouts until ctx ends, session after
// session: a tenant not yet pushed to the hub, or whose buckets are
// missing, fails until `canopy-hub tenant sync`.
func (c *rolloutController) runTenant(ctx context.Context, tenant string) {
	log := c.log.With("tenant", tenant)
	var fails logging.Every
	fails.Interval = 10 * time.Minute
	runTenantSessions(ctx, c.keys, tenant, c.timing.sessions,
		func(ctx context.Context, creds []byte, renew time.Duration) error {
			return c.session(ctx, tenant, creds, renew, log)
		},
		func(err error) {
			if errors.Is(err, errNoAdminCreds) {
				log.Debug("rollout controller: no admin credentials", "err", err)
			} else if ok, n := fails.Allow(); ok {
				log.Warn("rollout controller cannot follow the tenant's rollouts; retrying", "err", err, "suppressed", n)
			}
		})
}

// session connects as the tenant's admin and runs its rollouts until ctx
// ends (nil), the connection is lost, or renew has passed
// (errCredsExpiring).
func (c *rolloutController) session(ctx context.Context, tenant string, creds []byte, renew time.Duration, log *slog.Logger) error {
	closed := make(chan struct{})
	nc, err := c.connect(creds, "canopy-hub rollouts "+tenant)
	if err != nil {
		return err
	}
	nc.SetClosedHandler(func(*nats.Conn) { close(closed) })
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	t := &tenantRollouts{tenant: tenant, log: log, docs: map[string]rolloutEntry{}, statuses: map[string]firmware.Status{}, now: time.Now}
	for _, b := range []struct {
		name string
		kv   *jetstream.KeyValue
	}{{RolloutsBucket, &t.rollouts}, {StatusBucket, &t.status}, {DesiredBucket, &t.desired}} {
		if *b.kv, err = js.KeyValue(ctx, b.name); err != nil {
			return fmt.Errorf("bucket %s: %w", b.name, err)
		}
	}
	t.lease = newRolloutLease(t.rollouts, c.holder, c.timing.leaseTTL)
	return t.run(ctx, closed, time.After(renew))
}

// tenantRollouts is one session's view of a tenant: the rollouts and the
// devices' latest statuses, kept current by watches. Only its run
// goroutine touches it.
type tenantRollouts struct {
	tenant                     string
	log                        *slog.Logger
	rollouts, status, desired  jetstream.KeyValue
	lease                      *rolloutLease
	docs                       map[string]rolloutEntry // by id
	statuses                   map[string]firmware.Status
	now                        func() time.Time
	badDocs                    logging.Every
	rolloutsLoaded, statLoaded bool
}

type rolloutEntry struct {
	r   Rollout
	rev uint64
}

func (t *tenantRollouts) run(ctx context.Context, closed <-chan struct{}, renew <-chan time.Time) (err error) {
	t.badDocs.Interval = time.Minute
	rw, err := t.rollouts.WatchAll(ctx)
	if err != nil {
		return fmt.Errorf("watch %s: %w", RolloutsBucket, err)
	}
	defer rw.Stop()
	sw, err := t.status.WatchAll(ctx)
	if err != nil {
		return fmt.Errorf("watch %s: %w", StatusBucket, err)
	}
	defer sw.Stop()
	defer func() {
		// On a clean stop, hand the lease over at once.
		if ctx.Err() != nil {
			rctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			if err := t.lease.release(rctx); err != nil {
				t.log.Debug("rollout lease not released", "err", err)
			}
		}
	}()

	leaseTick := time.NewTicker(t.lease.Renew())
	defer leaseTick.Stop()
	recheck := time.NewTimer(time.Hour)
	recheck.Stop()
	defer recheck.Stop()
	leading := t.tickLease(ctx, false)
	for {
		dirty := false
		select {
		case <-ctx.Done():
			return nil
		case <-closed:
			return errors.New("connection to the hub closed")
		case <-renew:
			return errCredsExpiring
		case e, ok := <-rw.Updates():
			if !ok {
				return errors.New("rollouts watch ended")
			}
			dirty = t.rolloutUpdate(e)
		case e, ok := <-sw.Updates():
			if !ok {
				return errors.New("status watch ended")
			}
			dirty = t.statusUpdate(e)
		case <-leaseTick.C:
			was := leading
			leading = t.tickLease(ctx, leading)
			dirty = leading && !was
		case <-recheck.C:
			dirty = true
		}
		// Take in everything already waiting before deciding once.
	drain:
		for {
			select {
			case e, ok := <-rw.Updates():
				if !ok {
					break drain
				}
				dirty = t.rolloutUpdate(e) || dirty
			case e, ok := <-sw.Updates():
				if !ok {
					break drain
				}
				dirty = t.statusUpdate(e) || dirty
			default:
				break drain
			}
		}
		if !dirty || !t.rolloutsLoaded || !t.statLoaded || !t.lease.Held(t.now()) {
			continue
		}
		next := t.evaluate(ctx)
		recheck.Stop()
		if !next.IsZero() {
			recheck.Reset(max(time.Until(next), 0))
		}
	}
}

// tickLease renews or watches the lease and logs a change of leadership.
func (t *tenantRollouts) tickLease(ctx context.Context, leading bool) bool {
	held, err := t.lease.tick(ctx, t.now())
	if err != nil {
		t.log.Debug("rollout lease", "err", err)
	}
	switch {
	case held && !leading:
		t.log.Info("rollout controller leading", "holder", t.lease.holder)
	case !held && leading:
		t.log.Info("rollout controller no longer leading", "holder", t.lease.holder)
	}
	return held
}

// rolloutUpdate takes in a change of "fw-rollouts"; it reports whether a
// rollout changed.
func (t *tenantRollouts) rolloutUpdate(e jetstream.KeyValueEntry) bool {
	if e == nil { // initial values done
		t.rolloutsLoaded = true
		return true
	}
	if !isRolloutKey(e.Key()) {
		return false
	}
	if e.Operation() != jetstream.KeyValuePut {
		delete(t.docs, e.Key())
		return false
	}
	if cur, ok := t.docs[e.Key()]; ok && cur.rev >= e.Revision() {
		return false // our own write, already taken in
	}
	var r Rollout
	if err := json.Unmarshal(e.Value(), &r); err != nil || r.ID != e.Key() {
		if err == nil {
			err = fmt.Errorf("id %q under key %q", rolloutClip(r.ID), e.Key())
		}
		if ok, n := t.badDocs.Allow(); ok {
			t.log.Warn("unreadable rollout ignored", "rollout", e.Key(), "err", err, "suppressed", n)
		}
		delete(t.docs, e.Key())
		return false
	}
	t.docs[e.Key()] = rolloutEntry{r: r, rev: e.Revision()}
	return r.State == RolloutRunning
}

// statusUpdate takes in a device's report; it reports whether a running
// rollout may care. The key names the device (a device may write only its
// own); the document is the device's word and parsed as such.
func (t *tenantRollouts) statusUpdate(e jetstream.KeyValueEntry) bool {
	if e == nil {
		t.statLoaded = true
		return true
	}
	if e.Operation() != jetstream.KeyValuePut {
		delete(t.statuses, e.Key())
		return true
	}
	var st firmware.Status
	if err := json.Unmarshal(e.Value(), &st); err != nil {
		t.log.Debug("unreadable firmware status ignored", "device", e.Key(), "err", err)
		delete(t.statuses, e.Key())
		return true
	}
	t.statuses[e.Key()] = st
	return true
}

// evaluate steps every running rollout and returns when to look again
// (zero: on the next change).
func (t *tenantRollouts) evaluate(ctx context.Context) time.Time {
	var next time.Time
	ids := make([]string, 0, len(t.docs))
	for id, e := range t.docs {
		if e.r.State == RolloutRunning {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	for _, id := range ids {
		e := t.docs[id]
		now := t.now()
		step := e.r.Next(t.statuses, now)
		if step.changes(e.r) {
			if err := t.apply(ctx, e, step, now); err != nil {
				t.log.Warn("rollout step not taken; retrying", "rollout", id, "err", err)
				next = earliest(next, now.Add(time.Second))
			}
			continue
		}
		next = earliest(next, step.Recheck)
	}
	return next
}

func earliest(a, b time.Time) time.Time {
	if a.IsZero() || (!b.IsZero() && b.Before(a)) {
		return b
	}
	return a
}

// apply writes a step: the new wave's Desired documents first, then the
// rollout with the revision it was computed from. Should the write of the
// Desired documents stop halfway, the rollout is unchanged and the same
// wave (the same devices: the order is fixed) is written again next time.
func (t *tenantRollouts) apply(ctx context.Context, e rolloutEntry, step Step, now time.Time) error {
	r := e.r
	if len(step.Assign) > 0 {
		desired, err := json.Marshal(r.Desired())
		if err != nil {
			return err
		}
		for _, d := range step.Assign {
			if _, err := t.desired.Put(ctx, d, desired); err != nil {
				return fmt.Errorf("write %s of device %s: %w", DesiredBucket, d, err)
			}
		}
	}
	next := r.Apply(step, now)
	b, err := json.Marshal(next)
	if err != nil {
		return err
	}
	rev, err := t.rollouts.Update(ctx, r.ID, b, e.rev)
	if errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return t.reconcile(ctx, r.ID, step.Assign, now)
	}
	if err != nil {
		return fmt.Errorf("write rollout: %w", err)
	}
	t.docs[r.ID] = rolloutEntry{r: next, rev: rev}
	t.logStep(r, next, step)
	return nil
}

func (t *tenantRollouts) logStep(before, after Rollout, step Step) {
	if len(step.Assign) > 0 {
		t.log.Info("rollout wave started", "rollout", after.ID, "wave", after.Waves, "devices", step.Assign,
			"assigned", len(after.Assigned), "total", len(after.Devices))
	}
	if after.State == before.State {
		return
	}
	switch after.State {
	case RolloutHalted:
		t.log.Info("rollout halted", "rollout", after.ID, "reason", after.Reason, "waves", after.Waves,
			"assigned", len(after.Assigned), "total", len(after.Devices))
	case RolloutDone:
		t.log.Info("rollout done", "rollout", after.ID, "waves", after.Waves, "devices", len(after.Devices))
	}
}

// reconcile follows a concurrent change of a rollout (the operator
// cancelled it, or another node acted): it re-reads the rollout and, if
// devices just given its Desired are missing from Assigned, records them
// there, whatever its state, so that Assigned stays the truth about who
// got the rollout. The next evaluation goes on from the re-read rollout.
func (t *tenantRollouts) reconcile(ctx context.Context, id string, written []string, now time.Time) error {
	for range 3 {
		e, err := t.rollouts.Get(ctx, id)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			delete(t.docs, id)
			return nil
		}
		if err != nil {
			return fmt.Errorf("re-read rollout: %w", err)
		}
		var r Rollout
		if err := json.Unmarshal(e.Value(), &r); err != nil {
			return fmt.Errorf("re-read rollout: %w", err)
		}
		var missing []string
		for _, d := range written {
			if !slices.Contains(r.Assigned, d) {
				missing = append(missing, d)
			}
		}
		if len(missing) == 0 {
			t.docs[id] = rolloutEntry{r: r, rev: e.Revision()}
			return nil
		}
		next := r.Apply(Step{State: r.State, Reason: r.Reason, Assign: missing}, now)
		b, err := json.Marshal(next)
		if err != nil {
			return err
		}
		rev, err := t.rollouts.Update(ctx, id, b, e.Revision())
		if errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			continue
		}
		if err != nil {
			return fmt.Errorf("write rollout: %w", err)
		}
		t.docs[id] = rolloutEntry{r: next, rev: rev}
		t.log.Info("rollout wave started", "rollout", id, "wave", next.Waves, "devices", missing,
			"state", next.State, "concurrent_change", true)
		return nil
	}
	return errors.New("rollout keeps changing under the controller")
}
