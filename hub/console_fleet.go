package hub

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/canopy-iot/canopy/firmware"
	"github.com/canopy-iot/canopy/hub/fleet"
	"github.com/canopy-iot/canopy/internal/heartbeat"
	"github.com/canopy-iot/canopy/internal/logging"
)

// The console's fleet model: for each tenant of the key directory, an
// in-process connection as the tenant's admin that watches the buckets
// "devices" (heartbeats), "fw-status" and "fw-rollouts" and counts the
// tenant's telemetry, so that the dashboard, the event stream and the
// metrics read memory, never JetStream, per request.

// consoleTiming are the model's intervals; tests shorten them.
type consoleTiming struct {
	tenantScan  time.Duration // how often tenants and provisioned devices are re-read
	onlineCheck time.Duration // how often quiet devices are checked for going offline
	sessions    sessionTiming
}

var defaultConsoleTiming = consoleTiming{
	tenantScan:  10 * time.Second,
	onlineCheck: time.Second,
	sessions:    sessionTiming{credsTTL: 24 * time.Hour, retry: time.Second, maxRetry: time.Minute},
}

// maxTelemetryValue bounds the payload parsed for a numeric value; larger
// ones are counted but show no value.
const maxTelemetryValue = 16 << 10

// consoleModel is the live fleet. Its mutex guards the tenant views; the
// watchers, the telemetry callbacks and the readers take it briefly.
type consoleModel struct {
	log     *slog.Logger
	keys    *fleet.Keys
	connect func(creds []byte, name string) (*nats.Conn, error)
	timing  consoleTiming

	mu      sync.Mutex
	tenants map[string]*tenantView
	changed chan struct{} // capacity 1: something a snapshot shows changed
}

// tenantView is what the model knows of one tenant.
type tenantView struct {
	provisioned map[string]fleet.Device // by name, from the key directory
	beats       map[string]heartbeat.Document
	online      map[string]bool // as last evaluated, to notice changes
	statuses    map[string]firmware.Status
	rollouts    map[string]Rollout  // by id
	groups      map[string][]string // by group
	telemetry   map[string]*telemetryCount
	telemetryN  uint64 // messages since start, for the metrics
}

type telemetryCount struct {
	msgs  int
	value *float64 // of the last message; nil when it had none
}

func newTenantView() *tenantView {
	return &tenantView{
		provisioned: map[string]fleet.Device{},
		beats:       map[string]heartbeat.Document{},
		online:      map[string]bool{},
		statuses:    map[string]firmware.Status{},
		rollouts:    map[string]Rollout{},
		groups:      map[string][]string{},
		telemetry:   map[string]*telemetryCount{},
	}
}

func newConsoleModel(log *slog.Logger, keys *fleet.Keys, timing consoleTiming, connect func([]byte, string) (*nats.Conn, error)) *consoleModel {
	return &consoleModel{
		log:     log,
		keys:    keys,
		connect: connect,
		timing:  timing,
		tenants: map[string]*tenantView{},
		changed: make(chan struct{}, 1),
	}
}

// touch notes a change for the event stream.
func (m *consoleModel) touch() {
	select {
	case m.changed <- struct{}{}:
	default:
	}
}

// run keeps one watcher per tenant until ctx ends.
func (m *consoleModel) run(ctx context.Context) {
	workers := newTenantWorkers(m.runTenant)
	defer workers.stop()
	var scanErrs logging.Every
	scanErrs.Interval = 10 * time.Minute
	scan := time.NewTicker(m.timing.tenantScan)
	defer scan.Stop()
	online := time.NewTicker(m.timing.onlineCheck)
	defer online.Stop()
	for {
		if tenants, err := m.scan(); err != nil {
			if ok, n := scanErrs.Allow(); ok {
				m.log.Warn("dashboard cannot list tenants", "err", err, "suppressed", n)
			}
		} else {
			workers.sync(ctx, tenants)
		}
	wait:
		for {
			select {
			case <-ctx.Done():
				return
			case <-online.C:
				m.checkOnline(time.Now())
			case <-scan.C:
				break wait
			}
		}
	}
}

// scan re-reads the tenants and their provisioned devices.
func (m *consoleModel) scan() ([]string, error) {
	tenants, err := m.keys.Tenants()
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(tenants))
	devices := map[string]map[string]fleet.Device{}
	for _, t := range tenants {
		names = append(names, t.Name)
		list, err := m.keys.Devices(t.Name)
		if err != nil {
			m.log.Debug("dashboard cannot list devices", "tenant", t.Name, "err", err)
			continue
		}
		byName := make(map[string]fleet.Device, len(list))
		for _, d := range list {
			byName[d.Name] = d
		}
		devices[t.Name] = byName
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	changed := false
	for name := range m.tenants {
		if !slices.Contains(names, name) {
			delete(m.tenants, name)
			changed = true
		}
	}
	for _, name := range names {
		tv, ok := m.tenants[name]
		if !ok {
			tv = newTenantView()
			m.tenants[name] = tv
			changed = true
		}
		if byName, ok := devices[name]; ok && !sameDevices(tv.provisioned, byName) {
			tv.provisioned = byName
			changed = true
		}
	}
	if changed {
		m.touch()
	}
	return names, nil
}

