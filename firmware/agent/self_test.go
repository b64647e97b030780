package agent

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/canopy-iot/canopy/firmware"
)

// The binaries of these tests are shell scripts: Launch's start check
// runs the new binary, and a script says what it was asked.
const (
	selfV1  = "#!/bin/sh\necho 1.0.0\n"
	selfV2  = "#!/bin/sh\necho 2.0.0\n"
	selfPkg = "#!/bin/sh\necho packaged\n"
)

// selfFixture is a device's files: the packaged binary, the data
// directory's Binary and the state directory, and the restarts asked for.
type selfFixture struct {
	t        *testing.T
	packaged string
	binary   string
	state    string
	staged   string
	restarts int
}

func newSelfFixture(t *testing.T) *selfFixture {
	t.Helper()
	dir := t.TempDir()
	f := &selfFixture{
		t:        t,
		packaged: filepath.Join(dir, "usr", "bin", "canopy-leaf"),
		binary:   SelfBinary(filepath.Join(dir, "data")),
		state:    filepath.Join(dir, "data", "firmware", selfStateSubdir),
		staged:   filepath.Join(dir, "staged"),
	}
	selfWrite(t, f.packaged, selfPkg)
	return f
}

// installer is the self installer of a process running exe at version.
func (f *selfFixture) installer(exe, version string) *SelfInstaller {
	return &SelfInstaller{
		Binary: f.binary, StateDir: f.state, Version: version,
		Restart: func() error { f.restarts++; return nil },
		exe:     exe,
	}
}

// install runs an Install of content as version from a process running
// exe at fromVersion, as the agent does.
func (f *selfFixture) install(exe, fromVersion, version, content string) {
	f.t.Helper()
	selfWrite(f.t, f.staged, content)
	err := f.installer(exe, fromVersion).Install(context.Background(), firmware.Manifest{Name: "canopy-leaf", Version: version}, f.staged)
	if !errors.Is(err, ErrRestarting) {
		f.t.Fatalf("Install: %v, want ErrRestarting", err)
	}
}

func (f *selfFixture) pending() (selfUpdate, bool) {
	u, err := selfReadJSON[selfUpdate](filepath.Join(f.state, selfPendingFile))
	if errors.Is(err, os.ErrNotExist) {
		return u, false
	}
	if err != nil {
		f.t.Fatal(err)
	}
	return u, true
}

func selfWrite(t testing.TB, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o755); err != nil {
		t.Fatal(err)
	}
}

// selfContent fails the test unless path holds want, executable.
func selfContent(t testing.TB, path, want string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != want {
		t.Fatalf("%s holds %q, want %q", path, b, want)
	}
	fi, _ := os.Stat(path)
	if fi.Mode().Perm()&0o111 != 0o111 {
		t.Fatalf("%s has mode %v, want executable", path, fi.Mode())
	}
}

func selfAbsent(t testing.TB, path string) {
	t.Helper()
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("%s exists (%v), want it gone", path, err)
	}
}

func healthyNow(context.Context) error { return nil }

// Install from a self-updated binary: the new binary takes its place, the
// running one is kept as previous, the update is on trial.
func TestSelfInstallKeepsPreviousAndSwaps(t *testing.T) {
	f := newSelfFixture(t)
	selfWrite(t, f.binary, selfV1)
	f.install(f.binary, "1.0.0", "2.0.0", selfV2)

	selfContent(t, f.binary, selfV2)
	selfContent(t, filepath.Join(f.state, selfPreviousFile), selfV1)
	selfAbsent(t, f.binary+selfNewExt)
	u, ok := f.pending()
	if !ok || u.Version != "2.0.0" || u.PreviousVersion != "1.0.0" || !u.Previous || u.Attempts != 0 || u.SHA256 == "" {
		t.Fatalf("pending.json: %+v (present %v)", u, ok)
	}
	if f.restarts != 1 {
		t.Fatalf("%d restarts, want 1", f.restarts)
	}
	// A second update while this one is on trial is refused.
	selfWrite(t, f.staged, "#!/bin/sh\n")
	err := f.installer(f.binary, "1.0.0").Install(context.Background(), firmware.Manifest{Version: "3.0.0"}, f.staged)
	if err == nil || errors.Is(err, ErrRestarting) {
		t.Fatalf("second Install: %v, want an error", err)
	}
}

