package hub_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/nats-io/nats.go"

	"github.com/canopy-iot/canopy/firmware"
	"github.com/canopy-iot/canopy/hub"
	"github.com/canopy-iot/canopy/hub/fleet"
	"github.com/canopy-iot/canopy/internal/heartbeat"
)

// screenshotEnv names the file the browser test saves a full-page PNG of
// the dashboard to (docs/dashboard.png is made that way).
const screenshotEnv = "CANOPY_DASHBOARD_SCREENSHOT"

// chromiumPath finds a Chromium or Chrome binary, or skips the test.
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skip("no chromium binary found: install Debian's chromium package (apt-get install chromium) to run the dashboard browser test")
	return ""
}

// browser starts a headless Chromium for the test and collects the page's
// JavaScript exceptions and console errors (a Content-Security-Policy
// violation is one), which the test must end without.
type browser struct {
	ctx  context.Context
	mu   sync.Mutex
	errs []string
}

func newBrowser(t *testing.T) *browser {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath(t)),
		// The test runs as root in containers, where Chromium's sandbox
		// cannot start.
		chromedp.NoSandbox,
		chromedp.WindowSize(1440, 900),
		chromedp.Flag("disable-gpu", true),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(actx)
	t.Cleanup(func() {
		cancelCtx()
		cancelAlloc()
	})
	// Start the browser on a context without a deadline: the first
	// action binds the browser's life to its context.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	b := &browser{ctx: ctx}
	exceptions := chromedp.Events(ctx, runtime.ExceptionThrown)
	entries := chromedp.Events(ctx, log.EntryAdded)
	go func() {
		for ev, err := range exceptions {
			if err != nil {
				return
			}
			d := ev.ExceptionDetails
			msg := d.Text
			if d.Exception != nil && d.Exception.Description != "" {
				msg += " " + d.Exception.Description
			}
			b.fail(fmt.Sprintf("exception at %s:%d: %s", d.URL, d.LineNumber+1, msg))
		}
	}()
	go func() {
		for ev, err := range entries {
			if err != nil {
				return
			}
			if ev.Entry.Level == log.EntryLevelError {
				b.fail(fmt.Sprintf("console error (%s) %s: %s", ev.Entry.Source, ev.Entry.URL, ev.Entry.Text))
			}
		}
	}()
	return b
}

func (b *browser) fail(msg string) {
	b.mu.Lock()
	b.errs = append(b.errs, msg)
	b.mu.Unlock()
}

// checkErrors fails the test with the page's errors so far.
func (b *browser) checkErrors(t *testing.T) {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, e := range b.errs {
		t.Errorf("page: %s", e)
	}
}

// do runs steps with a deadline, failing the test with what was awaited.
func (b *browser) do(t *testing.T, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		b.checkErrors(t)
		t.Fatalf("%s: %v", what, err)
	}
}

// waitJS waits until the JavaScript expression is truthy.
func (b *browser) waitJS(t *testing.T, what, expr string) {
	t.Helper()
	b.do(t, what, chromedp.Poll[chromedp.Void](expr,
		chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(30*time.Second)))
}

// eval returns the value of a JavaScript expression.
func evalJS[T any](t *testing.T, b *browser, expr string) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// dashDevice is a device that talks to the hub with its own credentials,
// as a leaf does through its uplink.
type dashDevice struct {
	name string
	nc   *nats.Conn
}

func newDashDevice(t *testing.T, url, name string, creds []byte) *dashDevice {
	t.Helper()
	return &dashDevice{name: name, nc: connectCreds(t, url, creds, nats.CustomInboxPrefix("_INBOX."+name))}
}