func sameDevices(a, b map[string]fleet.Device) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w.Revoked != v.Revoked {
			return false
		}
	}
	return true
}

// checkOnline notices devices whose heartbeat became overdue.
func (m *consoleModel) checkOnline(now time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	changed := false
	for _, tv := range m.tenants {
		for d, doc := range tv.beats {
			if on := doc.Online(now); on != tv.online[d] {
				tv.online[d] = on
				changed = true
			}
		}
	}
	if changed {
		m.touch()
	}
}

// runTenant follows one tenant until ctx ends, session after session: a
// tenant not yet pushed to the hub, or without its buckets, fails until
// `canopy-hub tenant sync`.
func (m *consoleModel) runTenant(ctx context.Context, tenant string) {
	log := m.log.With("tenant", tenant)
	var fails logging.Every
	fails.Interval = 10 * time.Minute
	runTenantSessions(ctx, m.keys, tenant, m.timing.sessions,
		func(ctx context.Context, creds []byte, renew time.Duration) error {
			return m.session(ctx, tenant, creds, renew)
		},
		func(err error) {
			if errors.Is(err, jetstream.ErrBucketNotFound) || errors.Is(err, errNoAdminCreds) {
				log.Debug("dashboard waits for the tenant's buckets or credentials", "err", err)
			} else if ok, n := fails.Allow(); ok {
				log.Warn("dashboard cannot follow the tenant; retrying", "err", err, "suppressed", n)
			}
		})
}

// consoleBuckets are the buckets the model watches, in watch order.
var consoleBuckets = []string{DevicesBucket, StatusBucket, RolloutsBucket}