func TestSelfInstallChecks(t *testing.T) {
	f := newSelfFixture(t)
	selfWrite(t, f.staged, selfV2)
	s := f.installer(f.packaged, "1.0.0")
	s.Restart = nil
	if err := s.Install(context.Background(), firmware.Manifest{Version: "2.0.0"}, f.staged); err == nil || !strings.Contains(err.Error(), "Restart") {
		t.Fatalf("Install without Restart: %v", err)
	}
	s = f.installer(f.packaged, "1.0.0")
	err := s.Install(context.Background(), firmware.Manifest{Version: "2.0.0", SHA256: strings.Repeat("0", 64)}, f.staged)
	if err == nil || !strings.Contains(err.Error(), "not the manifest's") {
		t.Fatalf("Install of a file that is not the manifest's: %v", err)
	}
	selfAbsent(t, f.binary)
	selfAbsent(t, f.binary+selfNewExt)
	if _, ok := f.pending(); ok {
		t.Fatal("pending.json written for a refused install")
	}
	// A restart that cannot be arranged undoes the install.
	s.Restart = func() error { return errors.New("no service manager") }
	if err := s.Install(context.Background(), firmware.Manifest{Version: "2.0.0"}, f.staged); err == nil || errors.Is(err, ErrRestarting) {
		t.Fatalf("Install with a failing restart: %v", err)
	}
	selfAbsent(t, f.binary)
	selfAbsent(t, filepath.Join(f.state, selfRolledBackFile))
	if _, ok := f.pending(); ok {
		t.Fatal("pending.json left by an undone install")
	}
}

func TestSelfResumeHealthyApplies(t *testing.T) {
	f := newSelfFixture(t)
	selfWrite(t, f.binary, selfV1)
	f.install(f.binary, "1.0.0", "2.0.0", selfV2)

	s := f.installer(f.binary, "2.0.0")
	s.Check = []string{"sh", "-c", `test "$CANOPY_FW_VERSION" = 2.0.0 && test "$CANOPY_FW_PREVIOUS_VERSION" = 1.0.0 && test "$CANOPY_FW_NAME" = canopy-leaf`}
	st, ok := s.Resume(context.Background(), healthyNow)
	if !ok || st.State != firmware.StateApplied || st.Version != "2.0.0" || st.Running != "2.0.0" || st.Name != "canopy-leaf" {
		t.Fatalf("Resume: %+v %v, want applied 2.0.0", st, ok)
	}
	if _, ok := f.pending(); ok {
		t.Fatal("pending.json left after applied")
	}
	selfContent(t, f.binary, selfV2)
	selfContent(t, filepath.Join(f.state, selfPreviousFile), selfV1) // for a rollback by hand
	if f.restarts != 1 {
		t.Fatalf("%d restarts, want only Install's", f.restarts)
	}
	if st, ok := s.Resume(context.Background(), healthyNow); ok {
		t.Fatalf("second Resume: %+v, want nothing pending", st)
	}
}