// beat stores a heartbeat in the device's key of the tenant's "devices"
// bucket, on the subject the leaf uses.
func (d *dashDevice) beat(t *testing.T, doc heartbeat.Document) {
	t.Helper()
	doc.Device = d.name
	if doc.Sent.IsZero() {
		doc.Sent = time.Now().UTC()
	}
	if doc.Interval == 0 {
		doc.Interval = heartbeat.DefaultInterval
	}
	b, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	msg, err := d.nc.Request("$JS.canopy.API.$KV."+heartbeat.Bucket+"."+d.name, b, 10*time.Second)
	if err != nil {
		t.Fatalf("device %s: heartbeat: %v", d.name, err)
	}
	var ack struct {
		Error *struct {
			Description string `json:"description"`
		} `json:"error"`
	}
	if err := json.Unmarshal(msg.Data, &ack); err != nil || ack.Error != nil {
		t.Fatalf("device %s: heartbeat not stored: %s", d.name, msg.Data)
	}
}

// streamTelemetry publishes the device's telemetry every 100 ms until
// stop is called, so the hub's per-second rate stays above zero.
func (d *dashDevice) streamTelemetry(t *testing.T, value func(i int) float64) (stop func()) {
	t.Helper()
	done, quit := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			if err := d.nc.Publish("telemetry."+d.name+".temp", fmt.Appendf(nil, `{"value": %g, "unit": "C"}`, value(i))); err != nil {
				return
			}
			select {
			case <-quit:
				return
			case <-tick.C:
			}
		}
	}()
	var once sync.Once
	stop = func() { once.Do(func() { close(quit); <-done }) }
	t.Cleanup(stop)
	return stop
}

func f64(v float64) *float64 { return &v }
func u64(v uint64) *uint64   { return &v }

// healthyDoc is a heartbeat of a device that runs well.
func healthyDoc(started time.Time, temp float64, diskFree uint64) heartbeat.Document {
	return heartbeat.Document{
		Version: "v0.4.2",
		Started: started,
		Link:    heartbeat.Link{URL: "nats-leaf://hub-a.example.net:7422", Since: started.Add(time.Minute), Reconnects: 1},
		Health: &heartbeat.Health{
			CPUTempC: f64(temp), Load1: f64(0.38),
			MemAvailable: u64(612 << 20), MemTotal: u64(1 << 30),
			DiskFree: u64(diskFree), DiskTotal: u64(29 << 30),
		},
		Firmware: []heartbeat.Firmware{{Name: "sensor-fw", Version: "1.3.0", State: "applied"}},
	}
}

