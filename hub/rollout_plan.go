package hub

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/canopy-iot/canopy/firmware"
	"github.com/canopy-iot/canopy/hub/fleet"
)

// RolloutState is where a rollout is.
type RolloutState string

const (
	// RolloutRunning: the controller assigns waves as devices finish.
	RolloutRunning RolloutState = "running"
	// RolloutHalted: too many devices failed; no more are assigned, and
	// those assigned keep their Desired.
	RolloutHalted RolloutState = "halted"
	// RolloutDone: every device was assigned and reached a final state.
	RolloutDone RolloutState = "done"
	// RolloutCancelled: the operator stopped it; no more devices are
	// assigned, and those assigned keep their Desired.
	RolloutCancelled RolloutState = "cancelled"
)

// Keys of the "fw-rollouts" bucket that are not rollouts. A rollout id
// never equals or starts with them (see rolloutID).
const (
	// rolloutLeaseKey holds the lease of the hub node that runs the
	// tenant's rollouts (see rolloutLease).
	rolloutLeaseKey = "lease"
	// rolloutGroupPrefix + G holds group G: a JSON list of device names.
	rolloutGroupPrefix = "group."
)

// isRolloutKey reports whether a key of "fw-rollouts" is a rollout's.
func isRolloutKey(key string) bool {
	return key != rolloutLeaseKey && !strings.HasPrefix(key, rolloutGroupPrefix)
}

// Rollout is a staged rollout of one firmware to a fixed list of devices:
// the value of key ID in the tenant's "fw-rollouts" KV bucket, JSON. The
// command line creates it (running) and may cancel it; otherwise only
// the hub's rollout controller writes it, always with the revision it
// read, so that concurrent writers cannot lose each other's changes.
type Rollout struct {
	// ID is the key: "<name>-<version>-<unix seconds>", with characters
	// that a KV key cannot hold replaced by '_'.
	ID       string `json:"id"`
	Name     string `json:"name"`
	Version  string `json:"version"`
	Platform string `json:"platform"`
	// Target is what the operator asked for: "all", "group=<G>" or
	// "device=<D>".
	Target string `json:"target"`
	// Devices is the target resolved at creation, in rollout order:
	// shuffled deterministically by ID so that each wave is spread over
	// the fleet rather than taking devices in name order.
	Devices []string `json:"devices"`
	// Percent is the size of a wave in percent of Devices, rounded up
	// and at least one device. 0 means 100: everything at once.
	Percent int `json:"percent"`
	// WaveInterval is the least time between the starts of two waves; a
	// wave also waits until every device of the earlier ones is final.
	WaveInterval time.Duration `json:"wave_interval"`
	// Threshold halts the rollout as soon as the failed (or rolled-back)
	// devices are more than Threshold percent of those assigned so far.
	// 0 halts at the first failure; 100 never halts. The command line's
	// default is 10.
	Threshold int `json:"threshold"`
	// Window is the maintenance window passed on in each Desired.
	Window string `json:"window,omitempty"`
	// DownloadOnly: devices stage the artifact without applying it
	// (Desired.Install false), and "staged" counts as success.
	DownloadOnly bool `json:"download_only,omitempty"`
	// Manifest is the signed manifest (a firmware.Signed document),
	// fixed at creation: every wave ships exactly what was checked then.
	Manifest json.RawMessage `json:"manifest"`

	State  RolloutState `json:"state"`
	Reason string       `json:"reason,omitempty"` // why it halted or was cancelled
	// Waves is the number of waves started so far.
	Waves int `json:"waves"`
	// Assigned are the devices whose Desired names this rollout, in the
	// order they got it.
	Assigned []string `json:"assigned"`
	// LastWave is when the last wave started (the controller's clock).
	LastWave time.Time `json:"last_wave,omitzero"`
	Created  time.Time `json:"created"`
	Updated  time.Time `json:"updated"`
}

