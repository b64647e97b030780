package hub

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nkeys"

	"github.com/canopy-iot/canopy/firmware"
)

// testManifest signs a small manifest of name and version with a new key.
func testManifest(t testing.TB, name, version string) []byte {
	t.Helper()
	m, err := firmware.Build(bytes.NewReader(bytes.Repeat([]byte("x"), 10000)), firmware.MinChunkSize)
	if err != nil {
		t.Fatal(err)
	}
	m.Name, m.Version, m.Platform = name, version, "linux/arm64"
	m.Object = firmware.ObjectName(name, version, m.Platform)
	kp, err := nkeys.CreateAccount()
	if err != nil {
		t.Fatal(err)
	}
	signed, err := firmware.Sign(m, kp)
	if err != nil {
		t.Fatal(err)
	}
	return signed
}

func devs(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("dev-%02d", i)
	}
	return out
}

var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// running is a rollout as NewRollout makes it, without the shuffle, so
// that tests know the order.
func running(n, percent, threshold int, interval time.Duration) Rollout {
	return Rollout{ID: "fw-1.0-1", Name: "fw", Version: "1.0", Devices: devs(n), Percent: percent,
		Threshold: threshold, WaveInterval: interval, State: RolloutRunning, Assigned: []string{}, Created: t0, Updated: t0}
}

func report(r Rollout, state firmware.State, devices ...string) map[string]firmware.Status {
	out := map[string]firmware.Status{}
	for _, d := range devices {
		out[d] = firmware.Status{Device: d, Rollout: r.ID, Version: r.Version, State: state}
	}
	return out
}

func merge(ms ...map[string]firmware.Status) map[string]firmware.Status {
	out := map[string]firmware.Status{}
	for _, m := range ms {
		for k, v := range m {
			out[k] = v
		}
	}
	return out
}

func TestRolloutWaveSize(t *testing.T) {
	for _, tc := range []struct{ n, percent, want int }{
		{10, 20, 2}, {10, 25, 3}, {10, 100, 10}, {10, 0, 10}, {10, 1, 1}, {3, 34, 2}, {1, 1, 1}, {1000, 10, 100}, {7, 50, 4},
	} {
		r := Rollout{Devices: devs(tc.n), Percent: tc.percent}
		if got := r.WaveSize(); got != tc.want {
			t.Errorf("%d%% of %d: wave of %d, want %d", tc.percent, tc.n, got, tc.want)
		}
	}
}