// TestDashboardBrowser drives the fleet dashboard in headless Chromium
// against a real hub: the login link opens it, both devices render with
// their state, a heartbeat and telemetry published afterwards show up
// without a reload, device data never turns into markup, the page runs
// without errors under its Content-Security-Policy, and it shows when
// the hub goes away.
func TestDashboardBrowser(t *testing.T) {
	b := newBrowser(t)
	shot := os.Getenv(screenshotEnv)

	// Tenant and devices exist before the hub starts, as after
	// `canopy-hub tenant add` and `device add` on a running fleet.
	keys := fleetKeys(t)
	if _, _, err := keys.AddTenant("acme", fleet.DefaultLimits()); err != nil {
		t.Fatal(err)
	}
	names := []string{"pump-1", "pump-2"}
	if shot != "" {
		names = append(names, "pump-3", "pump-4", "pump-5")
	}
	creds := map[string][]byte{}
	for _, name := range names {
		c, err := keys.AddDevice("acme", name)
		if err != nil {
			t.Fatal(err)
		}
		creds[name] = c
	}
	cfg := operatorConfig(t, keys)
	cfg.ServerName = "hub-a"
	cfg.Dashboard.Listen = "127.0.0.1:0"
	h := startHub(t, cfg)
	admin := hub.NewAdmin(h.ClientURL(), nil, keys)
	if err := admin.EnsureTenantAssets(context.Background(), "acme", 1); err != nil {
		t.Fatal(err)
	}
	login := h.DashboardLoginURL()
	if login == "" {
		t.Fatal("the hub runs no dashboard")
	}
	devices := map[string]*dashDevice{}
	for _, name := range names {
		devices[name] = newDashDevice(t, h.ClientURL(), name, creds[name])
	}

	// pump-1 reports; its version carries markup that must stay text.
	const markup = `<img id="injected" src="x">`
	start := time.Now().Add(-26 * time.Hour).UTC()
	doc1 := healthyDoc(start, 51.5, 18<<30)
	doc1.Version = "v0.4.2" + markup
	devices["pump-1"].beat(t, doc1)
	if shot != "" {
		populateScreenshotFleet(t, h, keys, admin, devices, creds, start)
	}

	b.do(t, "open the login link", chromedp.Navigate(login))
	b.do(t, "pump-1 online and pump-2 offline",
		chromedp.WaitVisible(chromedp.CSS(`tr[data-device="pump-1"][data-state="online"]`)),
		chromedp.WaitVisible(chromedp.CSS(`tr[data-device="pump-2"][data-state="offline"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#conn[data-state="live"]`)))
	if loc := evalJS[string](t, b, `location.pathname`); loc != "/" {
		t.Errorf("after login the browser is at %s, want /", loc)
	}
	if n := evalJS[int](t, b, `document.querySelectorAll('#injected').length`); n != 0 {
		t.Errorf("a device's version became markup: %d injected elements", n)
	}
	if text := evalJS[string](t, b, `document.querySelector('tr[data-device="pump-1"]').textContent`); !strings.Contains(text, markup) {
		t.Errorf("pump-1's row %q does not show its version as text", text)
	}
	if seen := evalJS[string](t, b, `document.querySelector('tr[data-device="pump-2"] .last-seen').textContent`); seen != "never" {
		t.Errorf("pump-2 never reported but is shown last seen %q", seen)
	}

	// A marker on the window survives only if the page is not reloaded.
	evalJS[bool](t, b, `window.canopyTestMarker = true`)

	// pump-2 comes online with a backlog: the row changes in place.
	doc2 := healthyDoc(start, 63.0, 12<<30)
	doc2.Firmware[0].State = "failed"
	doc2.Streams = []heartbeat.Stream{{Name: "telemetry", Msgs: 1234, Bytes: 56789, OldestAge: 42 * time.Second}}
	devices["pump-2"].beat(t, doc2)
	b.do(t, "pump-2 online with its backlog, without a reload",
		chromedp.WaitVisible(chromedp.CSS(`tr[data-device="pump-2"][data-state="online"] td.backlog[data-msgs="1234"]`)))
	if !evalJS[bool](t, b, `window.canopyTestMarker === true`) {
		t.Fatal("the page reloaded to show the heartbeat; it should update live")
	}
	if text := evalJS[string](t, b, `document.querySelector('tr[data-device="pump-2"] td.backlog').textContent`); !strings.Contains(text, "1.2k msgs") || !strings.Contains(text, "56.8 kB") {
		t.Errorf("pump-2's backlog reads %q, want 1.2k msgs and 56.8 kB", text)
	}

	// The filter narrows the table as one types.
	b.do(t, "type a filter", chromedp.SendKeys(chromedp.ID("filter"), "PUMP-2"))
	b.waitJS(t, "only pump-2 listed", `document.querySelectorAll('tr[data-device]').length === 1 && document.querySelector('tr[data-device="pump-2"]') !== null`)
	evalJS[bool](t, b, `(e => { e.value = ''; return e.dispatchEvent(new Event('input')); })(document.getElementById('filter'))`)
	b.waitJS(t, "every device listed again", `document.querySelector('tr[data-device="pump-1"]') !== null`)

	// Selecting pump-1 opens its chart, which fills from the telemetry
	// events of the stream.
	b.do(t, "select pump-1",
		chromedp.Click(chromedp.CSS(`tr[data-device="pump-1"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#detail[data-device="pump-1"] canvas#tele-chart`)))
	stop := devices["pump-1"].streamTelemetry(t, func(i int) float64 { return 21.5 })
	b.waitJS(t, "pump-1's telemetry rate and value in the chart",
		`Number(document.getElementById('tele-rate').dataset.rate) > 0 && document.getElementById('tele-value').textContent === '21.5'`)
	// The rate is drawn in blue, which nothing else on the chart is.
	b.waitJS(t, "pump-1's rate drawn on the chart", `(() => {
		const c = document.getElementById('tele-chart');
		const px = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
		let blue = 0;
		for (let i = 0; i < px.length; i += 4) if (px[i+3] > 0 && px[i+2] - px[i] > 100) blue++;
		return blue > 50;
	})()`)
	if !evalJS[bool](t, b, `window.canopyTestMarker === true`) {
		t.Fatal("the page reloaded while telemetry arrived")
	}
	stop()
	if shot != "" {
		saveScreenshot(t, b, devices, shot, start)
	}
	b.checkErrors(t)

	// The hub goes away: the page says it lost the stream (and from here
	// on the browser logs its failing reconnects).
	h.stop(t)
	b.do(t, "the connection shown down", chromedp.WaitVisible(chromedp.CSS(`#conn[data-state="down"]`)))
}

