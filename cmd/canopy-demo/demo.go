package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/canopy-iot/canopy/firmware"
	"github.com/canopy-iot/canopy/hub"
)

// The demo's scenario.
const (
	firmwareVersion = "1.0.1"
	firmwareSize    = 256 << 10
	// nominalDuration times the scenario when the run has no end.
	nominalDuration = 90 * time.Second
	// Bounds on the waits at the end, for a loaded machine.
	drainTimeout    = 60 * time.Second
	rolloutTimeout  = 90 * time.Second
	cutLeafIndex    = 1              // greenhouse-2
	adminCredsTTL   = 24 * time.Hour // the longest the fleet issues
	pollInterval    = time.Second
	stateChangeWait = 250 * time.Millisecond
)

// console prints timestamped lines, seconds since the demo started.
type console struct {
	mu    sync.Mutex
	w     io.Writer
	start time.Time
}

func (c *console) since() time.Duration { return time.Since(c.start) }

func (c *console) say(format string, args ...any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	fmt.Fprintf(c.w, "[%5.1fs] %s\n", c.since().Seconds(), fmt.Sprintf(format, args...))
}

// plain prints a line without a timestamp.
func (c *console) plain(format string, args ...any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	fmt.Fprintf(c.w, format+"\n", args...)
}

// demo is the running system and what happened to it.
type demo struct {
	o       options
	out     *console
	dir     string
	log     *slog.Logger
	hub     *hubNode
	leaves  []*leafNode
	sensors []*sensor
	nc      *nats.Conn // the tenant's administrator's, for the checks
	js      jetstream.JetStream

	t0 time.Time // when the sensors started: the scenario's clock

	artifact  []byte
	rollout   hub.Rollout // ID "" until created
	fwState   map[string]string
	rollState hub.RolloutState

	cut, restored, caughtUp bool
	cutAt, restoredAt       time.Duration
}

// runDemo runs the whole demo and reports whether the checks passed; an
// error means the system could not be run.
func runDemo(ctx context.Context, o options, stdout io.Writer) (ok bool, err error) {
	out := &console{w: stdout, start: time.Now()}
	dir, err := os.MkdirTemp("", "canopy-demo-")
	if err != nil {
		return false, fmt.Errorf("state directory: %w", err)
	}
	logFile, err := os.Create(filepath.Join(dir, "demo.log"))
	if err != nil {
		os.RemoveAll(dir)
		return false, fmt.Errorf("log file: %w", err)
	}
	d := &demo{
		o: o, out: out, dir: dir,
		log:     slog.New(slog.NewTextHandler(logFile, &slog.HandlerOptions{Level: slog.LevelInfo})),
		fwState: map[string]string{},
	}
	where := "removed at exit; --keep keeps it"
	if o.keep {
		where = "kept at exit"
	}
	out.say("canopy-demo: state in %s (%s); logs in %s", dir, where, logFile.Name())
	defer func() {
		if serr := d.shutdown(); serr != nil && err == nil {
			err = serr
		}
		logFile.Close()
		if o.keep {
			out.plain("state kept in %s", dir)
		} else if rerr := os.RemoveAll(dir); rerr != nil && err == nil {
			err = fmt.Errorf("remove state directory: %w", rerr)
		}
	}()
	if err := d.start(ctx); err != nil {
		return false, err
	}
	d.timeline(ctx)
	return d.finish()
}

