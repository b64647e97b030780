package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/canopy-iot/canopy/firmware"
	"github.com/canopy-iot/canopy/hub"
	"github.com/canopy-iot/canopy/hub/fleet"
	"github.com/canopy-iot/canopy/internal/hubtest"
	"github.com/canopy-iot/canopy/internal/proctest"
	"github.com/canopy-iot/canopy/internal/wait"
)

// Self-update through the whole path: a hub publishes canopy-leaf builds
// and rolls them out; real canopy-leaf processes, started and restarted by
// a stand-in for systemd the way canopy-leaf.service has it, download,
// verify, install, restart into the new binary, judge it, and keep it or
// roll it back by themselves.
//
//   - pi-1: 1.0.0 → 2.0.0, which is healthy and passes the check: kept.
//     Then 2.0.0 → 2.0.1-bad, whose check fails: rolled back to 2.0.0
//     (the previous self-updated binary is restored).
//   - pi-2: 1.0.0 → 2.0.1-bad: rolled back to the packaged 1.0.0.
//   - pi-3: 1.0.0 → 2.0.2, a binary that dies at every start: after three
//     starts the launcher puts 1.0.0 back.
func TestIntegrationSelfUpdate(t *testing.T) {
	if testing.Short() {
		t.Skip("builds canopy-leaf three times")
	}
	build := func(v string) string {
		return proctest.Build(t, ".", "-X github.com/canopy-iot/canopy/internal/version.Version="+v)
	}
	v1, v2, bad := build("1.0.0"), build("2.0.0"), build("2.0.1-bad")
	// Not canopy-leaf at all: it passes the launcher's check-config and
	// dies when run.
	crash := filepath.Join(t.TempDir(), "crash")
	if err := os.WriteFile(crash, []byte("#!/bin/sh\n[ \"$1\" = check-config ] && exit 0\necho crashing >&2\nexit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}

	h, keys, admin := selfUpdateHub(t)
	tenant, err := keys.Tenant("acme")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	platform := runtime.GOOS + "/" + runtime.GOARCH
	publish := func(version, path string) []byte {
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		meta := hub.FirmwareMeta{Name: "canopy-leaf", Version: version, Platform: platform}
		if _, err := admin.PublishFirmware(ctx, "acme", meta, f); err != nil {
			t.Fatalf("publish %s: %v", version, err)
		}
		signed, _, err := admin.FirmwareManifest(ctx, "acme", "canopy-leaf", version, platform)
		if err != nil {
			t.Fatal(err)
		}
		return signed
	}
	m2, mBad, mCrash := publish("2.0.0", v2), publish("2.0.1-bad", bad), publish("2.0.2", crash)

	devices := map[string]*selfUpdateDevice{}
	for _, name := range []string{"pi-1", "pi-2", "pi-3"} {
		d := newSelfUpdateDevice(t, h, keys, name, tenant.FirmwareKey, v1)
		d.waitStart(t, "1.0.0")
		devices[name] = d
	}
	rollout := func(target string, manifest []byte) {
		t.Helper()
		r, err := admin.CreateRollout(ctx, "acme", hub.RolloutSpec{Manifest: manifest, Target: target, Threshold: 100})
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("rollout %s to %s", r.ID, target)
	}
	// waitStatus waits for device's firmware status at the hub.
	waitStatus := func(device string, state firmware.State, version, running string) firmware.Status {
		t.Helper()
		var st firmware.Status
		wait.For(t, 3*time.Minute, func() error {
			all, err := admin.FirmwareStatuses(ctx, "acme")
			if err != nil {
				return err
			}
			st = all[device]
			if st.State != state || st.Version != version || st.Running != running {
				return fmt.Errorf("%s: status %+v, want %s %s running %s\n%s", device, st, state, version, running, devices[device].log())
			}
			return nil
		})
		return st
	}

	// The good update is kept.
	rollout("device=pi-1", m2)
	waitStatus("pi-1", firmware.StateApplied, "2.0.0", "2.0.0")
	pi1 := devices["pi-1"]
	pi1.waitStart(t, "2.0.0")
	pi1.wantChecked(t, "2.0.0")
	if got := binaryVersion(t, pi1.binary()); got != "2.0.0" {
		t.Fatalf("pi-1's self-updated binary is %s", got)
	}
	pi1.wantNoFile(t, filepath.Join("firmware", "self", "pending.json"))

	// A bad update rolls back: on pi-1 to the self-updated 2.0.0, on pi-2
	// to the packaged 1.0.0. The crashing one rolls pi-3 back to 1.0.0.
	waitRolloutsDone(t, admin)
	if err := admin.SetDeviceGroup(ctx, "acme", "bad", []string{"pi-1", "pi-2"}); err != nil {
		t.Fatal(err)
	}
	rollout("group=bad", mBad)
	rollout("device=pi-3", mCrash)
	st := waitStatus("pi-1", firmware.StateRolledBack, "2.0.1-bad", "2.0.0")
	if !strings.Contains(st.Reason, "check failed") {
		t.Errorf("pi-1: rollback reason %q, want the check's failure", st.Reason)
	}
	st = waitStatus("pi-2", firmware.StateRolledBack, "2.0.1-bad", "1.0.0")
	if !strings.Contains(st.Reason, "check failed") {
		t.Errorf("pi-2: rollback reason %q, want the check's failure", st.Reason)
	}
	st = waitStatus("pi-3", firmware.StateRolledBack, "2.0.2", "1.0.0")
	if st.Reason != "the new binary did not start (3 attempts)" {
		t.Errorf("pi-3: rollback reason %q", st.Reason)
	}

	pi1.wantChecked(t, "2.0.0", "2.0.1-bad")
	pi1.waitStart(t, "2.0.0")
	if got := binaryVersion(t, pi1.binary()); got != "2.0.0" {
		t.Fatalf("pi-1's binary after the rollback is %s, want 2.0.0", got)
	}
	for _, name := range []string{"pi-2", "pi-3"} {
		d := devices[name]
		d.waitStart(t, "1.0.0")
		d.wantNoFile(t, filepath.Join("bin", "canopy-leaf")) // the packaged binary runs
	}
	devices["pi-2"].wantChecked(t, "2.0.1-bad")
	if n := devices["pi-3"].countLines(`crashing`); n != 3 {
		t.Errorf("pi-3: the crashing binary ran %d times, want 3\n%s", n, devices["pi-3"].log())
	}
	// Each start accounted for: no device loops after it settled.
	for name, want := range map[string]int{
		"pi-1": 4, // 1.0.0, 2.0.0, 2.0.1-bad, 2.0.0 again
		"pi-2": 3, // 1.0.0, 2.0.1-bad, 1.0.0 again
		"pi-3": 5, // 1.0.0, three starts of 2.0.2, 1.0.0 again
	} {
		if got := devices[name].svc.startCount(); got != want {
			t.Errorf("%s: %d starts, want %d\n%s", name, got, want, devices[name].log())
		}
	}
}

// selfUpdateHub runs an operator-mode hub with tenant acme.
func selfUpdateHub(t *testing.T) (*hub.Hub, *fleet.Keys, *hub.Admin) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "keys")
	keys, err := fleet.Init(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg := hub.Config{
		Listen:    "127.0.0.1:0",
		LeafNodes: hub.LeafNodes{Listen: "127.0.0.1:0"},
		JetStream: hub.JetStream{StoreDir: t.TempDir()},
		Operator:  hub.Operator{KeyDir: dir},
	}
	h := hubtest.Run(t, cfg)
	ctx := context.Background()
	admin := hub.NewAdmin(h.ClientURL(), nil, keys)
	_, accountJWT, err := keys.AddTenant("acme", fleet.DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.PushAccount(accountJWT); err != nil {
		t.Fatal(err)
	}
	if err := admin.EnsureTenantAssets(ctx, "acme", 1); err != nil {
		t.Fatal(err)
	}
	return h, keys, admin
}

func waitRolloutsDone(t *testing.T, admin *hub.Admin) {
	t.Helper()
	wait.For(t, time.Minute, func() error {
		rs, err := admin.Rollouts(context.Background(), "acme")
		if err != nil {
			return err
		}
		for _, r := range rs {
			if r.State == hub.RolloutRunning {
				return fmt.Errorf("rollout %s still running", r.ID)
			}
		}
		return nil
	})
}

// binaryVersion is what `path version` prints: "canopy-leaf 2.0.0 (…)".
func binaryVersion(t *testing.T, path string) string {
	t.Helper()
	out, err := exec.Command(path, "version").Output()
	if err != nil {
		t.Fatalf("%s version: %v", path, err)
	}
	f := strings.Fields(string(out))
	if len(f) < 2 {
		t.Fatalf("%s version: %q", path, out)
	}
	return f[1]
}

// selfUpdateDevice is one device: its data directory, its configuration
// and the service that runs canopy-leaf from the packaged binary.
type selfUpdateDevice struct {
	name, dir, data string
	svc             *service
}

func newSelfUpdateDevice(t *testing.T, h *hub.Hub, keys *fleet.Keys, name, firmwareKey, packaged string) *selfUpdateDevice {
	t.Helper()
	dir := t.TempDir()
	d := &selfUpdateDevice{name: name, dir: dir, data: filepath.Join(dir, "data")}
	creds, err := keys.AddDevice("acme", name)
	if err != nil {
		t.Fatal(err)
	}
	credsFile := filepath.Join(dir, "device.creds")
	if err := os.WriteFile(credsFile, creds, 0o600); err != nil {
		t.Fatal(err)
	}
	// The device's own check: it records each version it judges and
	// fails 2.0.1-bad.
	check := filepath.Join(dir, "check.sh")
	script := fmt.Sprintf("#!/bin/sh\necho \"$CANOPY_FW_VERSION\" >> %s\n[ \"$CANOPY_FW_VERSION\" != 2.0.1-bad ] || { echo \"$CANOPY_FW_VERSION fails the device's check\"; exit 1; }\n",
		filepath.Join(dir, "checked"))
	if err := os.WriteFile(check, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "leaf.yaml")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf(`version: 1
data_dir: %s
nats:
  listen: 127.0.0.1:0
mqtt:
  enabled: false
health:
  enabled: false
uplink:
  urls: [%s]
  credentials: %s
  reconnect_min: 20ms
  reconnect_max: 200ms
firmware:
  enabled: true
  trusted_keys: [%s]
  installers:
    canopy-leaf:
      type: self
      hook: [%s]
`, d.data, h.LeafNodeURL(), credsFile, firmwareKey, check)), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(packaged, "check-config", "--config", conf).CombinedOutput(); err != nil {
		t.Fatalf("check-config: %v\n%s", err, out)
	}
	d.svc = startService(t, packaged, dir, "run", "--config", conf)
	return d
}

func (d *selfUpdateDevice) binary() string { return filepath.Join(d.data, "bin", "canopy-leaf") }
func (d *selfUpdateDevice) log() string    { return d.svc.Log() }

// waitStart waits until the latest start of the service runs version and
// is ready.
func (d *selfUpdateDevice) waitStart(t *testing.T, version string) {
	t.Helper()
	wait.For(t, 2*time.Minute, func() error {
		select {
		case <-d.svc.done:
			t.Fatalf("%s: the service stopped\n%s", d.name, d.log())
		default:
		}
		v, ready := d.svc.latest()
		if v != version || !ready {
			return fmt.Errorf("%s: the latest start runs %q (ready %v), want %s ready\n%s", d.name, v, ready, version, d.log())
		}
		return nil
	})
}

// wantChecked fails unless the device's check judged exactly versions.
func (d *selfUpdateDevice) wantChecked(t *testing.T, versions ...string) {
	t.Helper()
	b, _ := os.ReadFile(filepath.Join(d.dir, "checked"))
	if got := strings.Fields(string(b)); strings.Join(got, " ") != strings.Join(versions, " ") {
		t.Fatalf("%s: the check judged %q, want %q", d.name, got, versions)
	}
}

func (d *selfUpdateDevice) wantNoFile(t *testing.T, rel string) {
	t.Helper()
	if _, err := os.Stat(filepath.Join(d.data, rel)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("%s: %s exists (%v)", d.name, rel, err)
	}
}

func (d *selfUpdateDevice) countLines(pattern string) int {
	re := regexp.MustCompile(pattern)
	n := 0
	for _, l := range strings.Split(d.log(), "\n") {
		if re.MatchString(l) {
			n++
		}
	}
	return n
}

// service plays systemd for canopy-leaf.service: it runs the command and,
// as Restart=on-failure with RestartPreventExitStatus=2 say, starts it
// again shortly after it exits with a failure or a signal, but not after
// exit status 0 or 2.
type service struct {
	mu      sync.Mutex
	lines   []string
	starts  []*start
	cur     *exec.Cmd
	stopped bool
	done    chan struct{}
}

// start is one start of the service.
type start struct {
	version string // from the last "starting" line: the launched binary's
	ready   bool
}

var (
	startingLine = regexp.MustCompile(`msg=starting version="canopy-leaf (\S+) `)
	readyLine    = regexp.MustCompile(`msg="leaf ready"`)
)

// restartDelay stands for the unit's RestartSec=2s.
const restartDelay = 100 * time.Millisecond

func startService(t *testing.T, bin, dir string, args ...string) *service {
	t.Helper()
	s := &service{done: make(chan struct{})}
	go func() {
		defer close(s.done)
		for n := 1; ; n++ {
			how := s.run(exec.Command(bin, args...), dir, n)
			if how == "" {
				return // stopped
			}
			s.add(fmt.Sprintf("[service] start %d ended: %s", n, how))
			if how == "exit status 0" || how == "exit status 2" {
				s.add("[service] not restarted (Restart=on-failure, RestartPreventExitStatus=2)")
				return
			}
			time.Sleep(restartDelay)
		}
	}()
	t.Cleanup(func() {
		s.mu.Lock()
		s.stopped = true
		if s.cur != nil {
			s.cur.Process.Kill()
		}
		s.mu.Unlock()
		<-s.done
		if t.Failed() {
			t.Logf("service log:\n%s", s.Log())
		}
	})
	return s
}

// run runs one start to its end and returns how it ended, "" when the
// service is stopped.
func (s *service) run(cmd *exec.Cmd, dir string, n int) string {
	cmd.Dir = dir
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return err.Error()
	}
	st := &start{}
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		return ""
	}
	if err := cmd.Start(); err != nil {
		s.mu.Unlock()
		return err.Error()
	}
	s.cur = cmd
	s.starts = append(s.starts, st)
	s.mu.Unlock()
	sc := bufio.NewScanner(stderr)
	for sc.Scan() {
		line := sc.Text()
		s.mu.Lock()
		s.lines = append(s.lines, fmt.Sprintf("[start %d] %s", n, line))
		if m := startingLine.FindStringSubmatch(line); m != nil {
			st.version, st.ready = m[1], false
		}
		if readyLine.MatchString(line) {
			st.ready = true
		}
		s.mu.Unlock()
	}
	err = cmd.Wait()
	s.mu.Lock()
	stopped := s.stopped
	s.mu.Unlock()
	switch {
	case stopped:
		return ""
	case err == nil:
		return "exit status 0"
	default:
		return err.Error()
	}
}

func (s *service) add(line string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lines = append(s.lines, line)
}

// Log is every start's standard error and the service's own lines.
func (s *service) Log() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Join(s.lines, "\n")
}

// latest is the version the latest start runs and whether it is ready.
func (s *service) latest() (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.starts) == 0 {
		return "", false
	}
	st := s.starts[len(s.starts)-1]
	return st.version, st.ready
}

func (s *service) startCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.starts)
}
