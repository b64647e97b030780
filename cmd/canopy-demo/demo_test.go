package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/canopy-iot/canopy/hub"
	"github.com/canopy-iot/canopy/internal/wait"
)

// The whole demo, as `go run ./cmd/canopy-demo --duration 30s` runs it:
// it passes, and it did what it says: the link was cut while the sensors
// kept publishing, the backlog grew and was sent when the link came
// back, and the firmware reached every leaf.
func TestDemoPasses(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp) // where the demo makes its state directory
	before := runtime.NumGoroutine()

	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"--duration", "30s"}, &stdout, &stderr)
	out := stdout.String()
	t.Logf("output:\n%s", out)
	if code != 0 || stderr.Len() > 0 {
		t.Fatalf("exit status %d, stderr: %s", code, &stderr)
	}
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^PASS: 3 devices, [\d,]+ messages, 0 lost, 0 duplicated; firmware demo-app 1\.0\.1 applied on 3/3$`),
		regexp.MustCompile(`greenhouse-2: link cut; buffering on the device`),
		regexp.MustCompile(`greenhouse-2: caught up [\d.]+s after the link came back`),
		regexp.MustCompile(`rollout demo-app-1\.0\.1-\S+: done`),
		regexp.MustCompile(`greenhouse-3: firmware demo-app 1\.0\.1 applied`),
		regexp.MustCompile(`every leaf's backlog is 0`),
	} {
		if !want.MatchString(out) {
			t.Errorf("output lacks %s", want)
		}
	}
	// The backlog built up on the device while it was cut off, and the
	// readings counted in the verdict are many.
	if m := regexp.MustCompile(`greenhouse-2: link restored; sending its backlog of ([\d,]+) readings`).FindStringSubmatch(out); m == nil {
		t.Errorf("output lacks the link's restoration")
	} else if n, _ := strconv.Atoi(strings.ReplaceAll(m[1], ",", "")); n < 10 {
		t.Errorf("backlog of %d readings when the link came back: the cut did not hold the readings on the device", n)
	}
	if m := regexp.MustCompile(`PASS: 3 devices, ([\d,]+) messages`).FindStringSubmatch(out); m != nil {
		if n, _ := strconv.Atoi(strings.ReplaceAll(m[1], ",", "")); n < 300 {
			t.Errorf("only %d messages checked", n)
		}
	}

	// Nothing is left behind: no state directory, no goroutine.
	if entries, _ := os.ReadDir(tmp); len(entries) > 0 {
		t.Errorf("left in the temporary directory: %v", entries)
	}
	if err := wait.Until(context.Background(), 10*time.Second, func() error {
		if n := runtime.NumGoroutine(); n > before {
			return fmt.Errorf("%d goroutines, %d before the demo", n, before)
		}
		return nil
	}); err != nil {
		buf := make([]byte, 1<<20)
		t.Errorf("%v\n%s", err, buf[:runtime.Stack(buf, true)])
	}
}

