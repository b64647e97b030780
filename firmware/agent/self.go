package agent

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/canopy-iot/canopy/firmware"
	"github.com/canopy-iot/canopy/internal/version"
)

// Self-update defaults.
const (
	// DefaultSelfDeadline is how long a new canopy-leaf has, at each
	// start, to become healthy and pass its check.
	DefaultSelfDeadline = 2 * time.Minute
	// SelfMaxAttempts is how many times the launcher starts a new binary
	// that has not yet been judged healthy before it puts the previous
	// one back: a binary that crashes (or hangs until systemd kills it)
	// before Resume can judge it is rolled back all the same.
	SelfMaxAttempts = 3
)

// EnvLaunched is set to "1" in the environment of the binary the
// launcher runs, so that it does not launch again.
const EnvLaunched = "CANOPY_LAUNCHED"

// envPreviousVersion tells a self-update's check command the version it
// would go back to.
const envPreviousVersion = "CANOPY_FW_PREVIOUS_VERSION"

// The self installer's files. Binary's default is <data_dir>/bin/canopy-leaf
// and the records' directory <firmware dir>/self. Changing a name strands
// what devices have on disk.
const (
	selfBinaryDir      = "bin"
	selfBinaryName     = "canopy-leaf"
	selfStateSubdir    = "self"
	selfPendingFile    = "pending.json"    // an update on trial
	selfRolledBackFile = "rolledback.json" // a rollback not yet reported
	selfInstalledFile  = "installed.json"  // what Binary is
	selfPreviousFile   = "previous"        // the binary a rollback restores
	selfPreviousInfo   = "previous.json"   // what it is (installed.json before the update)
	selfNewExt         = ".new"            // the new binary, beside Binary until the swap
)

// SelfBinary is the binary self-updates install under a leaf's data
// directory. The packaged /usr/bin/canopy-leaf cannot be replaced: the
// service's ProtectSystem=strict makes /usr read-only to it.
func SelfBinary(dataDir string) string {
	return filepath.Join(dataDir, selfBinaryDir, selfBinaryName)
}

// SelfFor returns the self installer that cfg (with its defaults applied)
// configures, with its files under dataDir and cfg.Dir, or nil when no
// installer is of type self. The agent and the launcher both build it
// here so that they agree on the files. Restart is left for the caller.
func SelfFor(cfg Config, dataDir string) *SelfInstaller {
	for _, ic := range cfg.Installers {
		if ic.Type == TypeSelf {
			return &SelfInstaller{
				Binary:   SelfBinary(dataDir),
				StateDir: filepath.Join(cfg.Dir, selfStateSubdir),
				Check:    ic.Hook,
			}
		}
	}
	return nil
}

// SelfInstaller replaces canopy-leaf's own binary and keeps the one it
// replaces. The new binary runs on trial: at each of its starts it has
// Deadline to become healthy (its uplink connected, Check passing), else
// the previous binary is put back and the process restarted. A new
// binary that dies before it can be judged is rolled back by Launch,
// which the packaged binary runs before starting anything.
//
// State, in StateDir: pending.json (the update on trial), rolledback.json
// (a rollback the previous binary reports once), installed.json (what
// Binary is), previous and previous.json (the binary a rollback restores,
// kept after a success for rolling back by hand). Every file is written
// atomically; each step can be cut by a power loss and resumed.
type SelfInstaller struct {
	// Binary is the executable that updates replace and the launcher
	// runs in place of the packaged one. Required; see SelfBinary.
	Binary string
	// StateDir holds the records and the previous binary. Required.
	StateDir string
	// Deadline is how long the new binary has, at each start, to become
	// healthy and pass Check. Default: DefaultSelfDeadline.
	Deadline time.Duration
	// Check, when set, is a command (argv, no shell) that must exit 0
	// for the new binary to be kept. It runs once the process is
	// healthy, within Deadline, with CANOPY_FW_NAME, CANOPY_FW_VERSION
	// (the new version) and CANOPY_FW_PREVIOUS_VERSION in its
	// environment. Default: none.
	Check []string
	// Restart ends this process soon, cleanly, so that the service
	// manager starts it again: under canopy-leaf.service (Restart=
	// on-failure) by making the run return an error, so that the process
	// exits 1. It must not wait for the end: Install returns
	// ErrRestarting after it for the agent to report "applying".
	// Required by Install and Resume.
	Restart func() error
	// Version is this process's version. Default: version.Version.
	Version string
	// Log receives the installer's logs. Default: discarded.
	Log *slog.Logger

	exe string // the running executable; "" is this process's own (tests set it)
}