// start runs the hub, the leaves and their sensors.
func (d *demo) start(ctx context.Context) error {
	h, err := startHub(ctx, filepath.Join(d.dir, "hub"), tenantName, d.log)
	if err != nil {
		return err
	}
	d.hub = h
	credsDir := filepath.Join(d.dir, "creds")
	adminCreds, err := h.adminCreds(tenantName, credsDir, adminCredsTTL)
	if err != nil {
		return err
	}
	if d.nc, err = h.connect(adminCreds); err != nil {
		return err
	}
	if d.js, err = jetstream.New(d.nc); err != nil {
		return fmt.Errorf("hub JetStream: %w", err)
	}
	d.out.say("hub up: NATS %s, leaf nodes %s; tenant %s, its telemetry in stream %s", h.h.ClientURL(), h.h.LeafNodeURL(), tenantName, hub.TelemetryStream)
	d.out.say("        look inside: nats --server %s --creds %s stream info %s", h.h.ClientURL(), adminCreds, hub.TelemetryStream)
	if u := dashboardURL(h.h); u != "" {
		d.out.say("        dashboard: %s", u)
	}
	d.out.say("        nats-server monitoring: %s", h.h.MonitorURL())
	tenant, err := h.keys.Tenant(tenantName)
	if err != nil {
		return fmt.Errorf("tenant %s: %w", tenantName, err)
	}

	for i := 1; i <= d.o.leaves; i++ {
		name := fmt.Sprintf("greenhouse-%d", i)
		creds, err := h.deviceCreds(tenantName, name, credsDir)
		if err != nil {
			return err
		}
		l, err := startLeaf(ctx, h.h, name, creds, filepath.Join(d.dir, "leaves", name), tenant.FirmwareKey, d.log)
		if err != nil {
			return err
		}
		d.leaves = append(d.leaves, l)
		d.out.say("%s up: MQTT %s, NATS %s, status %s/status, linked to the hub through %s",
			name, l.node.MQTT().Addr(), l.node.NATSURL(), l.node.MonitorURL(), l.link.Addr())
	}
	for _, l := range d.leaves {
		for _, s := range []struct {
			name, unit  string
			base, swing float64
		}{{"temperature", "C", 21.5, 3}, {"humidity", "%", 62, 8}} {
			sn, err := startSensor(l.name, s.name, s.unit, l.node.MQTT().Addr(), d.o.rate, s.base, s.swing)
			if err != nil {
				return err
			}
			d.sensors = append(d.sensors, sn)
		}
	}
	d.t0 = time.Now()
	d.out.say("%d sensors publishing QoS 1 readings, %g/s each, on sensors/temperature and sensors/humidity of each leaf", len(d.sensors), d.o.rate)
	return nil
}

// scenario is when things happen, from the sensors' start.
type scenario struct {
	end                       time.Duration // 0: until interrupted
	firmware, cut, restore    time.Duration
	backlogEvery, statusEvery time.Duration
}

func newScenario(total time.Duration) scenario {
	nominal := total
	if nominal == 0 {
		nominal = nominalDuration
	}
	at := func(f float64) time.Duration {
		return time.Duration(f * float64(nominal)).Round(100 * time.Millisecond)
	}
	return scenario{
		end:          total,
		firmware:     at(0.15),
		cut:          at(0.25),
		restore:      at(0.60),
		backlogEvery: min(max(nominal/30, time.Second), 3*time.Second),
		statusEvery:  max(nominal/6, 5*time.Second),
	}
}