// RolloutSpec is what an operator asks for; see the Rollout fields of
// the same names.
type RolloutSpec struct {
	// Manifest is the signed manifest to roll out, as
	// Admin.FirmwareManifest returns it. Name, Version and Platform of
	// the rollout come from it.
	Manifest     []byte
	Target       string
	Percent      int
	WaveInterval time.Duration
	Threshold    int
	Window       string
	DownloadOnly bool
}

// DefaultRolloutThreshold is the command line's default Threshold.
const DefaultRolloutThreshold = 10

// Rollout errors.
var (
	// ErrNoRollout: no rollout by that id in the tenant.
	ErrNoRollout = errors.New("no such rollout")
	// ErrNoGroup: no device group by that name in the tenant.
	ErrNoGroup = errors.New("no such device group")
)

// Target kinds.
const (
	targetAll    = "all"
	targetGroup  = "group"
	targetDevice = "device"
)

// parseRolloutTarget splits "all", "group=G" or "device=D"; G and D must be
// valid names (see fleet.ValidName).
func parseRolloutTarget(s string) (kind, name string, err error) {
	if s == targetAll {
		return targetAll, "", nil
	}
	kind, name, ok := strings.Cut(s, "=")
	if !ok || (kind != targetGroup && kind != targetDevice) {
		return "", "", fmt.Errorf("target %q: want all, group=<group> or device=<device>", rolloutClip(s))
	}
	if !fleet.ValidName(name) {
		return "", "", fmt.Errorf("target %q: %s name not valid: want 1 to 64 of A-Z, a-z, 0-9, '_' and '-', not starting with '-'", rolloutClip(s), kind)
	}
	return kind, name, nil
}

// validate reports every field of the spec that cannot be used, at once,
// and the manifest it carries.
func (s RolloutSpec) validate() (firmware.Manifest, error) {
	var errs []error
	var m firmware.Manifest
	var signed firmware.Signed
	if err := json.Unmarshal(s.Manifest, &signed); err != nil {
		errs = append(errs, fmt.Errorf("manifest: not a signed manifest: %w", err))
	} else if err := json.Unmarshal(signed.Manifest, &m); err != nil {
		errs = append(errs, fmt.Errorf("manifest: %w", err))
	} else if err := m.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("manifest: %w", err))
	}
	if _, _, err := parseRolloutTarget(s.Target); err != nil {
		errs = append(errs, err)
	}
	if s.Percent < 0 || s.Percent > 100 {
		errs = append(errs, fmt.Errorf("percent %d: want 1 to 100 (0 means 100)", s.Percent))
	}
	if s.WaveInterval < 0 {
		errs = append(errs, fmt.Errorf("wave interval %s: must not be negative", s.WaveInterval))
	}
	if s.Threshold < 0 || s.Threshold > 100 {
		errs = append(errs, fmt.Errorf("threshold %d: want 0 to 100", s.Threshold))
	}
	if s.Window != "" {
		if err := checkRolloutWindow(s.Window); err != nil {
			errs = append(errs, err)
		}
	}
	return m, errors.Join(errs...)
}

// checkRolloutWindow accepts "HH:MM-HH:MM" (24-hour clock; it may wrap
// midnight, and equal ends mean all day).
func checkRolloutWindow(w string) error {
	from, to, ok := strings.Cut(w, "-")
	if !ok || !isWindowClock(from) || !isWindowClock(to) {
		return fmt.Errorf("window %q: want HH:MM-HH:MM, e.g. 02:00-04:30", rolloutClip(w))
	}
	return nil
}

func isWindowClock(s string) bool {
	if len(s) != 5 || s[2] != ':' {
		return false
	}
	h, err1 := strconv.Atoi(s[:2])
	m, err2 := strconv.Atoi(s[3:])
	return err1 == nil && err2 == nil && h >= 0 && h < 24 && m >= 0 && m < 60
}