var (
	_ Installer = (*SelfInstaller)(nil)
	_ Resumer   = (*SelfInstaller)(nil)
)

// selfUpdate is pending.json, and rolledback.json once rolled back.
type selfUpdate struct {
	Name            string `json:"name"`
	Version         string `json:"version"`
	SHA256          string `json:"sha256"` // of the new binary: how a process knows it is the new one
	PreviousVersion string `json:"previous_version"`
	// Previous is true when StateDir/previous holds the binary to
	// restore; false when Binary did not run before the update (the
	// packaged binary did), and a rollback removes Binary.
	Previous bool      `json:"previous"`
	Started  time.Time `json:"started"`
	// Attempts counts the launcher's starts of the new binary.
	Attempts int `json:"attempts"`
	// Reason is set once a rollback is decided, before it is done: any
	// process that finds it finishes the rollback.
	Reason string `json:"reason,omitempty"`
}

// selfBinaryInfo is installed.json: what Binary is.
type selfBinaryInfo struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	SHA256  string `json:"sha256"`
	// Packaged is the version of the packaged binary when Binary was
	// installed. The launcher runs Binary only while the packaged binary
	// still has that version: a package upgrade since wins.
	Packaged string `json:"packaged"`
}

func (s *SelfInstaller) path(name string) string { return filepath.Join(s.StateDir, name) }

func (s *SelfInstaller) log() *slog.Logger {
	if s.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.Log.With("component", "self-update")
}

func (s *SelfInstaller) version() string {
	if s.Version == "" {
		return version.Version
	}
	return s.Version
}

func (s *SelfInstaller) deadline() time.Duration {
	if s.Deadline <= 0 {
		return DefaultSelfDeadline
	}
	return s.Deadline
}

// executable is the running binary. On Linux /proc/self/exe names the
// very file the process runs, even after Binary was replaced.
func (s *SelfInstaller) executable() string {
	if s.exe != "" {
		return s.exe
	}
	if runtime.GOOS == "linux" {
		return "/proc/self/exe"
	}
	exe, _ := os.Executable()
	return exe
}

func (s *SelfInstaller) checkFields(restart bool) error {
	var missing []string
	if s.Binary == "" {
		missing = append(missing, "Binary")
	}
	if s.StateDir == "" {
		missing = append(missing, "StateDir")
	}
	if restart && s.Restart == nil {
		missing = append(missing, "Restart")
	}
	if len(missing) > 0 {
		return fmt.Errorf("self installer: %s not set", strings.Join(missing, ", "))
	}
	return nil
}