// populateScreenshotFleet adds what makes the screenshot a realistic
// view: more devices, one offline with a backlog, one throttled, and a
// rollout in progress with a failure.
func populateScreenshotFleet(t *testing.T, h *node, keys *fleet.Keys, admin *hub.Admin, devices map[string]*dashDevice, creds map[string][]byte, start time.Time) {
	t.Helper()
	ctx := context.Background()
	doc3 := healthyDoc(start, 47.0, 1<<30)
	doc3.Sent = time.Now().Add(-47 * time.Minute).UTC()
	doc3.Link.LastError = "dial tcp 10.0.8.1:7422: i/o timeout"
	doc3.Firmware[0].State = "downloading"
	doc3.Streams = []heartbeat.Stream{{Name: "telemetry", Msgs: 18234, Bytes: 5_412_000, OldestAge: 46 * time.Minute}}
	devices["pump-3"].beat(t, doc3)
	doc4 := healthyDoc(start, 82.0, 11<<30)
	doc4.Health.Throttled = true
	devices["pump-4"].beat(t, doc4)
	devices["pump-5"].beat(t, healthyDoc(start, 44.0, 21<<30))
	if err := admin.SetDeviceGroup(ctx, "acme", "canary", []string{"pump-1", "pump-2"}); err != nil {
		t.Fatal(err)
	}

	f := &rolloutFleet{h: h, keys: keys, admin: admin, tenant: "acme", creds: creds}
	r, err := admin.CreateRollout(ctx, "acme", hub.RolloutSpec{Manifest: f.manifest(t, "1.4.0"), Target: "all", Percent: 100, Threshold: 50})
	if err != nil {
		t.Fatal(err)
	}
	f.report(t, "pump-1", firmware.Status{Rollout: r.ID, Name: r.Name, Version: r.Version, State: firmware.StateApplied, Progress: 100, Running: r.Version})
	f.report(t, "pump-2", firmware.Status{Rollout: r.ID, Name: r.Name, Version: r.Version, State: firmware.StateFailed, Progress: 100, Running: "1.3.0", Reason: "verify: sha256 mismatch in chunk 12"})
	f.report(t, "pump-3", firmware.Status{Rollout: r.ID, Name: r.Name, Version: r.Version, State: firmware.StateDownloading, Progress: 40, Running: "1.3.0"})
}

// saveScreenshot lets the chart fill for a while, then saves the page.
func saveScreenshot(t *testing.T, b *browser, devices map[string]*dashDevice, path string, start time.Time) {
	t.Helper()
	doc := healthyDoc(start, 51.5, 18<<30)
	doc.Firmware[0].Version = "1.4.0"
	devices["pump-1"].beat(t, doc)
	b.waitJS(t, "pump-1's version without markup", `!document.querySelector('tr[data-device="pump-1"]').textContent.includes('<')`)
	// A slow swing, as a temperature sensor's, sampled ten times a second.
	stop := devices["pump-1"].streamTelemetry(t, func(i int) float64 { return math.Round((21.5+1.8*math.Sin(float64(i)/60))*10) / 10 })
	defer stop()
	b.waitJS(t, "the rollout on the page", `document.querySelector('[data-rollout] .bar span') !== null`)
	// The chart shows what the page received; 40 s make a readable curve.
	time.Sleep(40 * time.Second)
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatalf("save screenshot: %v", err)
	}
	t.Logf("dashboard screenshot saved to %s", path)
}