// NewRollout makes a running rollout of spec to devices (the target,
// resolved by the caller), created at now. It does not store it.
func NewRollout(spec RolloutSpec, devices []string, now time.Time) (Rollout, error) {
	m, err := spec.validate()
	if err != nil {
		return Rollout{}, err
	}
	if len(devices) == 0 {
		return Rollout{}, fmt.Errorf("target %s: no devices", spec.Target)
	}
	now = now.UTC().Round(0)
	r := Rollout{
		ID:           rolloutID(m.Name, m.Version, now),
		Name:         m.Name,
		Version:      m.Version,
		Platform:     m.Platform,
		Target:       spec.Target,
		Percent:      spec.Percent,
		WaveInterval: spec.WaveInterval,
		Threshold:    spec.Threshold,
		Window:       spec.Window,
		DownloadOnly: spec.DownloadOnly,
		Manifest:     json.RawMessage(slices.Clone(spec.Manifest)),
		State:        RolloutRunning,
		Assigned:     []string{},
		Created:      now,
		Updated:      now,
	}
	r.Devices = shuffleDevices(r.ID, devices)
	return r, nil
}

// rolloutID is "<name>-<version>-<unix>" with what a KV key cannot hold
// ('+' of a version, a '.' after a '.') replaced by '_'. It never equals
// the lease key (it ends in "-<unix>"); one that would start with the
// group prefix (a firmware named "group.x") gets a leading '_'.
func rolloutID(name, version string, now time.Time) string {
	id := []byte(name + "-" + version + "-" + strconv.FormatInt(now.Unix(), 10))
	for i, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '=' || c == '.') ||
			(c == '.' && (i == 0 || id[i-1] == '.')) {
			id[i] = '_'
		}
	}
	s := string(id)
	if !isRolloutKey(s) {
		s = "_" + s
	}
	return s
}

// shuffleDevices returns devices sorted, deduplicated and then shuffled with a
// seed derived from id: the same id always gives the same order.
func shuffleDevices(id string, devices []string) []string {
	out := slices.Clone(devices)
	slices.Sort(out)
	out = slices.Compact(out)
	sum := sha256.Sum256([]byte(id))
	rng := rand.New(rand.NewPCG(binary.BigEndian.Uint64(sum[:8]), binary.BigEndian.Uint64(sum[8:16])))
	rng.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}

// WaveSize is the number of devices a wave assigns: Percent of Devices,
// rounded up, at least one.
func (r Rollout) WaveSize() int {
	pct := r.Percent
	if pct <= 0 || pct > 100 {
		pct = 100
	}
	return max(1, (pct*len(r.Devices)+99)/100)
}

// Desired is the document the rollout writes into each assigned device's
// "fw-desired" key.
func (r Rollout) Desired() firmware.Desired {
	return firmware.Desired{Rollout: r.ID, Manifest: r.Manifest, Install: !r.DownloadOnly, Window: r.Window}
}

// Outcome is how a device stands in a rollout.
type Outcome int

const (
	// OutcomeQueued: not assigned yet.
	OutcomeQueued Outcome = iota
	// OutcomeInFlight: assigned, not final yet (no report for this
	// rollout, or downloading, staged for a window, applying...).
	OutcomeInFlight
	// OutcomeSucceeded: applied, or staged in a download-only rollout.
	OutcomeSucceeded
	// OutcomeFailed: failed or rolled back.
	OutcomeFailed
)

func (o Outcome) String() string {
	switch o {
	case OutcomeQueued:
		return "queued"
	case OutcomeInFlight:
		return "in-flight"
	case OutcomeSucceeded:
		return "succeeded"
	case OutcomeFailed:
		return "failed"
	}
	return "unknown"
}

// Outcome classifies an assigned device's latest status. A status counts
// only when it is about this rollout (Status.Rollout == ID): the device
// may still report on an earlier one.
func (r Rollout) Outcome(st firmware.Status, reported bool) Outcome {
	if !reported || st.Rollout != r.ID {
		return OutcomeInFlight
	}
	switch st.State {
	case firmware.StateApplied:
		return OutcomeSucceeded
	case firmware.StateStaged:
		if r.DownloadOnly {
			return OutcomeSucceeded
		}
	case firmware.StateFailed, firmware.StateRolledBack:
		return OutcomeFailed
	}
	return OutcomeInFlight
}