// Install puts the artifact at path (a canopy-leaf binary) in place of
// Binary, keeping the binary that runs now, records the update as on
// trial and restarts the process. It returns ErrRestarting once the
// restart is arranged.
func (s *SelfInstaller) Install(ctx context.Context, m firmware.Manifest, path string) error {
	if err := s.checkFields(true); err != nil {
		return err
	}
	if _, err := os.Stat(s.path(selfPendingFile)); err == nil {
		return fmt.Errorf("self-update to %s: another update is still on trial (%s)", m.Version, s.path(selfPendingFile))
	}
	if err := os.MkdirAll(filepath.Dir(s.Binary), 0o755); err != nil {
		return fmt.Errorf("self-update: %w", err)
	}
	if err := os.MkdirAll(s.StateDir, 0o750); err != nil {
		return fmt.Errorf("self-update: %w", err)
	}
	// Beside Binary, so that the swap is a rename on one file system.
	newPath := s.Binary + selfNewExt
	if err := copyFileAtomic(path, newPath, 0o755); err != nil {
		return fmt.Errorf("self-update: copy the new binary: %w", err)
	}
	// Hashed as written: the hash is how the next process knows whether
	// it is the new binary.
	sum, err := selfFileSHA256(newPath)
	if err == nil && m.SHA256 != "" && !strings.EqualFold(sum, m.SHA256) {
		err = fmt.Errorf("its SHA-256 %s is not the manifest's %s", sum, m.SHA256)
	}
	if err != nil {
		os.Remove(newPath)
		return fmt.Errorf("self-update: the copied binary: %w", err)
	}

	// What runs now is what a rollback restores: Binary when this
	// process was launched from it, else the packaged binary, which a
	// rollback brings back by removing Binary.
	running := selfSameFile(s.executable(), s.Binary)
	u := selfUpdate{
		Name: m.Name, Version: m.Version, SHA256: sum,
		PreviousVersion: s.version(), Previous: running, Started: time.Now().UTC(),
	}
	cur, curErr := selfReadJSON[selfBinaryInfo](s.path(selfInstalledFile))
	packaged := s.version()
	if running {
		packaged = cur.Packaged
		if err := copyFileAtomic(s.Binary, s.path(selfPreviousFile), 0o755); err != nil {
			os.Remove(newPath)
			return fmt.Errorf("self-update: keep the running binary: %w", err)
		}
		if curErr == nil {
			err = selfWriteJSON(s.path(selfPreviousInfo), cur)
		} else {
			err = selfRemove(s.path(selfPreviousInfo))
		}
	} else {
		// A previous binary from an older update is not what runs now:
		// left there, it would mislead whoever rolls back by hand.
		err = errors.Join(selfRemove(s.path(selfPreviousFile)), selfRemove(s.path(selfPreviousInfo)))
	}
	if err == nil {
		// A stale report of an older rollback would be taken for this
		// update's.
		err = selfRemove(s.path(selfRolledBackFile))
	}
	if err == nil {
		err = selfWriteJSON(s.path(selfPendingFile), u)
	}
	if err == nil {
		err = selfWriteJSON(s.path(selfInstalledFile), selfBinaryInfo{Name: m.Name, Version: m.Version, SHA256: sum, Packaged: packaged})
	}
	if err == nil {
		err = renameDurable(newPath, s.Binary)
	}
	if err != nil {
		s.undo(&u, fmt.Sprintf("install failed: %v", err))
		return fmt.Errorf("self-update to %s: %w", m.Version, err)
	}
	s.log().Info("new binary installed, restarting to run it", "name", m.Name, "version", m.Version, "previous_version", u.PreviousVersion, "binary", s.Binary)
	if err := s.Restart(); err != nil {
		// Without a restart nobody would judge the new binary: go back
		// to the running one now, and say why to the caller only.
		s.undo(&u, fmt.Sprintf("cannot restart: %v", err))
		return fmt.Errorf("self-update to %s: restart: %w", m.Version, err)
	}
	return ErrRestarting
}

// undo rolls back an update that this process began and reports itself.
func (s *SelfInstaller) undo(u *selfUpdate, reason string) {
	os.Remove(s.Binary + selfNewExt)
	if _, err := os.Stat(s.path(selfPendingFile)); err != nil {
		return // nothing recorded, nothing swapped
	}
	if err := s.rollback(u, reason); err != nil {
		s.log().Error("cannot undo the self-update", "err", err)
		return
	}
	os.Remove(s.path(selfRolledBackFile))
}