// timeline runs the scenario until its end or until ctx ends.
func (d *demo) timeline(ctx context.Context) {
	sc := newScenario(d.o.duration)
	end := "until Ctrl-C"
	cutLeaf := d.leaves[cutLeafIndex]
	// Said in the console's time, which started before the sensors.
	at := func(t time.Duration) string { return seconds(d.t0.Sub(d.out.start) + t) }
	if sc.end > 0 {
		end = "end at " + at(sc.end)
	}
	d.out.say("scenario: firmware rollout at %s, %s's link cut at %s and restored at %s, %s",
		at(sc.firmware), cutLeaf.name, at(sc.cut), at(sc.restore), end)

	var endC <-chan time.Time
	if sc.end > 0 {
		t := time.NewTimer(time.Until(d.t0.Add(sc.end)))
		defer t.Stop()
		endC = t.C
	}
	tick := time.NewTicker(stateChangeWait)
	defer tick.Stop()
	var nextBacklog, nextPoll time.Duration
	nextStatus := sc.statusEvery
	for {
		select {
		case <-ctx.Done():
			d.out.say("interrupted: stopping the sensors, then checking")
			return
		case <-endC:
			d.out.say("the sensors ran for %s: stopping them, then checking", seconds(sc.end))
			return
		case <-tick.C:
		}
		now := time.Since(d.t0)
		if d.rollout.ID == "" && d.artifact == nil && now >= sc.firmware {
			d.startRollout(ctx)
		}
		if !d.cut && now >= sc.cut {
			cutLeaf.link.SetDown(true)
			d.cut, d.cutAt = true, now
			d.out.say("%s: link cut; buffering on the device (backlog %d)", cutLeaf.name, cutLeaf.backlog())
			nextBacklog = now + sc.backlogEvery
		}
		if d.cut && !d.restored && now >= sc.restore {
			d.restore(cutLeaf)
			nextBacklog = now + sc.backlogEvery
		}
		switch {
		case d.cut && !d.restored && now >= nextBacklog:
			d.out.say("%s: offline for %s, backlog %s readings on the device", cutLeaf.name, seconds(now-d.cutAt), thousands(cutLeaf.backlog()))
			nextBacklog = now + sc.backlogEvery
		case d.restored && !d.caughtUp:
			d.watchCatchUp(cutLeaf, now, &nextBacklog, sc.backlogEvery)
		}
		if d.rollout.ID != "" && now >= nextPoll {
			d.pollFirmware(ctx)
			nextPoll = now + pollInterval
		}
		if now >= nextStatus {
			d.status(ctx)
			nextStatus = now + sc.statusEvery
		}
	}
}

// restore brings the cut link back.
func (d *demo) restore(l *leafNode) {
	l.link.SetDown(false)
	d.restored, d.restoredAt = true, time.Since(d.t0)
	d.out.say("%s: link restored; sending its backlog of %s readings to the hub", l.name, thousands(l.backlog()))
}

// watchCatchUp prints the restored leaf's backlog until it is gone.
func (d *demo) watchCatchUp(l *leafNode, now time.Duration, next *time.Duration, every time.Duration) {
	if b := l.backlog(); b == 0 && l.node.Uplink().Up() {
		d.caughtUp = true
		d.out.say("%s: caught up %s after the link came back (backlog 0)", l.name, seconds(now-d.restoredAt))
		return
	}
	if now >= *next {
		state := "reconnecting"
		if l.node.Uplink().Up() {
			state = "linked"
		}
		d.out.say("%s: %s, catching up: backlog %s", l.name, state, thousands(l.backlog()))
		*next = now + every
	}
}

// startRollout publishes the demo firmware, signed with the tenant's
// firmware key, and rolls it out to every device at once.
func (d *demo) startRollout(ctx context.Context) {
	d.artifact = make([]byte, firmwareSize)
	rand.Read(d.artifact)
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	admin := d.hub.admin
	_, err := admin.PublishFirmware(ctx, tenantName, hub.FirmwareMeta{Name: firmwareName, Version: firmwareVersion, Platform: "any", Notes: "canopy-demo"}, bytes.NewReader(d.artifact))
	if err != nil {
		d.out.say("firmware: publish failed: %v", err)
		return
	}
	signed, _, err := admin.FirmwareManifest(ctx, tenantName, firmwareName, firmwareVersion, "any")
	if err != nil {
		d.out.say("firmware: manifest: %v", err)
		return
	}
	r, err := admin.CreateRollout(ctx, tenantName, hub.RolloutSpec{Manifest: signed, Target: "all", Percent: 100, Threshold: hub.DefaultRolloutThreshold})
	if err != nil {
		d.out.say("firmware: rollout failed: %v", err)
		return
	}
	d.rollout = r
	d.out.say("firmware %s %s published (%d KiB, signed with tenant %s's firmware key); rollout %s to %d devices",
		firmwareName, firmwareVersion, firmwareSize>>10, tenantName, r.ID, len(r.Devices))
}

