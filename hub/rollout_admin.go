package hub

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/canopy-iot/canopy/firmware"
	"github.com/canopy-iot/canopy/hub/fleet"
)

// The operator's side of rollouts: creating, listing and cancelling them,
// reading the devices' firmware statuses and defining device groups. The
// hub's rollout controller does the rest (see rollout.go).

// tenantJetStream connects to the hub as the tenant's admin. The caller
// closes the connection.
func (a *Admin) tenantJetStream(tenant string) (*nats.Conn, jetstream.JetStream, error) {
	creds, err := a.keys.AdminCreds(tenant, 5*time.Minute)
	if err != nil {
		return nil, nil, err
	}
	nc, err := a.connect(creds, "canopy-hub admin "+tenant)
	if err != nil {
		return nil, nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	return nc, js, nil
}

func tenantKV(ctx context.Context, js jetstream.JetStream, tenant, bucket string) (jetstream.KeyValue, error) {
	kv, err := js.KeyValue(ctx, bucket)
	if err != nil {
		return nil, fmt.Errorf("tenant %s: bucket %s: %w (run canopy-hub tenant sync %s)", tenant, bucket, err, tenant)
	}
	return kv, nil
}

// readTenantKV runs read on one of a tenant's KV buckets through a
// connection of its own, bounded by the admin timeout.
func (a *Admin) readTenantKV(ctx context.Context, tenant, bucket string, read func(context.Context, jetstream.KeyValue) error) error {
	nc, js, err := a.tenantJetStream(tenant)
	if err != nil {
		return err
	}
	defer nc.Close()
	ctx, cancel := context.WithTimeout(ctx, adminTimeout)
	defer cancel()
	kv, err := tenantKV(ctx, js, tenant, bucket)
	if err != nil {
		return err
	}
	return read(ctx, kv)
}

// kvEntries reads every live entry of a bucket.
func kvEntries(ctx context.Context, kv jetstream.KeyValue) ([]jetstream.KeyValueEntry, error) {
	w, err := kv.WatchAll(ctx, jetstream.IgnoreDeletes())
	if err != nil {
		return nil, err
	}
	defer w.Stop()
	var out []jetstream.KeyValueEntry
	for {
		select {
		case e, ok := <-w.Updates():
			if !ok {
				return nil, errors.New("watch ended")
			}
			if e == nil {
				return out, nil
			}
			out = append(out, e)
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// CreateRollout checks spec and starts a rollout in the tenant: the
// manifest must be signed by the tenant's firmware key, the target must
// resolve to at least one device that is not revoked (revoked members of
// a group are left out), and no target device may be part of another
// running rollout. The hub's controller starts the first wave at once.
func (a *Admin) CreateRollout(ctx context.Context, tenant string, spec RolloutSpec) (Rollout, error) {
	t, err := a.keys.Tenant(tenant)
	if err != nil {
		return Rollout{}, err
	}
	if _, err := firmware.Verify(spec.Manifest, []string{t.FirmwareKey}); err != nil {
		return Rollout{}, fmt.Errorf("tenant %s: manifest: %w", tenant, err)
	}
	if _, err := spec.validate(); err != nil {
		return Rollout{}, fmt.Errorf("tenant %s: rollout: %w", tenant, err)
	}
	nc, js, err := a.tenantJetStream(tenant)
	if err != nil {
		return Rollout{}, err
	}
	defer nc.Close()
	ctx, cancel := context.WithTimeout(ctx, adminTimeout)
	defer cancel()
	kv, err := tenantKV(ctx, js, tenant, RolloutsBucket)
	if err != nil {
		return Rollout{}, err
	}
	devices, err := a.resolveTarget(ctx, kv, tenant, spec.Target)
	if err != nil {
		return Rollout{}, err
	}
	running, err := rolloutsIn(ctx, kv)
	if err != nil {
		return Rollout{}, fmt.Errorf("tenant %s: read rollouts: %w", tenant, err)
	}
	for _, other := range running {
		if other.State != RolloutRunning {
			continue
		}
		for _, d := range devices {
			if slices.Contains(other.Devices, d) {
				return Rollout{}, fmt.Errorf("tenant %s: device %s is part of running rollout %s: wait for it, or cancel it first (canopy-hub firmware cancel --tenant %s %s)",
					tenant, d, other.ID, tenant, other.ID)
			}
		}
	}
	r, err := NewRollout(spec, devices, time.Now())
	if err != nil {
		return Rollout{}, fmt.Errorf("tenant %s: rollout: %w", tenant, err)
	}
	b, err := json.Marshal(r)
	if err != nil {
		return Rollout{}, err
	}
	if _, err := kv.Create(ctx, r.ID, b); errors.Is(err, jetstream.ErrKeyExists) {
		return Rollout{}, fmt.Errorf("tenant %s: rollout %s exists already: try again in a second", tenant, r.ID)
	} else if err != nil {
		return Rollout{}, fmt.Errorf("tenant %s: write rollout %s: %w", tenant, r.ID, err)
	}
	return r, nil
}

// resolveTarget lists the devices a target names, revoked ones left out.
func (a *Admin) resolveTarget(ctx context.Context, kv jetstream.KeyValue, tenant, target string) ([]string, error) {
	kind, name, err := parseRolloutTarget(target)
	if err != nil {
		return nil, err
	}
	all, err := a.keys.Devices(tenant)
	if err != nil {
		return nil, err
	}
	active := map[string]bool{}
	for _, d := range all {
		active[d.Name] = !d.Revoked
	}
	var want []string
	switch kind {
	case targetAll:
		for _, d := range all {
			want = append(want, d.Name)
		}
	case targetDevice:
		on, ok := active[name]
		if !ok {
			return nil, fmt.Errorf("tenant %s: device %s: %w", tenant, name, fleet.ErrNoDevice)
		}
		if !on {
			return nil, fmt.Errorf("tenant %s: device %s is revoked", tenant, name)
		}
		want = []string{name}
	case targetGroup:
		if want, err = groupIn(ctx, kv, name); err != nil {
			return nil, fmt.Errorf("tenant %s: %w", tenant, err)
		}
	}
	var out []string
	for _, d := range want {
		if active[d] {
			out = append(out, d)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("tenant %s: target %s has no device that is not revoked", tenant, target)
	}
	return out, nil
}

// rolloutsIn reads every rollout of a tenant's "fw-rollouts" bucket,
// oldest first; unreadable documents are skipped.
func rolloutsIn(ctx context.Context, kv jetstream.KeyValue) ([]Rollout, error) {
	entries, err := kvEntries(ctx, kv)
	if err != nil {
		return nil, err
	}
	var out []Rollout
	for _, e := range entries {
		if !isRolloutKey(e.Key()) {
			continue
		}
		var r Rollout
		if json.Unmarshal(e.Value(), &r) == nil && r.ID == e.Key() {
			out = append(out, r)
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		if !out[i].Created.Equal(out[j].Created) {
			return out[i].Created.Before(out[j].Created)
		}
		return out[i].ID < out[j].ID
	})
	return out, nil
}

// Rollouts lists the tenant's rollouts, oldest first.
func (a *Admin) Rollouts(ctx context.Context, tenant string) (out []Rollout, err error) {
	err = a.readTenantKV(ctx, tenant, RolloutsBucket, func(ctx context.Context, kv jetstream.KeyValue) error {
		if out, err = rolloutsIn(ctx, kv); err != nil {
			return fmt.Errorf("tenant %s: read rollouts: %w", tenant, err)
		}
		return nil
	})
	return out, err
}

// CancelRollout stops a running or halted rollout: no more devices get
// it; those that have it keep their Desired (a later rollout replaces
// it). reason is recorded ("" says cancelled by the operator).
func (a *Admin) CancelRollout(ctx context.Context, tenant, id, reason string) (Rollout, error) {
	if reason == "" {
		reason = "cancelled by the operator"
	}
	nc, js, err := a.tenantJetStream(tenant)
	if err != nil {
		return Rollout{}, err
	}
	defer nc.Close()
	ctx, cancel := context.WithTimeout(ctx, adminTimeout)
	defer cancel()
	kv, err := tenantKV(ctx, js, tenant, RolloutsBucket)
	if err != nil {
		return Rollout{}, err
	}
	if !isRolloutKey(id) {
		return Rollout{}, fmt.Errorf("tenant %s: rollout %q: %w", tenant, rolloutClip(id), ErrNoRollout)
	}
	// The controller may write between our read and write: read again
	// and retry then.
	for range 5 {
		e, err := kv.Get(ctx, id)
		if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrInvalidKey) {
			return Rollout{}, fmt.Errorf("tenant %s: rollout %q: %w", tenant, rolloutClip(id), ErrNoRollout)
		}
		if err != nil {
			return Rollout{}, fmt.Errorf("tenant %s: read rollout %s: %w", tenant, id, err)
		}
		var r Rollout
		if err := json.Unmarshal(e.Value(), &r); err != nil {
			return Rollout{}, fmt.Errorf("tenant %s: rollout %s: %w", tenant, id, err)
		}
		if r.State != RolloutRunning && r.State != RolloutHalted {
			return r, fmt.Errorf("tenant %s: rollout %s is %s already", tenant, id, r.State)
		}
		now := time.Now().UTC().Round(0)
		r.State, r.Reason, r.Updated = RolloutCancelled, reason, now
		b, err := json.Marshal(r)
		if err != nil {
			return Rollout{}, err
		}
		_, err = kv.Update(ctx, id, b, e.Revision())
		if errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			continue
		}
		if err != nil {
			return Rollout{}, fmt.Errorf("tenant %s: write rollout %s: %w", tenant, id, err)
		}
		return r, nil
	}
	return Rollout{}, fmt.Errorf("tenant %s: rollout %s keeps changing: try again", tenant, id)
}

// FirmwareStatuses reads every device's latest firmware report (bucket
// "fw-status"), by device. Unreadable reports are left out.
func (a *Admin) FirmwareStatuses(ctx context.Context, tenant string) (map[string]firmware.Status, error) {
	return readBucket[firmware.Status](ctx, a, tenant, StatusBucket, nil)
}

// SetDeviceGroup defines (or redefines) a device group of the tenant, for
// rollouts to "group=<group>": key "group.<group>" of bucket
// "fw-rollouts", a JSON list of device names. Every device must exist.
// A rollout resolves its group when it is created; later changes of the
// group do not change it.
func (a *Admin) SetDeviceGroup(ctx context.Context, tenant, group string, devices []string) error {
	if !fleet.ValidName(group) {
		return fmt.Errorf("group name %q is not valid: want 1 to 64 of A-Z, a-z, 0-9, '_' and '-', not starting with '-'", rolloutClip(group))
	}
	if len(devices) == 0 {
		return fmt.Errorf("group %s: no devices", group)
	}
	known, err := a.keys.Devices(tenant)
	if err != nil {
		return err
	}
	var errs []error
	for _, d := range devices {
		if !slices.ContainsFunc(known, func(k fleet.Device) bool { return k.Name == d }) {
			errs = append(errs, fmt.Errorf("tenant %s: device %q: %w", tenant, rolloutClip(d), fleet.ErrNoDevice))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	list := slices.Clone(devices)
	slices.Sort(list)
	list = slices.Compact(list)
	b, err := json.Marshal(list)
	if err != nil {
		return err
	}
	nc, js, err := a.tenantJetStream(tenant)
	if err != nil {
		return err
	}
	defer nc.Close()
	ctx, cancel := context.WithTimeout(ctx, adminTimeout)
	defer cancel()
	kv, err := tenantKV(ctx, js, tenant, RolloutsBucket)
	if err != nil {
		return err
	}
	if _, err := kv.Put(ctx, rolloutGroupPrefix+group, b); err != nil {
		return fmt.Errorf("tenant %s: write group %s: %w", tenant, group, err)
	}
	return nil
}

// DeviceGroups lists the tenant's device groups with their devices.
func (a *Admin) DeviceGroups(ctx context.Context, tenant string) (map[string][]string, error) {
	out := map[string][]string{}
	err := a.readTenantKV(ctx, tenant, RolloutsBucket, func(ctx context.Context, kv jetstream.KeyValue) error {
		entries, err := kvEntries(ctx, kv)
		if err != nil {
			return fmt.Errorf("tenant %s: read groups: %w", tenant, err)
		}
		for _, e := range entries {
			name, ok := cutGroupKey(e.Key())
			if !ok {
				continue
			}
			var list []string
			if json.Unmarshal(e.Value(), &list) == nil {
				out[name] = list
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func cutGroupKey(key string) (string, bool) {
	name, ok := strings.CutPrefix(key, rolloutGroupPrefix)
	return name, ok && name != ""
}

// groupIn reads a group's devices.
func groupIn(ctx context.Context, kv jetstream.KeyValue, group string) ([]string, error) {
	e, err := kv.Get(ctx, rolloutGroupPrefix+group)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, fmt.Errorf("group %s: %w (define it with canopy-hub firmware group set)", group, ErrNoGroup)
	}
	if err != nil {
		return nil, fmt.Errorf("group %s: %w", group, err)
	}
	var list []string
	if err := json.Unmarshal(e.Value(), &list); err != nil {
		return nil, fmt.Errorf("group %s: %w", group, err)
	}
	return list, nil
}