// Resume judges the binary that runs after an update. In the new
// binary it waits up to Deadline for healthy and then Check: applied
// when both pass, else the previous binary is put back, Restart is
// called and rolled-back returned (the previous binary reports it again
// once it runs, in case this process could not). In any other binary it
// finishes a rollback and reports it once. It returns false when nothing
// was pending, and when ctx ended before the new binary was judged: the
// next start judges it.
func (s *SelfInstaller) Resume(ctx context.Context, healthy func(context.Context) error) (firmware.Status, bool) {
	log := s.log()
	if err := s.checkFields(false); err != nil {
		log.Error("cannot resume the self-update", "err", err)
		return firmware.Status{}, false
	}
	u, err := selfReadJSON[selfUpdate](s.path(selfPendingFile))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return s.reportRollback()
	case err != nil:
		// Without the record nothing can be judged or restored: keep
		// the file aside for a person and report it once.
		log.Error("self-update record unreadable", "err", err)
		os.Rename(s.path(selfPendingFile), s.path(selfPendingFile+".unreadable"))
		return s.status(firmware.Status{State: firmware.StateFailed, Reason: fmt.Sprintf("self-update record unreadable: %v", err)}), true
	}
	if u.Reason != "" { // a rollback was decided, then cut short
		if err := s.rollback(&u, u.Reason); err != nil {
			log.Error("cannot finish the rollback", "err", err)
		}
		return s.reportRollback()
	}
	sum, err := selfFileSHA256(s.executable())
	if err != nil {
		log.Warn("cannot hash the running binary", "err", err)
	}
	if !strings.EqualFold(sum, u.SHA256) {
		// This is not the new binary: it never ran, or not here.
		reason := "the new binary did not start"
		if b, _ := selfFileSHA256(s.Binary); !strings.EqualFold(b, u.SHA256) {
			reason = "the update was cut short before the new binary was in place"
		}
		if err := s.rollback(&u, reason); err != nil {
			log.Error("cannot roll back the self-update", "err", err)
		}
		return s.reportRollback()
	}

	log.Info("new binary on trial", "version", u.Version, "attempt", u.Attempts, "deadline", s.deadline())
	dctx, cancel := context.WithTimeout(ctx, s.deadline())
	defer cancel()
	err = healthy(dctx)
	if err == nil {
		err = s.runCheck(dctx, u)
	}
	if err == nil {
		if err := selfRemove(s.path(selfPendingFile)); err != nil {
			// Still on trial on disk: the next start judges it again.
			log.Error("cannot record the self-update as applied", "err", err)
		}
		if s.version() != u.Version {
			log.Warn("the new binary's version is not the manifest's", "version", s.version(), "manifest_version", u.Version)
		}
		log.Info("new binary kept", "version", u.Version, "previous_version", u.PreviousVersion)
		return s.status(firmware.Status{Name: u.Name, Version: u.Version, State: firmware.StateApplied}), true
	}
	if ctx.Err() != nil {
		return firmware.Status{}, false
	}
	reason := fmt.Sprintf("not healthy within %v: %v", s.deadline(), err)
	if errors.Is(err, errCheck) {
		reason = err.Error()
	}
	log.Error("new binary failed its trial, rolling back", "version", u.Version, "err", reason)
	if err := s.rollback(&u, reason); err != nil {
		log.Error("cannot roll back the self-update", "err", err)
	}
	if s.Restart == nil {
		log.Error("cannot restart into the previous binary: no Restart")
	} else if err := s.Restart(); err != nil {
		log.Error("cannot restart into the previous binary", "err", err)
	}
	st := s.status(firmware.Status{Name: u.Name, Version: u.Version, State: firmware.StateRolledBack, Reason: reason})
	st.Running = u.PreviousVersion // what runs once restarted
	return st, true
}

// errCheck marks a failure of the Check command.
var errCheck = errors.New("check failed")

// runCheck runs Check for u, when set.
func (s *SelfInstaller) runCheck(ctx context.Context, u selfUpdate) error {
	if len(s.Check) == 0 {
		return nil
	}
	cmd := exec.CommandContext(ctx, s.Check[0], s.Check[1:]...)
	cmd.Env = append(os.Environ(), envName+"="+u.Name, envVersion+"="+u.Version, envPreviousVersion+"="+u.PreviousVersion)
	cmd.WaitDelay = time.Second // a child left holding the output must not hold the trial
	out, err := cmd.CombinedOutput()
	if err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (the deadline passed)", err)
		}
		return fmt.Errorf("%w: %s: %v%s", errCheck, s.Check[0], err, selfOutputTail(out))
	}
	return nil
}