// Without a duration the demo runs until interrupted, then checks: here
// while greenhouse-2 is cut off, so the link must come back and the
// backlog go up before the check, which passes.
func TestDemoInterruptedWhileCutOff(t *testing.T) {
	t.Setenv("TMPDIR", t.TempDir())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stdout := &watchWriter{want: "greenhouse-2: link cut", fire: func() { time.AfterFunc(time.Second, cancel) }}
	var stderr bytes.Buffer
	code := run(ctx, []string{"--duration", "0"}, stdout, &stderr)
	out := stdout.String()
	t.Logf("output:\n%s", out)
	if code != 0 || stderr.Len() > 0 {
		t.Fatalf("exit status %d, stderr: %s", code, &stderr)
	}
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?s)greenhouse-2: link cut.*interrupted: stopping the sensors.*greenhouse-2: link restored`),
		regexp.MustCompile(`(?m)^PASS: 3 devices, [\d,]+ messages, 0 lost, 0 duplicated; firmware demo-app 1\.0\.1 applied on 3/3$`),
	} {
		if !want.MatchString(out) {
			t.Errorf("output lacks %s", want)
		}
	}
}

// watchWriter keeps what is written and calls fire once a write holds
// want.
type watchWriter struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	want  string
	fire  func()
	fired bool
}

func (w *watchWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.fired && bytes.Contains(p, []byte(w.want)) {
		w.fired = true
		w.fire()
	}
	return w.buf.Write(p)
}

func (w *watchWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// The end-state check is not a formality: on a hub stream a real leaf
// filled, it passes; a copy of a reading stored again under another
// Nats-Msg-Id (as a device that lost its state would resend it), a
// message deleted from the hub, and messages stored out of order each
// fail it.
func TestCheckCatchesLossDuplicatesAndDisorder(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	log := slog.New(slog.DiscardHandler)
	h, err := startHub(ctx, filepath.Join(dir, "hub"), tenantName, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.stop() })
	tenant, err := h.keys.Tenant(tenantName)
	if err != nil {
		t.Fatal(err)
	}
	creds, err := h.deviceCreds(tenantName, "greenhouse-1", dir)
	if err != nil {
		t.Fatal(err)
	}
	l, err := startLeaf(ctx, h.h, "greenhouse-1", creds, filepath.Join(dir, "leaf"), tenant.FirmwareKey, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.stop() })
	s, err := startSensor("greenhouse-1", "temperature", "C", l.node.MQTT().Addr(), 100, 20, 2)
	if err != nil {
		t.Fatal(err)
	}
	wait.For(t, 30*time.Second, func() error {
		if n := s.nAcked.Load(); n < 20 {
			return fmt.Errorf("%d readings acknowledged", n)
		}
		return nil
	})
	s.stop()
	wait.For(t, 30*time.Second, func() error {
		if b := l.backlog(); b > 0 {
			return fmt.Errorf("backlog %d", b)
		}
		return nil
	})
	acked := s.ackedReadings()
	lastSeq := l.stats().LastSeq
	expect := map[string]deviceExpect{"greenhouse-1": {Sensors: map[string][]uint64{"temperature": acked}, LastSeq: lastSeq}}

	adminCreds, err := h.adminCreds(tenantName, dir, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	nc, err := h.connect(adminCreds)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	check := func() telemetryReport {
		t.Helper()
		r, err := checkTelemetry(ctx, js, expect)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	if r := check(); !r.OK() || r.Acked != len(acked) || r.HubMsgs != int(lastSeq) {
		t.Fatalf("before any fault: %+v, want OK with %d acknowledged and %d at the hub", r, len(acked), lastSeq)
	}

	st, err := js.Stream(ctx, hub.TelemetryStream)
	if err != nil {
		t.Fatal(err)
	}
	// A duplicate: the third reading again, under the next sequence.
	third, err := st.GetMsg(ctx, 3)
	if err != nil {
		t.Fatal(err)
	}
	dup := nats.NewMsg(third.Subject)
	dup.Data = third.Data
	dup.Header.Set(jetstream.MsgIDHeader, fmt.Sprintf("greenhouse-1.%s.%d", streamName, lastSeq+1))
	if _, err := js.PublishMsg(ctx, dup); err != nil {
		t.Fatal(err)
	}
	if r := check(); r.OK() || r.Duplicated != 1 || r.Missing != 0 || r.OutOfOrder != 0 {
		t.Fatalf("after a duplicate: %+v, want exactly 1 duplicated", r)
	}

	// A loss: the fifth reading gone from the hub.
	if err := st.DeleteMsg(ctx, 5); err != nil {
		t.Fatal(err)
	}
	if r := check(); r.OK() || r.Missing != 1 || r.Gaps != 1 || r.Duplicated != 1 {
		t.Fatalf("after a loss: %+v, want 1 missing reading, 1 gap and still the duplicate", r)
	}

	// Disorder: the device's next two messages stored the wrong way round.
	next := uint64(len(acked))
	for _, i := range []uint64{3, 2} {
		payload, _ := json.Marshal(reading{Sensor: "temperature", N: next + i, Value: 20, Unit: "C"})
		m := nats.NewMsg("telemetry.greenhouse-1." + streamName + ".temperature")
		m.Data = payload
		m.Header.Set(jetstream.MsgIDHeader, fmt.Sprintf("greenhouse-1.%s.%d", streamName, lastSeq+i))
		if _, err := js.PublishMsg(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	if r := check(); r.OutOfOrder != 1 || r.Missing != 1 || r.Duplicated != 1 {
		t.Fatalf("after a reordering: %+v, want 1 out of order besides the loss and the duplicate", r)
	}
}

func TestCommandLine(t *testing.T) {
	cases := []struct {
		args   []string
		code   int
		stderr string
	}{
		{[]string{"-h"}, 0, "Usage: canopy-demo"},
		{[]string{"--duration", "soon"}, 2, `invalid value "soon"`},
		{[]string{"--duration", "3s"}, 2, "too short"},
		{[]string{"--duration", "-1s"}, 2, "must not be negative"},
		{[]string{"--sensors-rate", "0"}, 2, "--sensors-rate 0"},
		{[]string{"extra"}, 2, `unexpected argument "extra"`},
	}
	for _, c := range cases {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := run(context.Background(), c.args, &stdout, &stderr); code != c.code || !strings.Contains(stderr.String(), c.stderr) {
				t.Fatalf("exit status %d, stderr %q; want %d and %q", code, &stderr, c.code, c.stderr)
			}
		})
	}
}
