package hub_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/canopy-iot/canopy/firmware"
	"github.com/canopy-iot/canopy/hub"
	"github.com/canopy-iot/canopy/hub/fleet"
	"github.com/canopy-iot/canopy/internal/wait"
)

// rolloutFleet is an operator-mode hub with one tenant and its devices.
type rolloutFleet struct {
	h       *node
	keys    *fleet.Keys
	admin   *hub.Admin
	tenant  string
	creds   map[string][]byte // by device
	js      jetstream.JetStream
	desired jetstream.KeyValue
	roll    jetstream.KeyValue
}

func newRolloutFleet(t *testing.T, devices int) *rolloutFleet {
	t.Helper()
	keys := fleetKeys(t)
	h := startHub(t, operatorConfig(t, keys))
	f := &rolloutFleet{h: h, keys: keys, admin: hub.NewAdmin(h.ClientURL(), nil, keys), tenant: "acme", creds: map[string][]byte{}}
	addTenant(t, f.admin, keys, f.tenant, fleet.DefaultLimits(), 1)
	for i := range devices {
		name := fmt.Sprintf("pi-%02d", i)
		creds, err := keys.AddDevice(f.tenant, name)
		if err != nil {
			t.Fatal(err)
		}
		f.creds[name] = creds
	}
	var err error
	if f.js, err = jetstream.New(adminConn(t, h.ClientURL(), keys, f.tenant)); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if f.desired, err = f.js.KeyValue(ctx, hub.DesiredBucket); err != nil {
		t.Fatal(err)
	}
	if f.roll, err = f.js.KeyValue(ctx, hub.RolloutsBucket); err != nil {
		t.Fatal(err)
	}
	return f
}

// manifest signs a manifest with the tenant's firmware key, as publishing
// does (the artifact itself is not needed here: no device downloads).
func (f *rolloutFleet) manifest(t *testing.T, version string) []byte {
	t.Helper()
	m, err := firmware.Build(bytes.NewReader(bytes.Repeat([]byte("firmware"), 4096)), firmware.MinChunkSize)
	if err != nil {
		t.Fatal(err)
	}
	m.Name, m.Version, m.Platform = "sensor-fw", version, "linux/arm64"
	m.Object = firmware.ObjectName(m.Name, m.Version, m.Platform)
	kp, err := f.keys.FirmwareSigner(f.tenant)
	if err != nil {
		t.Fatal(err)
	}
	defer kp.Wipe()
	signed, err := firmware.Sign(m, kp)
	if err != nil {
		t.Fatal(err)
	}
	return signed
}