// reportRollback returns the rollback recorded in rolledback.json and
// removes it: it is reported once.
func (s *SelfInstaller) reportRollback() (firmware.Status, bool) {
	p := s.path(selfRolledBackFile)
	u, err := selfReadJSON[selfUpdate](p)
	if errors.Is(err, fs.ErrNotExist) {
		return firmware.Status{}, false
	}
	if rmErr := selfRemove(p); rmErr != nil {
		s.log().Error("cannot remove the rollback record", "err", rmErr)
	}
	if err != nil {
		return s.status(firmware.Status{State: firmware.StateRolledBack, Reason: fmt.Sprintf("rollback record unreadable: %v", err)}), true
	}
	s.log().Warn("self-update rolled back", "version", u.Version, "reason", u.Reason)
	return s.status(firmware.Status{Name: u.Name, Version: u.Version, State: firmware.StateRolledBack, Reason: u.Reason}), true
}

func (s *SelfInstaller) status(st firmware.Status) firmware.Status {
	st.Running = s.version()
	st.Updated = time.Now().UTC()
	if st.State == firmware.StateApplied {
		st.Progress = 100
	}
	return st
}

// rollback puts the previous binary back and turns pending.json into
// rolledback.json. The decision (u.Reason) is recorded first, so that
// whoever finds it after a cut finishes the same rollback; each step is
// idempotent.
func (s *SelfInstaller) rollback(u *selfUpdate, reason string) error {
	if u.Reason == "" {
		u.Reason = reason
		if err := selfWriteJSON(s.path(selfPendingFile), *u); err != nil {
			return fmt.Errorf("record the rollback: %w", err)
		}
	}
	if u.Previous {
		// A copy, not a rename: previous stays for a rollback by hand.
		if err := copyFileAtomic(s.path(selfPreviousFile), s.Binary, 0o755); err != nil {
			return fmt.Errorf("restore the previous binary: %w", err)
		}
		info, err := selfReadJSON[selfBinaryInfo](s.path(selfPreviousInfo))
		if err == nil {
			err = selfWriteJSON(s.path(selfInstalledFile), info)
		} else {
			err = selfRemove(s.path(selfInstalledFile))
		}
		if err != nil {
			return fmt.Errorf("restore the previous binary's record: %w", err)
		}
	} else {
		// The packaged binary ran before: without Binary it runs again.
		if err := errors.Join(selfRemove(s.Binary), selfRemove(s.path(selfInstalledFile))); err != nil {
			return fmt.Errorf("remove the new binary: %w", err)
		}
	}
	if err := renameDurable(s.path(selfPendingFile), s.path(selfRolledBackFile)); err != nil {
		return fmt.Errorf("record the rollback: %w", err)
	}
	s.log().Warn("previous binary restored", "version", u.Version, "previous_version", u.PreviousVersion, "reason", u.Reason)
	return nil
}