// A new binary that is not healthy, or fails its check, within the
// deadline is replaced by the previous one, which then reports the
// rollback once.
func TestSelfResumeUnhealthyRollsBack(t *testing.T) {
	cases := []struct {
		name    string
		healthy func(context.Context) error
		check   []string
		reason  string
	}{
		{"unhealthy", func(context.Context) error { return errors.New("uplink down") }, nil, "not healthy within 200ms: uplink down"},
		{"deadline", func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }, nil, "not healthy within 200ms: context deadline exceeded"},
		{"check fails", healthyNow, []string{"sh", "-c", `echo "version $CANOPY_FW_VERSION is bad"; exit 1`}, "check failed: sh: exit status 1: version 2.0.0 is bad"},
		{"check hangs", healthyNow, []string{"sleep", "10"}, "check failed: sleep: signal: killed (the deadline passed)"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newSelfFixture(t)
			selfWrite(t, f.binary, selfV1)
			f.install(f.binary, "1.0.0", "2.0.0", selfV2)

			s := f.installer(f.binary, "2.0.0")
			s.Deadline = 200 * time.Millisecond
			s.Check = c.check
			st, ok := s.Resume(context.Background(), c.healthy)
			if !ok || st.State != firmware.StateRolledBack || st.Version != "2.0.0" || st.Running != "1.0.0" || st.Reason != c.reason {
				t.Fatalf("Resume: %+v %v, want rolled-back with reason %q", st, ok, c.reason)
			}
			selfContent(t, f.binary, selfV1)
			if f.restarts != 2 {
				t.Fatalf("%d restarts, want Install's and Resume's", f.restarts)
			}
			if _, ok := f.pending(); ok {
				t.Fatal("pending.json left after the rollback")
			}

			// The previous binary runs again and reports the rollback once.
			old := f.installer(f.binary, "1.0.0")
			st, ok = old.Resume(context.Background(), healthyNow)
			if !ok || st.State != firmware.StateRolledBack || st.Version != "2.0.0" || st.Running != "1.0.0" || st.Reason != c.reason {
				t.Fatalf("previous binary's Resume: %+v %v", st, ok)
			}
			if st, ok := old.Resume(context.Background(), healthyNow); ok {
				t.Fatalf("rollback reported twice: %+v", st)
			}
		})
	}
}

// A trial cut short by the process stopping is judged at the next start.
func TestSelfResumeStoppedStaysOnTrial(t *testing.T) {
	f := newSelfFixture(t)
	selfWrite(t, f.binary, selfV1)
	f.install(f.binary, "1.0.0", "2.0.0", selfV2)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	st, ok := f.installer(f.binary, "2.0.0").Resume(ctx, func(ctx context.Context) error { return ctx.Err() })
	if ok {
		t.Fatalf("Resume on a stopping process: %+v, want nothing to report", st)
	}
	if _, ok := f.pending(); !ok {
		t.Fatal("the trial ended with the process")
	}
	selfContent(t, f.binary, selfV2)
}

// The first self-update runs over the packaged binary: a rollback removes
// the self-updated one, and the packaged one runs again.
func TestSelfRollbackToPackaged(t *testing.T) {
	f := newSelfFixture(t)
	f.install(f.packaged, "1.0.0", "2.0.0", selfV2)
	if u, _ := f.pending(); u.Previous {
		t.Fatalf("pending.json: %+v, want no previous binary (the packaged one ran)", u)
	}
	selfAbsent(t, filepath.Join(f.state, selfPreviousFile))

	st, _ := f.installer(f.binary, "2.0.0").Resume(context.Background(), func(context.Context) error { return errors.New("no uplink") })
	if st.State != firmware.StateRolledBack {
		t.Fatalf("Resume: %+v", st)
	}
	selfAbsent(t, f.binary)
	selfContent(t, f.packaged, selfPkg)
	if bin, err := f.installer(f.packaged, "1.0.0").Launch(context.Background(), nil); bin != "" || err != nil {
		t.Fatalf("Launch after the rollback: %q, %v; want the packaged binary", bin, err)
	}
	st, ok := f.installer(f.packaged, "1.0.0").Resume(context.Background(), healthyNow)
	if !ok || st.State != firmware.StateRolledBack || st.Running != "1.0.0" {
		t.Fatalf("packaged binary's Resume: %+v %v", st, ok)
	}
}