// awaitRollout watches the rollout's key until cond holds for it and
// returns it.
func (f *rolloutFleet) awaitRollout(t *testing.T, id string, cond func(hub.Rollout) bool) hub.Rollout {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	w, err := f.roll.Watch(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	var last hub.Rollout
	for {
		select {
		case e := <-w.Updates():
			if e == nil {
				continue
			}
			if err := json.Unmarshal(e.Value(), &last); err != nil {
				t.Fatalf("rollout %s: %v", id, err)
			}
			if cond(last) {
				return last
			}
		case <-ctx.Done():
			t.Fatalf("rollout %s: condition not met within 30s; last %+v\n%s", id, last, f.h.logs)
		}
	}
}

// desiredKeys lists the devices that have a Desired document, with it.
func (f *rolloutFleet) desiredDocs(t *testing.T) map[string]firmware.Desired {
	t.Helper()
	out := map[string]firmware.Desired{}
	keys, err := f.desired.ListKeys(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for k := range keys.Keys() {
		e, err := f.desired.Get(context.Background(), k)
		if err != nil {
			t.Fatal(err)
		}
		var d firmware.Desired
		if err := json.Unmarshal(e.Value(), &d); err != nil {
			t.Fatal(err)
		}
		out[k] = d
	}
	return out
}

// report stores a device's status the way the leaf's agent does: with the
// device's own credentials, into its own key of "fw-status".
func (f *rolloutFleet) report(t *testing.T, device string, st firmware.Status) {
	t.Helper()
	nc := connectCreds(t, f.h.ClientURL(), f.creds[device], nats.CustomInboxPrefix("_INBOX."+device))
	st.Device, st.Updated = device, time.Now().UTC()
	b, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	msg, err := nc.Request("$JS.canopy.API.$KV."+hub.StatusBucket+"."+device, b, 10*time.Second)
	if err != nil {
		t.Fatalf("device %s: report: %v", device, err)
	}
	var ack struct {
		Error *struct {
			Description string `json:"description"`
		} `json:"error"`
	}
	if err := json.Unmarshal(msg.Data, &ack); err != nil || ack.Error != nil {
		t.Fatalf("device %s: report not stored: %s", device, msg.Data)
	}
	nc.Close()
}

func TestIntegrationRolloutHaltsOnFailures(t *testing.T) {
	f := newRolloutFleet(t, 10)
	ctx := context.Background()
	signed := f.manifest(t, "1.4.0")
	r, err := f.admin.CreateRollout(ctx, f.tenant, hub.RolloutSpec{Manifest: signed, Target: "all", Percent: 20, Threshold: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Devices) != 10 || r.State != hub.RolloutRunning || r.WaveSize() != 2 {
		t.Fatalf("created %+v", r)
	}

	// The controller starts wave 1 at once: exactly 2 devices, the first
	// two of the rollout's order, get the rollout's Desired.
	r = f.awaitRollout(t, r.ID, func(r hub.Rollout) bool { return r.Waves > 0 })
	if r.Waves != 1 || !slices.Equal(r.Assigned, r.Devices[:2]) || r.State != hub.RolloutRunning {
		t.Fatalf("after wave 1: waves %d, assigned %v, state %s", r.Waves, r.Assigned, r.State)
	}
	docs := f.desiredDocs(t)
	if len(docs) != 2 {
		t.Fatalf("%d devices have a Desired document after wave 1, want 2: %v", len(docs), docs)
	}
	tn, _ := f.keys.Tenant(f.tenant)
	for _, d := range r.Assigned {
		doc, ok := docs[d]
		if !ok || doc.Rollout != r.ID || !doc.Install || doc.Window != "" {
			t.Fatalf("device %s: Desired %+v", d, doc)
		}
		if m, err := firmware.Verify(doc.Manifest, []string{tn.FirmwareKey}); err != nil || m.Version != "1.4.0" {
			t.Fatalf("device %s: manifest in Desired: %v", d, err)
		}
	}

	// One applies, one fails: 1 of 2 is 50% > 10%.
	ok, bad := r.Assigned[0], r.Assigned[1]
	f.report(t, ok, firmware.Status{Rollout: r.ID, Name: r.Name, Version: r.Version, State: firmware.StateApplied, Progress: 100, Running: r.Version})
	f.report(t, bad, firmware.Status{Rollout: r.ID, Name: r.Name, Version: r.Version, State: firmware.StateFailed, Progress: 100, Running: "1.3.0", Reason: "post-install check failed"})
	r = f.awaitRollout(t, r.ID, func(r hub.Rollout) bool { return r.State != hub.RolloutRunning })
	if r.State != hub.RolloutHalted || r.Reason != "1 of 2 failed (50% > threshold 10%)" {
		t.Fatalf("rollout %s: %s", r.State, r.Reason)
	}
	// The halt is persisted: nothing more was or will be assigned.
	if docs := f.desiredDocs(t); len(docs) != 2 || len(r.Assigned) != 2 || r.Waves != 1 {
		t.Fatalf("after the halt: %d Desired documents, assigned %v", len(docs), r.Assigned)
	}
	wait.For(t, 10*time.Second, func() error { return f.h.logs.Contains("rollout halted") })
	if n := f.h.logs.Count("rollout wave started"); n != 1 {
		t.Errorf("%d waves logged, want 1\n%s", n, f.h.logs)
	}

	// The operator sees it.
	statuses, err := f.admin.FirmwareStatuses(ctx, f.tenant)
	if err != nil {
		t.Fatal(err)
	}
	if statuses[ok].State != firmware.StateApplied || statuses[bad].State != firmware.StateFailed || len(statuses) != 2 {
		t.Errorf("statuses %+v", statuses)
	}
	if p := r.Progress(statuses); p != (hub.Progress{Total: 10, Assigned: 2, Succeeded: 1, Failed: 1}) {
		t.Errorf("progress %+v", p)
	}
	// A halted rollout can be cancelled, not a second time.
	if c, err := f.admin.CancelRollout(ctx, f.tenant, r.ID, ""); err != nil || c.State != hub.RolloutCancelled {
		t.Errorf("cancel: %+v, %v", c, err)
	}
	if _, err := f.admin.CancelRollout(ctx, f.tenant, r.ID, ""); err == nil || !strings.Contains(err.Error(), "cancelled already") {
		t.Errorf("cancel again: %v", err)
	}
}

func TestIntegrationRolloutCompletes(t *testing.T) {
	f := newRolloutFleet(t, 5)
	ctx := context.Background()
	group := []string{"pi-04", "pi-01", "pi-02"}
	if err := f.admin.SetDeviceGroup(ctx, f.tenant, "lab", group); err != nil {
		t.Fatal(err)
	}
	if err := f.admin.SetDeviceGroup(ctx, f.tenant, "bad", []string{"pi-01", "nope"}); err == nil {
		t.Error("a group with an unknown device was accepted")
	}
	signed := f.manifest(t, "2.0.0")
	r, err := f.admin.CreateRollout(ctx, f.tenant, hub.RolloutSpec{Manifest: signed, Target: "group=lab", Percent: 100, Threshold: 10, Window: "02:00-04:00"})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(slices.Sorted(slices.Values(r.Devices)), []string{"pi-01", "pi-02", "pi-04"}) {
		t.Fatalf("group resolved to %v", r.Devices)
	}
	// A device can be in one running rollout only.
	if _, err := f.admin.CreateRollout(ctx, f.tenant, hub.RolloutSpec{Manifest: signed, Target: "device=pi-02", Threshold: 10}); err == nil || !strings.Contains(err.Error(), "running rollout "+r.ID) {
		t.Errorf("overlapping rollout: %v", err)
	}

	r = f.awaitRollout(t, r.ID, func(r hub.Rollout) bool { return r.Waves > 0 })
	if r.Waves != 1 || len(r.Assigned) != 3 {
		t.Fatalf("100%%: waves %d, assigned %v", r.Waves, r.Assigned)
	}
	docs := f.desiredDocs(t)
	if len(docs) != 3 || docs["pi-01"].Window != "02:00-04:00" {
		t.Fatalf("Desired documents %+v", docs)
	}
	// Reports about another rollout do not count; this one's do.
	f.report(t, "pi-01", firmware.Status{Rollout: "older", State: firmware.StateApplied})
	for _, d := range r.Assigned {
		f.report(t, d, firmware.Status{Rollout: r.ID, Name: r.Name, Version: r.Version, State: firmware.StateApplied, Progress: 100, Running: r.Version})
	}
	r = f.awaitRollout(t, r.ID, func(r hub.Rollout) bool { return r.State != hub.RolloutRunning })
	if r.State != hub.RolloutDone || r.Reason != "" {
		t.Fatalf("rollout %s: %s", r.State, r.Reason)
	}
	wait.For(t, 10*time.Second, func() error { return f.h.logs.Contains("rollout done") })
	all, err := f.admin.Rollouts(ctx, f.tenant)
	if err != nil || len(all) != 1 || all[0].ID != r.ID || all[0].State != hub.RolloutDone {
		t.Errorf("Rollouts: %+v, %v", all, err)
	}
	groups, err := f.admin.DeviceGroups(ctx, f.tenant)
	if err != nil || !slices.Equal(groups["lab"], []string{"pi-01", "pi-02", "pi-04"}) || len(groups) != 1 {
		t.Errorf("groups %v, %v", groups, err)
	}
}
