package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"runtime"
	"time"

	"github.com/canopy-iot/canopy/firmware"
)

// handle brings the device to doc, a Desired document: verify, download,
// stage, wait for the window, apply. ctx ends when another Desired
// replaces doc or the agent stops; runCtx only when the agent stops, so
// that an install under way is not cut by a new Desired.
func (a *Agent) handle(ctx, runCtx context.Context, key string, doc []byte) {
	var d firmware.Desired
	if err := json.Unmarshal(doc, &d); err != nil {
		a.fail(key, firmware.Status{}, fmt.Sprintf("unreadable desired firmware document: %v", err))
		return
	}
	st := firmware.Status{Rollout: d.Rollout}
	// Nothing in the document is acted on before the signature checks.
	m, err := firmware.Verify(d.Manifest, a.cfg.TrustedKeys)
	if err != nil {
		a.fail(key, st, err.Error())
		return
	}
	st.Name, st.Version = m.Name, m.Version
	if rec, ok := a.dir.readInstalled(m.Name); ok {
		st.Running = rec.m.Version
	}
	if here := runtime.GOOS + "/" + runtime.GOARCH; m.Platform != "any" && m.Platform != here {
		a.fail(key, st, fmt.Sprintf("firmware %s %s is for %s, this device is %s", m.Name, m.Version, m.Platform, here))
		return
	}
	inst := a.inst[m.Name]
	if inst == nil {
		a.fail(key, st, "no installer configured for firmware "+m.Name)
		return
	}
	if len(m.Seqs) != len(m.Chunks) {
		a.fail(key, st, fmt.Sprintf("manifest of %s %s has no chunk sequences: it was not published", m.Name, m.Version))
		return
	}
	var win window
	if d.Window != "" {
		if win, err = parseWindow(d.Window); err != nil {
			a.fail(key, st, err.Error())
			return
		}
	}
	if st.Running == m.Version {
		st.State, st.Progress = firmware.StateApplied, 100
		a.report(st)
		a.cleanOthers(m)
		return
	}
	a.cleanOthers(m)

	staged := a.dir.stagedPath(m)
	if !a.stagedOK(m, staged) {
		st.State = firmware.StateDownloading
		a.report(st)
		fetched, err := a.download(ctx, st, m)
		st.Bytes = fetched
		if err != nil {
			if ctx.Err() == nil {
				a.removeDownload(m)
				a.fail(key, st, err.Error())
			}
			return
		}
		st.State, st.Progress = firmware.StateVerifying, 100
		a.report(st)
		if err := a.stage(m); err != nil {
			a.removeDownload(m)
			a.fail(key, st, err.Error())
			return
		}
	}
	st.State, st.Progress = firmware.StateStaged, 100
	a.report(st)
	if !d.Install {
		return // download only: a later Desired applies it
	}
	for !win.zero() && !win.contains(a.now()) {
		st.Reason = "outside the maintenance window " + d.Window
		a.report(st)
		t := time.NewTimer(windowRecheck)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
	st.Reason = ""
	st.State = firmware.StateApplying
	a.report(st)
	if _, restarts := inst.(Resumer); restarts {
		// Written before the installer may end this process: the next one
		// learns the outcome from the Resumer and records it.
		p, _ := json.Marshal(pending{Key: key, Desired: doc, Signed: d.Manifest, Version: m.Version, Staged: staged})
		if err := writeFileAtomic(a.dir.pendingPath(m.Name), p, 0o640); err != nil {
			a.fail(key, st, fmt.Sprintf("record the pending install: %v", err))
			return
		}
	}
	err = inst.Install(runCtx, m, staged)
	switch {
	case errors.Is(err, ErrRestarting):
		return // the next process reports the outcome
	case err != nil:
		os.Remove(a.dir.pendingPath(m.Name))
		if runCtx.Err() != nil {
			// Stopped mid-install: the next start tries again.
			return
		}
		a.fail(key, st, fmt.Sprintf("install: %v", err))
		return
	}
	if err := a.promote(m.Name, d.Manifest, staged); err != nil {
		// Applied all the same; only chunk reuse and LAN serving suffer.
		a.log.Warn("cannot record the applied firmware", "name", m.Name, "version", m.Version, "err", err)
	}
	a.dir.clearFailure()
	st.State, st.Running = firmware.StateApplied, m.Version
	a.report(st)
}

// fail reports st as failed with reason and records it, so that reading
// the same Desired again does not retry it.
func (a *Agent) fail(key string, st firmware.Status, reason string) {
	st.State, st.Reason = firmware.StateFailed, reason
	st = a.report(st)
	if err := a.dir.writeFailure(failure{Desired: key, Status: st}); err != nil {
		a.log.Warn("cannot record a failed update", "err", err)
	}
}

// stagedOK reports whether the artifact of m is staged and whole (a
// previous process got that far). A staged file that does not match is
// removed.
func (a *Agent) stagedOK(m firmware.Manifest, path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	err = m.Check(f)
	f.Close()
	if err != nil {
		a.log.Warn("staged artifact does not match its manifest; downloading it again", "name", m.Name, "version", m.Version, "err", err)
		os.Remove(path)
		return false
	}
	return true
}

// stage checks the downloaded artifact as a whole and moves it to
// staged/: what is staged was verified and is on disk.
func (a *Agent) stage(m firmware.Manifest) error {
	part := a.dir.partPath(m)
	f, err := os.Open(part)
	if err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	err = m.Check(f)
	if err == nil {
		err = f.Sync()
	}
	f.Close()
	if err != nil {
		return fmt.Errorf("verify %s %s: %w", m.Name, m.Version, err)
	}
	if err := renameDurable(part, a.dir.stagedPath(m)); err != nil {
		return fmt.Errorf("stage %s %s: %w", m.Name, m.Version, err)
	}
	os.Remove(a.dir.statePath(m))
	return nil
}

// removeDownload drops a download that failed for good.
func (a *Agent) removeDownload(m firmware.Manifest) {
	os.Remove(a.dir.partPath(m))
	os.Remove(a.dir.statePath(m))
}