// Progress counts a rollout's devices.
type Progress struct {
	Total     int // len(Devices)
	Assigned  int
	Succeeded int // applied, or staged when download only
	Failed    int // failed or rolled back
}

// InFlight are assigned devices not final yet.
func (p Progress) InFlight() int { return p.Assigned - p.Succeeded - p.Failed }

// Progress counts the rollout's devices against their latest statuses
// (by device name).
func (r Rollout) Progress(statuses map[string]firmware.Status) Progress {
	p := Progress{Total: len(r.Devices), Assigned: len(r.Assigned)}
	for _, d := range r.Assigned {
		st, ok := statuses[d]
		switch r.Outcome(st, ok) {
		case OutcomeSucceeded:
			p.Succeeded++
		case OutcomeFailed:
			p.Failed++
		}
	}
	return p
}

// Step is what the controller should do for a rollout now.
type Step struct {
	// State and Reason are the rollout's new state; State equals the
	// rollout's when it does not change.
	State  RolloutState
	Reason string
	// Assign are the devices of a new wave, in order; none when no wave
	// starts now.
	Assign []string
	// Recheck, when not zero, is when the next wave may start if nothing
	// else happens first (the wave interval still runs).
	Recheck time.Time
}

// Next decides what to do with rollout r given the devices' latest
// statuses (by device name) at time now. It is pure: the controller
// writes what it says, and tests call it directly.
//
// In order: a rollout that is not running does nothing; one whose failed
// devices exceed Threshold percent of the assigned ones halts (also when
// every device is assigned: a bad last wave is a halt, not a success);
// the first wave starts at once; a later wave starts when every assigned
// device is final and WaveInterval has passed since the last wave; when
// every device is assigned and final the rollout is done.
func (r Rollout) Next(statuses map[string]firmware.Status, now time.Time) Step {
	keep := Step{State: r.State, Reason: r.Reason}
	if r.State != RolloutRunning {
		return keep
	}
	p := r.Progress(statuses)
	if p.Assigned > 0 && p.Failed*100 > r.Threshold*p.Assigned {
		return Step{State: RolloutHalted, Reason: fmt.Sprintf("%d of %d failed (%d%% > threshold %d%%)",
			p.Failed, p.Assigned, p.Failed*100/p.Assigned, r.Threshold)}
	}
	if p.InFlight() > 0 {
		return keep
	}
	queued := r.queued()
	if len(queued) == 0 {
		return Step{State: RolloutDone}
	}
	if r.Waves > 0 {
		if due := r.LastWave.Add(r.WaveInterval); now.Before(due) {
			keep.Recheck = due
			return keep
		}
	}
	keep.Assign = queued[:min(len(queued), r.WaveSize())]
	return keep
}

// queued are the devices not assigned yet, in rollout order.
func (r Rollout) queued() []string {
	assigned := make(map[string]bool, len(r.Assigned))
	for _, d := range r.Assigned {
		assigned[d] = true
	}
	var out []string
	for _, d := range r.Devices {
		if !assigned[d] {
			out = append(out, d)
		}
	}
	return out
}

// changes reports whether the step changes the rollout's document.
func (s Step) changes(r Rollout) bool {
	return len(s.Assign) > 0 || s.State != r.State || s.Reason != r.Reason
}

// Apply returns r after step s, taken at now.
func (r Rollout) Apply(s Step, now time.Time) Rollout {
	r.State, r.Reason = s.State, s.Reason
	if len(s.Assign) > 0 {
		r.Assigned = append(slices.Clip(r.Assigned), s.Assign...)
		r.Waves++
		r.LastWave = now.UTC().Round(0)
	}
	r.Updated = now.UTC().Round(0)
	return r
}

// rolloutClip shortens outside text for an error message.
func rolloutClip(s string) string {
	const n = 80
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}