// Crash protection: the launcher counts the starts of a new binary on
// trial and puts the previous one back after SelfMaxAttempts.
func TestSelfLaunchRollsBackAfterMaxAttempts(t *testing.T) {
	f := newSelfFixture(t)
	selfWrite(t, f.binary, selfV1)
	f.install(f.binary, "1.0.0", "2.0.0", selfV2)

	launcher := f.installer(f.packaged, "1.0.0")
	for attempt := 1; attempt <= SelfMaxAttempts; attempt++ {
		bin, err := launcher.Launch(context.Background(), []string{"check-config"})
		if err != nil || bin != f.binary {
			t.Fatalf("start %d: Launch %q, %v; want %s", attempt, bin, err, f.binary)
		}
		if u, _ := f.pending(); u.Attempts != attempt {
			t.Fatalf("start %d: attempts %d", attempt, u.Attempts)
		}
		selfContent(t, f.binary, selfV2)
		// The new binary dies here, before it can judge itself.
	}
	bin, err := launcher.Launch(context.Background(), []string{"check-config"})
	if err != nil || bin != f.binary {
		t.Fatalf("start %d: Launch %q, %v", SelfMaxAttempts+1, bin, err)
	}
	selfContent(t, f.binary, selfV1)
	if _, ok := f.pending(); ok {
		t.Fatal("still on trial after the rollback")
	}
	st, ok := f.installer(f.binary, "1.0.0").Resume(context.Background(), healthyNow)
	want := "the new binary did not start (3 attempts)"
	if !ok || st.State != firmware.StateRolledBack || st.Version != "2.0.0" || st.Reason != want {
		t.Fatalf("previous binary's Resume: %+v %v, want rolled-back %q", st, ok, want)
	}
	if f.restarts != 1 {
		t.Fatalf("%d restarts: the launcher restarts nothing", f.restarts)
	}
}

// A new binary that cannot start here, or rejects the configuration (exit
// 2, which systemd does not restart), is rolled back before it starts.
func TestSelfLaunchStartCheck(t *testing.T) {
	f := newSelfFixture(t)
	selfWrite(t, f.binary, selfV1)
	bad := "#!/bin/sh\necho \"$1: unknown key firmware.x\" >&2\nexit 2\n"
	f.install(f.binary, "1.0.0", "2.0.1-bad", bad)

	bin, err := f.installer(f.packaged, "1.0.0").Launch(context.Background(), []string{"check-config", "--config", "leaf.yaml"})
	if err != nil || bin != f.binary {
		t.Fatalf("Launch: %q, %v", bin, err)
	}
	selfContent(t, f.binary, selfV1)
	st, _ := f.installer(f.binary, "1.0.0").Resume(context.Background(), healthyNow)
	want := "the new binary cannot start: canopy-leaf check-config --config leaf.yaml: exit status 2: check-config: unknown key firmware.x"
	if st.State != firmware.StateRolledBack || st.Reason != want {
		t.Fatalf("Resume: %+v, want reason %q", st, want)
	}
}

func TestSelfLaunch(t *testing.T) {
	t.Run("nothing installed", func(t *testing.T) {
		f := newSelfFixture(t)
		if bin, err := f.installer(f.packaged, "1.0.0").Launch(context.Background(), nil); bin != "" || err != nil {
			t.Fatalf("Launch: %q, %v", bin, err)
		}
	})
	t.Run("running it already", func(t *testing.T) {
		f := newSelfFixture(t)
		selfWrite(t, f.binary, selfV1)
		if bin, err := f.installer(f.binary, "1.0.0").Launch(context.Background(), nil); bin != "" || err != nil {
			t.Fatalf("Launch: %q, %v", bin, err)
		}
	})
	t.Run("applied", func(t *testing.T) {
		f := newSelfFixture(t)
		f.install(f.packaged, "1.0.0", "2.0.0", selfV2)
		f.installer(f.binary, "2.0.0").Resume(context.Background(), healthyNow)
		for range SelfMaxAttempts + 1 { // no longer on trial: not counted
			if bin, err := f.installer(f.packaged, "1.0.0").Launch(context.Background(), nil); bin != f.binary || err != nil {
				t.Fatalf("Launch: %q, %v", bin, err)
			}
		}
		selfContent(t, f.binary, selfV2)
	})
	t.Run("package upgraded since", func(t *testing.T) {
		f := newSelfFixture(t)
		f.install(f.packaged, "1.0.0", "2.0.0", selfV2)
		f.installer(f.binary, "2.0.0").Resume(context.Background(), healthyNow)
		if bin, err := f.installer(f.packaged, "1.5.0").Launch(context.Background(), nil); bin != "" || err != nil {
			t.Fatalf("Launch by a newer package: %q, %v; want the packaged binary", bin, err)
		}
		// An update installed from the launched binary keeps the packaged
		// version it was installed over.
		f.install(f.binary, "2.0.0", "3.0.0", "#!/bin/sh\necho 3.0.0\n")
		if bin, err := f.installer(f.packaged, "1.0.0").Launch(context.Background(), nil); bin != f.binary || err != nil {
			t.Fatalf("Launch: %q, %v", bin, err)
		}
	})
}