// pollFirmware prints the rollout's progress: each device's state as it
// changes, and the rollout's.
func (d *demo) pollFirmware(ctx context.Context) (applied int) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	statuses, err := d.hub.admin.FirmwareStatuses(ctx, tenantName)
	if err != nil {
		return 0
	}
	for _, l := range d.leaves {
		s, ok := statuses[l.name]
		if !ok || s.Rollout != d.rollout.ID {
			continue
		}
		if s.State == firmware.StateApplied {
			applied++
		}
		state := string(s.State)
		if s.State == firmware.StateDownloading {
			state += fmt.Sprintf(" %d%%", s.Progress)
		}
		if d.fwState[l.name] == state {
			continue
		}
		d.fwState[l.name] = state
		line := fmt.Sprintf("%s: firmware %s %s %s", l.name, firmwareName, firmwareVersion, state)
		if s.Reason != "" {
			line += " (" + s.Reason + ")"
		}
		d.out.say("%s", line)
	}
	if rs, err := d.hub.admin.Rollouts(ctx, tenantName); err == nil {
		for _, r := range rs {
			if r.ID == d.rollout.ID && r.State != d.rollState {
				d.rollState = r.State
				line := fmt.Sprintf("rollout %s: %s", r.ID, r.State)
				if r.Reason != "" {
					line += " (" + r.Reason + ")"
				}
				d.out.say("%s", line)
			}
		}
	}
	return applied
}

// status prints a summary: readings acknowledged, stored at the hub, and
// waiting on each leaf.
func (d *demo) status(ctx context.Context) {
	var acked uint64
	for _, s := range d.sensors {
		acked += s.nAcked.Load()
	}
	atHub := "?"
	ictx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if st, err := d.js.Stream(ictx, hub.TelemetryStream); err == nil {
		if info, err := st.Info(ictx); err == nil {
			atHub = thousands(info.State.Msgs)
		}
	}
	var backlogs []string
	for _, l := range d.leaves {
		backlogs = append(backlogs, fmt.Sprintf("%s %s", l.name, thousands(l.backlog())))
	}
	d.out.say("%s readings acknowledged to the sensors, %s at the hub; backlog %s", thousands(acked), atHub, strings.Join(backlogs, ", "))
}

// finish stops the sensors, lets the leaves deliver everything, waits for
// the rollout, then checks the end state and prints the verdict.
func (d *demo) finish() (bool, error) {
	// The run's context may be over (Ctrl-C): the checks get their own.
	ctx := context.Background()
	var wg sync.WaitGroup
	for _, s := range d.sensors {
		wg.Go(s.stop)
	}
	wg.Wait()
	var acked, unacked uint64
	for _, s := range d.sensors {
		acked += s.nAcked.Load()
		unacked += s.unacked.Load()
	}
	d.out.say("sensors stopped: %s readings acknowledged, %d not acknowledged", thousands(acked), unacked)
	if d.cut && !d.restored {
		d.restore(d.leaves[cutLeafIndex])
	}

	d.drain(ctx)
	if d.rollout.ID != "" {
		d.waitRollout(ctx)
	}

	expect := map[string]deviceExpect{}
	for _, l := range d.leaves {
		e := deviceExpect{Sensors: map[string][]uint64{}, LastSeq: l.stats().LastSeq}
		for _, s := range d.sensors {
			if s.device == l.name {
				e.Sensors[s.name] = s.ackedReadings()
			}
		}
		expect[l.name] = e
	}
	tr, err := checkTelemetry(ctx, d.js, expect)
	if err != nil {
		return false, err
	}
	ok := tr.OK()
	problems := tr.Problems
	fw := "firmware not rolled out: the run ended before"
	switch {
	case d.rollout.ID != "":
		fr, err := checkFirmware(ctx, d.hub.admin, d.rollout.ID, d.leaves, d.artifact)
		if err != nil {
			return false, err
		}
		ok = ok && fr.Applied == fr.Devices
		problems = append(problems, fr.Problems...)
		fw = fmt.Sprintf("firmware %s %s applied on %d/%d", firmwareName, firmwareVersion, fr.Applied, fr.Devices)
	case d.artifact != nil: // published or rolled out with an error, said above
		ok = false
		fw = "firmware rollout could not be started"
		problems = append(problems, fw)
	}
	verdict := "PASS"
	if !ok {
		verdict = "FAIL"
	}
	line := fmt.Sprintf("%s: %d devices, %s messages, %s lost, %s duplicated", verdict, tr.Devices, thousands(tr.Acked), thousands(tr.Missing+tr.Gaps), thousands(tr.Duplicated))
	if tr.OutOfOrder > 0 || !ok {
		line += fmt.Sprintf(", %s out of order", thousands(tr.OutOfOrder))
	}
	if tr.Unreadable > 0 {
		line += fmt.Sprintf(", %s unreadable", thousands(tr.Unreadable))
	}
	d.out.say("checked the hub's %s stream against the readings the sensors had acknowledged:", hub.TelemetryStream)
	for _, l := range d.leaves {
		n := 0
		for _, acked := range expect[l.name].Sensors {
			n += len(acked)
		}
		d.out.say("  %s: %s readings acknowledged, %s messages at the hub", l.name, thousands(n), thousands(tr.PerDevice[l.name]))
	}
	d.out.plain("%s; %s", line, fw)
	for _, p := range problems {
		d.out.plain("  - %s", p)
	}
	return ok, nil
}