// Launch is the launcher's step: the packaged canopy-leaf calls it before
// starting anything, when a self installer is configured. It returns the
// binary to run in place of the running one, or "" to go on with the
// running one: when there is no self-updated binary, when the running
// process is it, or when the packaged binary changed since it was
// installed (a package upgrade wins).
//
// While a new binary is on trial Launch counts its starts and puts the
// previous binary back after SelfMaxAttempts; before each start it runs
// the new binary with checkArgs (e.g. check-config and the flags; nil
// skips this) and puts the previous binary back when that fails: a
// binary that cannot run here, or rejects the configuration (an exit
// systemd does not restart), is not started.
func (s *SelfInstaller) Launch(ctx context.Context, checkArgs []string) (string, error) {
	if err := s.checkFields(false); err != nil {
		return "", err
	}
	log := s.log()
	bin, err := filepath.Abs(s.Binary)
	if err != nil {
		return "", fmt.Errorf("launch: %w", err)
	}
	if _, err := os.Stat(bin); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return "", nil
		}
		return "", fmt.Errorf("launch: %w", err)
	}
	if selfSameFile(s.executable(), bin) {
		return "", nil
	}
	if info, err := selfReadJSON[selfBinaryInfo](s.path(selfInstalledFile)); err == nil && info.Packaged != "" && info.Packaged != s.version() {
		log.Warn("the packaged binary changed since the self-update; running it, not the self-updated one",
			"packaged_version", s.version(), "installed_over", info.Packaged, "binary", bin, "binary_version", info.Version)
		return "", nil
	}

	u, err := selfReadJSON[selfUpdate](s.path(selfPendingFile))
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		log.Warn("self-update record unreadable; the self-updated binary reports it", "err", err)
	case u.Reason != "":
		if err := s.rollback(&u, u.Reason); err != nil {
			return "", fmt.Errorf("launch: finish the rollback: %w", err)
		}
	default:
		if sum, _ := selfFileSHA256(bin); !strings.EqualFold(sum, u.SHA256) {
			break // the update was cut short before the swap: Resume says so
		}
		u.Attempts++
		switch {
		case u.Attempts > SelfMaxAttempts:
			if err := s.rollback(&u, fmt.Sprintf("the new binary did not start (%d attempts)", SelfMaxAttempts)); err != nil {
				return "", fmt.Errorf("launch: %w", err)
			}
		default:
			if err := selfWriteJSON(s.path(selfPendingFile), u); err != nil {
				return "", fmt.Errorf("launch: count the attempt: %w", err)
			}
			if checkArgs == nil {
				break
			}
			if err := s.launchCheck(ctx, bin, checkArgs); err != nil {
				if err := s.rollback(&u, fmt.Sprintf("the new binary cannot start: %v", err)); err != nil {
					return "", fmt.Errorf("launch: %w", err)
				}
			}
		}
	}
	if _, err := os.Stat(bin); err != nil {
		return "", nil // rolled back to the packaged binary
	}
	log.Info("launching the self-updated binary", "binary", bin)
	return bin, nil
}

// launchCheck runs the new binary once with args and wants exit 0.
func (s *SelfInstaller) launchCheck(ctx context.Context, bin string, args []string) error {
	ctx, cancel := context.WithTimeout(ctx, s.deadline())
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), EnvLaunched+"=1")
	cmd.WaitDelay = time.Second
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %v%s", filepath.Base(bin), strings.Join(args, " "), err, selfOutputTail(out))
	}
	return nil
}

// selfOutputTail is the end of a command's output for an error message:
// a status reason must stay short.
func selfOutputTail(out []byte) string {
	const n = 300
	out = bytes.TrimSpace(out)
	if len(out) == 0 {
		return ""
	}
	if len(out) > n {
		out = append([]byte("..."), out[len(out)-n:]...)
	}
	return ": " + string(bytes.ReplaceAll(out, []byte("\n"), []byte(" | ")))
}

func selfSameFile(a, b string) bool {
	fa, err := os.Stat(a)
	if err != nil {
		return false
	}
	fb, err := os.Stat(b)
	if err != nil {
		return false
	}
	return os.SameFile(fa, fb)
}

func selfFileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// selfWriteJSON writes v to path atomically (see writeFileAtomic).
func selfWriteJSON(path string, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(path, append(data, '\n'), 0o640)
}

func selfReadJSON[T any](path string) (T, error) {
	var v T
	data, err := os.ReadFile(path)
	if err != nil {
		return v, err
	}
	if err := json.Unmarshal(data, &v); err != nil {
		return v, fmt.Errorf("%s: %w", path, err)
	}
	return v, nil
}

// selfRemove removes path, if there, durably.
func selfRemove(path string) error {
	err := os.Remove(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	return syncDir(filepath.Dir(path))
}