// Each step survives a cut: an install cut before the swap, and a
// rollback cut after it was decided, are finished by the next process.
func TestSelfCutShort(t *testing.T) {
	t.Run("before the swap", func(t *testing.T) {
		f := newSelfFixture(t)
		selfWrite(t, f.binary, selfV1)
		f.install(f.binary, "1.0.0", "2.0.0", selfV2)
		selfWrite(t, f.binary, selfV1) // as if the rename had not happened
		if bin, _ := f.installer(f.packaged, "1.0.0").Launch(context.Background(), nil); bin != f.binary {
			t.Fatalf("Launch: %q", bin)
		}
		if u, _ := f.pending(); u.Attempts != 0 {
			t.Fatalf("the old binary's start was counted: %+v", u)
		}
		st, ok := f.installer(f.binary, "1.0.0").Resume(context.Background(), healthyNow)
		if !ok || st.State != firmware.StateRolledBack || st.Reason != "the update was cut short before the new binary was in place" {
			t.Fatalf("Resume: %+v %v", st, ok)
		}
		selfContent(t, f.binary, selfV1)
	})
	t.Run("rollback decided", func(t *testing.T) {
		f := newSelfFixture(t)
		selfWrite(t, f.binary, selfV1)
		f.install(f.binary, "1.0.0", "2.0.0", selfV2)
		u, _ := f.pending()
		u.Reason = "check failed: x"
		if err := selfWriteJSON(filepath.Join(f.state, selfPendingFile), u); err != nil {
			t.Fatal(err)
		}
		if bin, _ := f.installer(f.packaged, "1.0.0").Launch(context.Background(), nil); bin != f.binary {
			t.Fatalf("Launch: %q", bin)
		}
		selfContent(t, f.binary, selfV1)
		st, _ := f.installer(f.binary, "1.0.0").Resume(context.Background(), healthyNow)
		if st.State != firmware.StateRolledBack || st.Reason != "check failed: x" {
			t.Fatalf("Resume: %+v", st)
		}
	})
}

func TestSelfFor(t *testing.T) {
	cfg := Config{Installers: map[string]InstallerConfig{
		"sensor-fw":   {Type: TypeFile, Path: "/srv/fw.bin"},
		"canopy-leaf": {Type: TypeSelf, Hook: []string{"/etc/canopy/check"}},
	}}.WithDefaults("/var/lib/canopy/leaf")
	s := SelfFor(cfg, "/var/lib/canopy/leaf")
	if s == nil || s.Binary != "/var/lib/canopy/leaf/bin/canopy-leaf" || s.StateDir != "/var/lib/canopy/leaf/firmware/self" ||
		len(s.Check) != 1 || s.Check[0] != "/etc/canopy/check" {
		t.Fatalf("SelfFor: %+v", s)
	}
	if s := SelfFor(Config{}.WithDefaults("/d"), "/d"); s != nil {
		t.Fatalf("SelfFor without a self installer: %+v", s)
	}
}