func TestRolloutNext(t *testing.T) {
	const interval = 10 * time.Minute
	base := running(10, 20, 10, interval)
	wave1 := base.Apply(Step{State: RolloutRunning, Assign: []string{"dev-00", "dev-01"}}, t0)
	dl := wave1
	dl.DownloadOnly = true
	other := report(wave1, firmware.StateApplied, "dev-00", "dev-01")
	for k, v := range other {
		v.Rollout = "older-rollout"
		other[k] = v
	}
	allAssigned := wave1
	allAssigned.Assigned = devs(10)
	allAssigned.Waves = 5

	for _, tc := range []struct {
		name     string
		r        Rollout
		statuses map[string]firmware.Status
		now      time.Time
		want     Step
	}{
		{"first wave at once: 20% of 10 is 2", base, nil, t0,
			Step{State: RolloutRunning, Assign: []string{"dev-00", "dev-01"}}},
		{"first wave ignores the interval", base, nil, t0.Add(-time.Hour),
			Step{State: RolloutRunning, Assign: []string{"dev-00", "dev-01"}}},
		{"wave 1 without reports waits", wave1, nil, t0.Add(time.Hour),
			Step{State: RolloutRunning}},
		{"wave 1 in flight waits", wave1, merge(report(wave1, firmware.StateApplied, "dev-00"), report(wave1, firmware.StateDownloading, "dev-01")), t0.Add(time.Hour),
			Step{State: RolloutRunning}},
		{"staged is not final when installing", wave1, report(wave1, firmware.StateStaged, "dev-00", "dev-01"), t0.Add(time.Hour),
			Step{State: RolloutRunning}},
		{"reports about another rollout do not count", wave1, other, t0.Add(time.Hour),
			Step{State: RolloutRunning}},
		{"wave 1 final, interval running: recheck at its end", wave1, report(wave1, firmware.StateApplied, "dev-00", "dev-01"), t0.Add(time.Minute),
			Step{State: RolloutRunning, Recheck: t0.Add(interval)}},
		{"wave 1 final, interval over: wave 2", wave1, report(wave1, firmware.StateApplied, "dev-00", "dev-01"), t0.Add(interval),
			Step{State: RolloutRunning, Assign: []string{"dev-02", "dev-03"}}},
		{"download only: staged is final", dl, report(dl, firmware.StateStaged, "dev-00", "dev-01"), t0.Add(interval),
			Step{State: RolloutRunning, Assign: []string{"dev-02", "dev-03"}}},
		{"one of two failed halts at once", wave1, merge(report(wave1, firmware.StateFailed, "dev-00"), report(wave1, firmware.StateDownloading, "dev-01")), t0,
			Step{State: RolloutHalted, Reason: "1 of 2 failed (50% > threshold 10%)"}},
		{"rolled back counts as failed", wave1, merge(report(wave1, firmware.StateRolledBack, "dev-00"), report(wave1, firmware.StateApplied, "dev-01")), t0,
			Step{State: RolloutHalted, Reason: "1 of 2 failed (50% > threshold 10%)"}},
		{"exactly the threshold does not halt", allAssigned, merge(report(allAssigned, firmware.StateFailed, "dev-00"), report(allAssigned, firmware.StateApplied, devs(10)[1:]...)), t0,
			Step{State: RolloutDone}},
		{"a bad last wave halts rather than completes", allAssigned, merge(report(allAssigned, firmware.StateFailed, "dev-00", "dev-01"), report(allAssigned, firmware.StateApplied, devs(10)[2:]...)), t0,
			Step{State: RolloutHalted, Reason: "2 of 10 failed (20% > threshold 10%)"}},
		{"all final: done", allAssigned, report(allAssigned, firmware.StateApplied, devs(10)...), t0,
			Step{State: RolloutDone}},
		{"halted assigns nothing", withState(wave1, RolloutHalted, "1 of 2 failed"), report(wave1, firmware.StateApplied, "dev-00", "dev-01"), t0.Add(time.Hour),
			Step{State: RolloutHalted, Reason: "1 of 2 failed"}},
		{"cancelled assigns nothing", withState(base, RolloutCancelled, "no"), nil, t0,
			Step{State: RolloutCancelled, Reason: "no"}},
		{"cancelled after wave 1 assigns nothing", withState(wave1, RolloutCancelled, ""), report(wave1, firmware.StateApplied, "dev-00", "dev-01"), t0.Add(time.Hour),
			Step{State: RolloutCancelled}},
		{"done stays done", withState(allAssigned, RolloutDone, ""), nil, t0,
			Step{State: RolloutDone}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.r.Next(tc.statuses, tc.now)
			if got.State != tc.want.State || got.Reason != tc.want.Reason || !slices.Equal(got.Assign, tc.want.Assign) || !got.Recheck.Equal(tc.want.Recheck) {
				t.Errorf("Next:\n got %+v\nwant %+v", got, tc.want)
			}
			if changes := got.changes(tc.r); changes != (len(tc.want.Assign) > 0 || tc.want.State != tc.r.State || tc.want.Reason != tc.r.Reason) {
				t.Errorf("changes() = %v", changes)
			}
		})
	}
}

func withState(r Rollout, s RolloutState, reason string) Rollout {
	r.State, r.Reason = s, reason
	return r
}

func TestRolloutThresholdZeroHaltsAtFirstFailure(t *testing.T) {
	r := running(100, 50, 0, 0)
	r = r.Apply(r.Next(nil, t0), t0)
	st := r.Next(report(r, firmware.StateFailed, r.Assigned[0]), t0)
	if st.State != RolloutHalted || st.Reason != "1 of 50 failed (2% > threshold 0%)" {
		t.Errorf("got %+v", st)
	}
	// Threshold 100 never halts: a rollout whose devices all failed ends.
	r = running(10, 100, 100, 0)
	r = r.Apply(r.Next(nil, t0), t0)
	if st := r.Next(report(r, firmware.StateFailed, r.Assigned...), t0); st.State != RolloutDone {
		t.Errorf("threshold 100, all failed: %+v", st)
	}
}