// drain waits, within drainTimeout, until every leaf delivered its stream
// to the hub.
func (d *demo) drain(ctx context.Context) {
	d.out.say("waiting for every leaf to deliver its backlog to the hub")
	deadline := time.Now().Add(drainTimeout)
	next := time.Now()
	for {
		var left []string
		for _, l := range d.leaves {
			if b := l.backlog(); b > 0 {
				left = append(left, fmt.Sprintf("%s %s", l.name, thousands(b)))
			}
		}
		if len(left) == 0 {
			if d.restored && !d.caughtUp {
				d.caughtUp = true
				d.out.say("%s: caught up %s after the link came back (backlog 0)", d.leaves[cutLeafIndex].name, seconds(time.Since(d.t0)-d.restoredAt))
			}
			d.out.say("every leaf's backlog is 0")
			return
		}
		if time.Now().After(deadline) {
			d.out.say("still waiting on %s after %v; checking anyway", strings.Join(left, ", "), drainTimeout)
			return
		}
		if time.Now().After(next) {
			d.out.say("backlog: %s", strings.Join(left, ", "))
			next = time.Now().Add(5 * time.Second)
		}
		if ctx.Err() != nil {
			return
		}
		time.Sleep(stateChangeWait)
	}
}

// waitRollout waits, within rolloutTimeout, until every device applied
// the firmware or the rollout ended otherwise, printing its progress.
func (d *demo) waitRollout(ctx context.Context) {
	deadline := time.Now().Add(rolloutTimeout)
	for {
		if d.pollFirmware(ctx) == len(d.leaves) {
			return
		}
		if d.rollState == hub.RolloutHalted || d.rollState == hub.RolloutCancelled {
			return
		}
		if time.Now().After(deadline) {
			d.out.say("firmware: not applied everywhere after %v; checking anyway", rolloutTimeout)
			return
		}
		time.Sleep(pollInterval)
	}
}

// shutdown stops everything that runs, within bounds, in the reverse
// order of start.
func (d *demo) shutdown() error {
	var errs []error
	for _, s := range d.sensors {
		s.stop()
	}
	if d.nc != nil {
		d.nc.Close()
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, l := range d.leaves {
		wg.Go(func() {
			if err := l.stop(); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if d.hub != nil {
		if err := d.hub.stop(); err != nil {
			errs = append(errs, fmt.Errorf("hub: %w", err))
		}
	}
	return errors.Join(errs...)
}

// seconds formats a scenario time: "13.5s".
func seconds(t time.Duration) string {
	return strconv.FormatFloat(t.Seconds(), 'f', 1, 64) + "s"
}

// thousands formats n with a comma every three digits: 5,412.
func thousands[N int | uint64](n N) string {
	s := strconv.FormatUint(uint64(n), 10) // counters are never negative
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}