// session follows the tenant through one connection until ctx ends (nil),
// the connection or a watch ends, or renew has passed (errCredsExpiring).
// Each session starts from the buckets' full contents, so what changed
// while it was down is caught up.
func (m *consoleModel) session(ctx context.Context, tenant string, creds []byte, renew time.Duration) error {
	nc, err := m.connect(creds, "canopy-hub dashboard "+tenant)
	if err != nil {
		return err
	}
	closed := make(chan struct{})
	nc.SetClosedHandler(func(*nats.Conn) { close(closed) })
	defer nc.Close()
	if _, err := nc.Subscribe("telemetry.>", func(msg *nats.Msg) { m.telemetry(tenant, msg) }); err != nil {
		return fmt.Errorf("subscribe telemetry: %w", err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	watchers := make([]jetstream.KeyWatcher, len(consoleBuckets))
	for i, name := range consoleBuckets {
		kv, err := js.KeyValue(ctx, name)
		if err != nil {
			return fmt.Errorf("bucket %s: %w", name, err)
		}
		if watchers[i], err = kv.WatchAll(ctx); err != nil {
			return fmt.Errorf("watch %s: %w", name, err)
		}
		defer watchers[i].Stop()
	}
	// Until a bucket's initial values are in, its entries go to a fresh
	// map that then replaces the previous session's.
	fresh := make([]map[string]jetstream.KeyValueEntry, len(consoleBuckets))
	for i := range fresh {
		fresh[i] = map[string]jetstream.KeyValueEntry{}
	}
	expire := time.After(renew)
	for {
		var (
			i  int
			e  jetstream.KeyValueEntry
			ok bool
		)
		select {
		case <-ctx.Done():
			return nil
		case <-closed:
			return errors.New("connection to the hub closed")
		case <-expire:
			return errCredsExpiring
		case e, ok = <-watchers[0].Updates():
			i = 0
		case e, ok = <-watchers[1].Updates():
			i = 1
		case e, ok = <-watchers[2].Updates():
			i = 2
		}
		if !ok {
			return fmt.Errorf("watch %s ended", consoleBuckets[i])
		}
		switch {
		case e == nil:
			m.replace(tenant, consoleBuckets[i], fresh[i])
			fresh[i] = nil
		case fresh[i] != nil:
			if e.Operation() == jetstream.KeyValuePut {
				fresh[i][e.Key()] = e
			} else {
				delete(fresh[i], e.Key())
			}
		default:
			m.update(tenant, consoleBuckets[i], e)
		}
	}
}

// replace takes in a bucket's full contents.
func (m *consoleModel) replace(tenant, bucket string, entries map[string]jetstream.KeyValueEntry) {
	m.mu.Lock()
	defer m.mu.Unlock()
	tv, ok := m.tenants[tenant]
	if !ok {
		return
	}
	switch bucket {
	case DevicesBucket:
		clear(tv.beats)
	case StatusBucket:
		clear(tv.statuses)
	case RolloutsBucket:
		clear(tv.rollouts)
		clear(tv.groups)
	}
	for _, e := range entries {
		tv.apply(bucket, e)
	}
	tv.refreshOnline(time.Now())
	m.touch()
}

// update takes in one change: a put, a delete or a purge.
func (m *consoleModel) update(tenant, bucket string, e jetstream.KeyValueEntry) {
	m.mu.Lock()
	defer m.mu.Unlock()
	tv, ok := m.tenants[tenant]
	if !ok {
		return
	}
	tv.apply(bucket, e)
	tv.refreshOnline(time.Now())
	m.touch()
}

// apply sets (a put) or deletes (a delete or purge) one entry. The key
// names the device: each device may write only its own, so the key, not
// the document, says whose it is. Documents that do not parse are left
// out.
func (tv *tenantView) apply(bucket string, e jetstream.KeyValueEntry) {
	key := e.Key()
	var value []byte
	if e.Operation() == jetstream.KeyValuePut {
		value = e.Value()
	}
	switch bucket {
	case DevicesBucket:
		var doc heartbeat.Document
		if value == nil || json.Unmarshal(value, &doc) != nil {
			delete(tv.beats, key)
			delete(tv.online, key)
			return
		}
		// By the hub's clock: a device's own may be far off.
		doc.Received = e.Created()
		tv.beats[key] = doc
	case StatusBucket:
		var st firmware.Status
		if value == nil || json.Unmarshal(value, &st) != nil {
			delete(tv.statuses, key)
			return
		}
		tv.statuses[key] = st
	case RolloutsBucket:
		if group, ok := cutGroupKey(key); ok {
			var list []string
			if value == nil || json.Unmarshal(value, &list) != nil {
				delete(tv.groups, group)
				return
			}
			tv.groups[group] = list
			return
		}
		if !isRolloutKey(key) {
			return
		}
		var r Rollout
		if value == nil || json.Unmarshal(value, &r) != nil || r.ID != key {
			delete(tv.rollouts, key)
			return
		}
		tv.rollouts[key] = r
	}
}

func (tv *tenantView) refreshOnline(now time.Time) {
	for d, doc := range tv.beats {
		tv.online[d] = doc.Online(now)
	}
}

// telemetry counts one message on telemetry.<device>.>.
func (m *consoleModel) telemetry(tenant string, msg *nats.Msg) {
	parts := strings.SplitN(msg.Subject, ".", 3)
	if len(parts) < 3 || parts[1] == "" {
		return
	}
	value, ok := telemetryValue(msg.Data)
	m.mu.Lock()
	defer m.mu.Unlock()
	tv, found := m.tenants[tenant]
	if !found {
		return
	}
	tv.telemetryN++
	c := tv.telemetry[parts[1]]
	if c == nil {
		c = &telemetryCount{}
		tv.telemetry[parts[1]] = c
	}
	c.msgs++
	c.value = nil
	if ok {
		c.value = &value
	}
}

// TelemetryRate is one device's telemetry over the last second.
type TelemetryRate struct {
	Tenant string   `json:"tenant"`
	Device string   `json:"device"`
	Msgs   int      `json:"msgs"`
	Value  *float64 `json:"value"`
}

// takeTelemetry returns the counts since the last call, by tenant and
// device, and starts new ones.
func (m *consoleModel) takeTelemetry() []TelemetryRate {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []TelemetryRate
	for tenant, tv := range m.tenants {
		for d, c := range tv.telemetry {
			out = append(out, TelemetryRate{Tenant: tenant, Device: d, Msgs: c.msgs, Value: c.value})
		}
		clear(tv.telemetry)
	}
	slices.SortFunc(out, func(a, b TelemetryRate) int {
		return cmpJoin(strings.Compare(a.Tenant, b.Tenant), strings.Compare(a.Device, b.Device))
	})
	return out
}

func cmpJoin(a, b int) int {
	if a != 0 {
		return a
	}
	return b
}

// telemetryValue finds a reading's number: the payload itself when it is
// a JSON number, else the field "value" of a JSON object, else the
// object's first numeric field.
func telemetryValue(b []byte) (float64, bool) {
	b = bytes.TrimSpace(b)
	if len(b) == 0 || len(b) > maxTelemetryValue || !json.Valid(b) {
		return 0, false
	}
	if b[0] != '{' {
		return jsonNumber(b)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	if _, err := dec.Token(); err != nil {
		return 0, false
	}
	var first float64
	found := false
	for dec.More() {
		key, err := dec.Token()
		if err != nil {
			return 0, false
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return 0, false
		}
		v, ok := jsonNumber(raw)
		if !ok {
			continue
		}
		if key == "value" {
			return v, true
		}
		if !found {
			first, found = v, true
		}
	}
	return first, found
}

// jsonNumber parses b, valid JSON, when it is a number.
func jsonNumber(b []byte) (float64, bool) {
	if len(b) == 0 || (b[0] != '-' && (b[0] < '0' || b[0] > '9')) {
		return 0, false
	}
	v, err := strconv.ParseFloat(string(b), 64)
	return v, err == nil
}