// A whole rollout, driven as the controller does: every wave's devices
// apply at once, time moves by the interval.
func TestRolloutRunsToTheEnd(t *testing.T) {
	r := running(10, 30, 10, time.Minute)
	statuses := map[string]firmware.Status{}
	now := t0
	var waves [][]string
	for i := 0; i < 20 && r.State == RolloutRunning; i++ {
		st := r.Next(statuses, now)
		if !st.changes(r) {
			if st.Recheck.IsZero() {
				t.Fatalf("stuck at %+v", r)
			}
			now = st.Recheck
			continue
		}
		r = r.Apply(st, now)
		if len(st.Assign) > 0 {
			waves = append(waves, st.Assign)
			for _, d := range st.Assign {
				statuses[d] = firmware.Status{Device: d, Rollout: r.ID, State: firmware.StateApplied}
			}
		}
	}
	if r.State != RolloutDone || r.Waves != 4 || len(waves) != 4 || len(waves[3]) != 1 || !slices.Equal(r.Assigned, r.Devices) {
		t.Errorf("rollout ended %s after %d waves %v, assigned %v", r.State, r.Waves, waves, r.Assigned)
	}
	if want := t0.Add(3 * time.Minute); !r.LastWave.Equal(want) {
		t.Errorf("last wave at %s, want %s", r.LastWave, want)
	}
}

func TestNewRollout(t *testing.T) {
	signed := testManifest(t, "sensor-fw", "1.4.0+build.7")
	spec := RolloutSpec{Manifest: signed, Target: "all", Percent: 20, Threshold: 10, Window: "22:00-04:00"}
	r, err := NewRollout(spec, devs(10), t0)
	if err != nil {
		t.Fatal(err)
	}
	if r.ID != "sensor-fw-1.4.0_build.7-1740830400" || r.Name != "sensor-fw" || r.Version != "1.4.0+build.7" || r.Platform != "linux/arm64" {
		t.Errorf("rollout %s: %s %s %s", r.ID, r.Name, r.Version, r.Platform)
	}
	if r.State != RolloutRunning || len(r.Assigned) != 0 || r.Waves != 0 || !bytes.Equal(r.Manifest, signed) {
		t.Errorf("new rollout %+v", r)
	}
	d := r.Desired()
	if d.Rollout != r.ID || !d.Install || d.Window != "22:00-04:00" || !bytes.Equal(d.Manifest, signed) {
		t.Errorf("Desired %+v", d)
	}
	// Same devices, sorted, spread in an order fixed by the id.
	sorted := slices.Sorted(slices.Values(r.Devices))
	if !slices.Equal(sorted, devs(10)) {
		t.Errorf("devices %v", r.Devices)
	}
	if slices.Equal(r.Devices, devs(10)) {
		t.Errorf("devices not shuffled: %v", r.Devices)
	}
	rev := slices.Clone(devs(10))
	slices.Reverse(rev)
	if again, _ := NewRollout(spec, append(rev, "dev-03"), t0); !slices.Equal(again.Devices, r.Devices) {
		t.Errorf("same id, same devices in another order: %v, want %v", again.Devices, r.Devices)
	}
	if later, _ := NewRollout(spec, devs(10), t0.Add(time.Second)); slices.Equal(later.Devices, r.Devices) {
		t.Errorf("another id, the same order")
	}

	// Everything wrong is reported at once.
	_, err = NewRollout(RolloutSpec{Manifest: []byte("{}"), Target: "some", Percent: 101, Threshold: -1, WaveInterval: -1, Window: "25:00-01:00"}, devs(1), t0)
	for _, want := range []string{"manifest", "target", "percent", "threshold", "wave interval", "window"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not mention %s", err, want)
		}
	}
	if _, err := NewRollout(spec, nil, t0); err == nil {
		t.Error("a rollout to no devices")
	}
	for _, target := range []string{"all", "group=g1", "device=pi-1"} {
		if _, _, err := parseRolloutTarget(target); err != nil {
			t.Errorf("target %s: %v", target, err)
		}
	}
	for _, target := range []string{"", "All", "group=", "device=a.b", "device", "host=x", "group=-x"} {
		if _, _, err := parseRolloutTarget(target); err == nil {
			t.Errorf("target %q accepted", target)
		}
	}
}

func TestRolloutIDIsAKey(t *testing.T) {
	for _, tc := range []struct{ name, version, want string }{
		{"fw", "1.0", "fw-1.0-1740830400"},
		{"fw", "1.0+x", "fw-1.0_x-1740830400"},
		{"group.x", "1", "_group.x-1-1740830400"},
		{"a..b", "1", "a._b-1-1740830400"},
	} {
		if got := rolloutID(tc.name, tc.version, t0); got != tc.want || !isRolloutKey(got) {
			t.Errorf("rolloutID(%q, %q) = %q, want %q", tc.name, tc.version, got, tc.want)
		}
	}
}
