package hub_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/canopy-iot/canopy/firmware"
	"github.com/canopy-iot/canopy/hub"
	"github.com/canopy-iot/canopy/hub/fleet"
	"github.com/canopy-iot/canopy/internal/heartbeat"
	"github.com/canopy-iot/canopy/internal/hubtest"
	"github.com/canopy-iot/canopy/internal/wait"
)

// console is an operator-mode hub with its console on a free port.
type console struct {
	*node
	keys  *fleet.Keys
	admin *hub.Admin
	base  string
	token string
}

func startConsole(t *testing.T, tenants ...string) *console {
	t.Helper()
	keys, err := fleet.Init(filepath.Join(t.TempDir(), "keys"), nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg := hubtest.OperatorConfig(t, keys)
	cfg.Dashboard.Listen = "127.0.0.1:0"
	n := startHub(t, cfg)
	c := &console{node: n, keys: keys, admin: hub.NewAdmin(n.ClientURL(), nil, keys), base: n.DashboardURL()}
	login, err := url.Parse(n.DashboardLoginURL())
	if err != nil || c.base == "" {
		t.Fatalf("dashboard URLs %q, %q: %v", c.base, n.DashboardLoginURL(), err)
	}
	c.token = login.Query().Get("token")
	for _, name := range tenants {
		hubtest.AddTenant(t, c.admin, keys, name, fleet.DefaultLimits())
	}
	return c
}

// get fetches path with the bearer token ("" for none).
func (c *console) get(t *testing.T, path, token string) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, c.base+path, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, body
}

func (c *console) fleet(t *testing.T) hub.FleetSnapshot {
	t.Helper()
	resp, body := c.get(t, hub.ConsoleFleetPath, c.token)
	var s hub.FleetSnapshot
	if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &s) != nil {
		t.Fatalf("GET /api/fleet: %s: %s", resp.Status, body)
	}
	return s
}

// device connects as a newly provisioned device of tenant.
func (c *console) device(t *testing.T, tenant, name string) *nats.Conn {
	t.Helper()
	creds, err := c.keys.AddDevice(tenant, name)
	if err != nil {
		t.Fatal(err)
	}
	return connectCreds(t, c.ClientURL(), creds, nats.CustomInboxPrefix("_INBOX."+name))
}

// beat puts a heartbeat as the device does.
func beat(t *testing.T, nc *nats.Conn, doc heartbeat.Document) {
	t.Helper()
	b, _ := json.Marshal(doc)
	msg, err := nc.Request("$JS.canopy.API.$KV.devices."+doc.Device, b, 5*time.Second)
	if err != nil {
		t.Fatalf("heartbeat of %s: %v", doc.Device, err)
	}
	if strings.Contains(string(msg.Data), `"error"`) {
		t.Fatalf("heartbeat of %s: %s", doc.Device, msg.Data)
	}
}

func findDevice(s hub.FleetSnapshot, tenant, id string) (hub.FleetDevice, bool) {
	for _, tn := range s.Tenants {
		if tn.Name != tenant {
			continue
		}
		for _, d := range tn.Devices {
			if d.ID == id {
				return d, true
			}
		}
	}
	return hub.FleetDevice{}, false
}

func TestConsoleAuth(t *testing.T) {
	c := startConsole(t)
	if len(c.token) != 64 {
		t.Fatalf("token %q: want 64 hex characters", c.token)
	}
	tokenFile := filepath.Join(c.keys.Dir(), "dashboard.token")
	if fi, err := os.Stat(tokenFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("token file: %v, %v", fi, err)
	}
	if got, err := hub.ReadDashboardToken(tokenFile); err != nil || got != c.token {
		t.Fatalf("token file holds %q (%v), login URL %q", got, err, c.token)
	}

	if resp, body := c.get(t, hub.ConsoleHealthPath, ""); resp.StatusCode != http.StatusOK || strings.TrimSpace(string(body)) != "ok" {
		t.Errorf("healthz without token: %s %q", resp.Status, body)
	}
	for _, path := range []string{hub.ConsoleFleetPath, hub.ConsoleStatusPath, hub.ConsoleEventsPath, hub.MetricsPath, "/", "/app.js"} {
		for _, token := range []string{"", "wrong", c.token + "x", strings.ToUpper(c.token)} {
			if resp, _ := c.get(t, path, token); resp.StatusCode != http.StatusUnauthorized {
				t.Errorf("GET %s with token %q: %s, want 401", path, token, resp.Status)
			}
		}
	}
	if err := c.logs.Contains("request without a valid token refused"); err != nil || !strings.Contains(c.logs.String(), "remote=127.0.0.1:") {
		t.Errorf("failed attempts not logged with the remote address: %v\n%s", err, c.logs)
	}
	if n := c.logs.Count("request without a valid token refused"); n != 1 {
		t.Errorf("%d refusals logged, want 1 (rate-limited)", n)
	}
	if resp, body := c.get(t, hub.ConsoleFleetPath, c.token); resp.StatusCode != http.StatusOK || !json.Valid(body) {
		t.Errorf("bearer token: %s %q", resp.Status, body)
	}

	// The login URL sets the cookie and sends the browser to the page.
	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	if resp, err := browser.Get(c.base + "/login?token=nope"); err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("login with a wrong token: %v, %v", resp, err)
	}
	resp, err := browser.Get(c.DashboardLoginURL())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/" {
		t.Fatalf("login: %s, Location %q", resp.Status, resp.Header.Get("Location"))
	}
	cookies := resp.Cookies()
	if len(cookies) != 1 || cookies[0].Name != "canopy_dashboard" || !cookies[0].HttpOnly || cookies[0].SameSite != http.SameSiteStrictMode || cookies[0].Secure {
		t.Fatalf("login cookies %+v", cookies)
	}
	if strings.Contains(cookies[0].Value, c.token) {
		t.Errorf("the cookie carries the token itself")
	}
	for path, want := range map[string]string{"/": "text/html", hub.ConsoleFleetPath: "application/json", hub.MetricsPath: "text/plain"} {
		resp, err := browser.Get(c.base + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), want) {
			t.Errorf("GET %s with the cookie: %s %s", path, resp.Status, resp.Header.Get("Content-Type"))
		}
	}
	// A forged cookie does not open it.
	req, _ := http.NewRequest(http.MethodGet, c.base+hub.ConsoleFleetPath, nil)
	req.AddCookie(&http.Cookie{Name: "canopy_dashboard", Value: c.token})
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("token as cookie: %v, %v", resp, err)
	}
}

func TestConsoleTokenFileChecked(t *testing.T) {
	keys, err := fleet.Init(filepath.Join(t.TempDir(), "keys"), nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg := hubtest.OperatorConfig(t, keys)
	cfg.Dashboard.Listen = "127.0.0.1:0"
	cfg.Dashboard.TokenFile = filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(cfg.Dashboard.TokenFile, []byte("secret\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := hub.New(cfg, nil); err == nil || !strings.Contains(err.Error(), "dashboard.token_file") || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("readable token file: %v", err)
	}
	// A token of one's own choosing is used as it is.
	os.Chmod(cfg.Dashboard.TokenFile, 0o600)
	n := startHub(t, cfg)
	if !strings.HasSuffix(n.DashboardLoginURL(), "/login?token=secret") {
		t.Fatalf("login URL %q", n.DashboardLoginURL())
	}
	cfg.Dashboard.Listen = hub.Off
	cfg.Dashboard.TokenFile = ""
	cfg.JetStream.StoreDir = t.TempDir()
	cfg.Operator.EnrollListen = hub.Off
	off := startHub(t, cfg)
	if off.DashboardURL() != "" || off.DashboardLoginURL() != "" {
		t.Fatalf("dashboard off, yet URL %q", off.DashboardURL())
	}
}

// scrape reads /metrics into families by name.
func (c *console) scrape(t *testing.T) map[string]*dto.MetricFamily {
	t.Helper()
	resp, body := c.get(t, hub.MetricsPath, c.token)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %s: %s", resp.Status, body)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(string(body)))
	if err != nil {
		t.Fatalf("parse /metrics: %v\n%s", err, body)
	}
	return fams
}

// metric is the value of the family's sample whose labels include
// labels ("name=value"), or an error.
func metric(fams map[string]*dto.MetricFamily, name string, labels ...string) (float64, error) {
	f, ok := fams[name]
	if !ok {
		return 0, fmt.Errorf("no metric %s", name)
	}
next:
	for _, m := range f.GetMetric() {
		have := map[string]string{}
		for _, l := range m.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		for _, l := range labels {
			k, v, _ := strings.Cut(l, "=")
			if have[k] != v {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue(), nil
		case m.Gauge != nil:
			return m.Gauge.GetValue(), nil
		}
	}
	return 0, fmt.Errorf("no sample of %s with %v", name, labels)
}

func wantMetric(t *testing.T, c *console, name string, want float64, labels ...string) func() error {
	return func() error {
		got, err := metric(c.scrape(t), name, labels...)
		if err != nil {
			return err
		}
		if got != want {
			return fmt.Errorf("%s%v = %v, want %v", name, labels, got, want)
		}
		return nil
	}
}

func TestConsoleMetrics(t *testing.T) {
	c := startConsole(t, "acme")
	fams := c.scrape(t)
	for _, name := range []string{"canopy_hub_info", "canopy_hub_connections", "canopy_hub_leafnodes", "canopy_hub_routes",
		"canopy_hub_slow_consumers_total", "canopy_hub_jetstream_storage_bytes", "canopy_hub_jetstream_storage_max_bytes",
		"canopy_hub_jetstream_memory_reserved_bytes", "go_goroutines"} {
		if _, err := metric(fams, name); err != nil {
			t.Error(err)
		}
	}
	if v, err := metric(fams, "canopy_hub_jetstream_streams"); err != nil || v < 2 {
		t.Errorf("jetstream streams: %v, %v", v, err)
	}
	in0, err := metric(fams, "canopy_hub_in_messages_total")
	if err != nil {
		t.Fatal(err)
	}

	// Counters move with traffic. The console counts telemetry once it
	// follows the tenant: a first message tells when.
	nc := c.device(t, "acme", "pi-1")
	var tele0 float64
	wait.For(t, 15*time.Second, func() error {
		nc.Publish("telemetry.pi-1.temp", []byte("1"))
		nc.Flush()
		v, err := metric(c.scrape(t), "canopy_hub_tenant_telemetry_messages_total", "tenant=acme")
		if err == nil && v == 0 {
			err = errors.New("no telemetry counted yet")
		}
		tele0 = v
		return err
	})
	fams = c.scrape(t)
	in0, err = metric(fams, "canopy_hub_in_messages_total")
	if err != nil {
		t.Fatal(err)
	}
	tele0, _ = metric(fams, "canopy_hub_tenant_telemetry_messages_total", "tenant=acme")
	for i := range 50 {
		if err := nc.Publish("telemetry.pi-1.temp", []byte(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	nc.Flush()
	wait.For(t, 10*time.Second, func() error {
		in, err := metric(c.scrape(t), "canopy_hub_in_messages_total")
		if err != nil || in < in0+50 {
			return fmt.Errorf("in messages %v after 50 published (were %v): %v", in, in0, err)
		}
		return nil
	})
	wait.For(t, 10*time.Second, func() error {
		return wantMetric(t, c, "canopy_hub_tenant_telemetry_messages_total", tele0+50, "tenant=acme")()
	})

	// The provisioned device counts, offline until its heartbeat arrives,
	// and offline again when the next one is overdue (2 intervals + 5s).
	wait.For(t, 10*time.Second, wantMetric(t, c, "canopy_hub_tenant_devices", 1, "tenant=acme"))
	if v, err := metric(c.scrape(t), "canopy_hub_tenant_devices_online", "tenant=acme"); err != nil || v != 0 {
		t.Fatalf("online before any heartbeat: %v, %v", v, err)
	}
	now := time.Now()
	beat(t, nc, heartbeat.Document{Device: "pi-1", Version: "v9", Started: now, Sent: now, Interval: time.Second,
		Streams: []heartbeat.Stream{{Name: "telemetry", Msgs: 12, Bytes: 3400}, {Name: "events", Msgs: 1, Bytes: 100, Dropped: 2}}})
	wait.For(t, 10*time.Second, wantMetric(t, c, "canopy_hub_tenant_devices_online", 1, "tenant=acme"))
	fams = c.scrape(t)
	for name, want := range map[string]float64{"canopy_hub_tenant_backlog_messages": 13, "canopy_hub_tenant_backlog_bytes": 3500, "canopy_hub_tenant_dropped_messages": 2} {
		if v, err := metric(fams, name, "tenant=acme"); err != nil || v != want {
			t.Errorf("%s = %v (%v), want %v", name, v, err, want)
		}
	}
	quiet := time.Now()
	wait.For(t, 20*time.Second, wantMetric(t, c, "canopy_hub_tenant_devices_online", 0, "tenant=acme"))
	if d := time.Since(quiet); d < 5*time.Second {
		t.Errorf("offline after %s, want after 2*1s+5s", d)
	}
}

// writeKV puts a document into a tenant's bucket as the tenant's admin.
func (c *console) writeKV(t *testing.T, tenant, bucket, key string, v any) {
	t.Helper()
	nc := adminConn(t, c.ClientURL(), c.keys, tenant)
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	kv, err := js.KeyValue(ctx, bucket)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(v)
	if _, err := kv.Put(ctx, key, b); err != nil {
		t.Fatal(err)
	}
}

func TestConsoleFleetRolloutsAndTenants(t *testing.T) {
	c := startConsole(t, "acme")
	for _, d := range []string{"pi-2", "pi-1", "pi-3", "gone"} {
		if _, err := c.keys.AddDevice("acme", d); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.keys.RevokeDevice("acme", "gone"); err != nil {
		t.Fatal(err)
	}
	created := time.Now().Add(-time.Minute).UTC().Truncate(time.Second)
	c.writeKV(t, "acme", hub.RolloutsBucket, "app-1.2.0-1", hub.Rollout{
		ID: "app-1.2.0-1", Name: "app", Version: "1.2.0", Target: "all", Devices: []string{"pi-1", "pi-2", "pi-3"},
		State: hub.RolloutHalted, Reason: "too many failures", Waves: 1, Assigned: []string{"pi-1", "pi-2"}, Created: created, Updated: created,
	})
	c.writeKV(t, "acme", hub.RolloutsBucket, "group.canary", []string{"pi-2"})
	c.writeKV(t, "acme", hub.StatusBucket, "pi-1", firmware.Status{Device: "pi-1", Rollout: "app-1.2.0-1", Name: "app", Version: "1.2.0", State: firmware.StateApplied, Running: "1.2.0"})
	c.writeKV(t, "acme", hub.StatusBucket, "pi-2", firmware.Status{Device: "pi-2", Rollout: "app-1.2.0-1", Name: "app", Version: "1.2.0", State: firmware.StateFailed, Reason: "verify: hash mismatch"})

	var s hub.FleetSnapshot
	wait.For(t, 15*time.Second, func() error {
		s = c.fleet(t)
		if len(s.Tenants) != 1 || len(s.Tenants[0].Devices) != 3 || len(s.Tenants[0].Rollouts) != 1 {
			return fmt.Errorf("snapshot %+v", s)
		}
		if d, _ := findDevice(s, "acme", "pi-2"); len(d.Firmware) == 0 || d.Group != "canary" {
			return fmt.Errorf("pi-2 %+v", d)
		}
		return nil
	})
	tn := s.Tenants[0]
	if s.Server.Name == "" || s.Server.ClusterSize != 1 || s.Server.Version == "" {
		t.Errorf("server %+v", s.Server)
	}
	if ids := []string{tn.Devices[0].ID, tn.Devices[1].ID, tn.Devices[2].ID}; strings.Join(ids, ",") != "pi-1,pi-2,pi-3" {
		t.Errorf("devices %v: want sorted, without the revoked one", ids)
	}
	d2 := tn.Devices[1]
	if d2.Online || d2.LastSeen != nil || d2.Firmware[0] != (hub.FleetFirmware{Name: "app", Version: "1.2.0", State: "failed", Error: "verify: hash mismatch"}) {
		t.Errorf("pi-2 %+v", d2)
	}
	r := tn.Rollouts[0]
	want := hub.FleetRollout{ID: "app-1.2.0-1", Firmware: "app", Version: "1.2.0", State: hub.RolloutHalted, Reason: "too many failures", Created: created,
		Devices: 3, Applied: 1, Failed: 1, InProgress: 0, Pending: 1}
	failures := r.Failures
	r.Failures = nil
	if fmt.Sprint(r) != fmt.Sprint(want) || len(failures) != 1 || failures[0] != (hub.FleetFailure{Device: "pi-2", Error: "verify: hash mismatch"}) {
		t.Errorf("rollout %+v, failures %+v", r, failures)
	}
	fams := c.scrape(t)
	if v, err := metric(fams, "canopy_hub_tenant_rollouts", "tenant=acme", "state=halted"); err != nil || v != 1 {
		t.Errorf("halted rollouts %v, %v", v, err)
	}

	// A tenant added to the running hub shows up; the JSON keeps the
	// contract's shapes (null, empty lists).
	hubtest.AddTenant(t, c.admin, c.keys, "zeta", fleet.DefaultLimits())
	if _, err := c.keys.AddDevice("zeta", "z-1"); err != nil {
		t.Fatal(err)
	}
	wait.For(t, 15*time.Second, func() error {
		_, body := c.get(t, hub.ConsoleFleetPath, c.token)
		if !strings.Contains(string(body), `{"name":"zeta","devices":[{"id":"z-1","online":false,"last_seen":null,`) ||
			!strings.Contains(string(body), `"health":null,"firmware":[]}],"rollouts":[]}`) {
			return fmt.Errorf("fleet %s", body)
		}
		return nil
	})
	var st hub.ConsoleStatus
	resp, body := c.get(t, hub.ConsoleStatusPath, c.token)
	if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &st) != nil {
		t.Fatalf("status: %s %s", resp.Status, body)
	}
	if len(st.Tenants) != 2 || st.Tenants[0].Devices != 3 || !st.JetStream.Enabled || st.JetStream.Streams < 4 || len(st.Tenants[0].Rollouts) != 0 || !st.Server.OperatorMode {
		t.Errorf("status %s", body)
	}
}

// sseEvent is one event of the stream.
type sseEvent struct{ name, data string }

// events opens /api/events and delivers its events until the test ends.
func (c *console) events(t *testing.T) (<-chan sseEvent, *http.Response) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, c.base+hub.ConsoleEventsPath, nil)
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("events: %s %s", resp.Status, resp.Header.Get("Content-Type"))
	}
	ch := make(chan sseEvent, 100)
	go func() {
		defer close(ch)
		defer resp.Body.Close()
		r := bufio.NewReader(resp.Body)
		var ev sseEvent
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			line = strings.TrimRight(line, "\n")
			switch {
			case line == "":
				if ev.name != "" {
					ch <- ev
				}
				ev = sseEvent{}
			case strings.HasPrefix(line, "event: "):
				ev.name = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				ev.data = strings.TrimPrefix(line, "data: ")
			}
		}
	}()
	return ch, resp
}

// nextEvent waits for an event named name that satisfies ok.
func nextEvent(t *testing.T, ch <-chan sseEvent, name string, timeout time.Duration, ok func(data string) error) {
	t.Helper()
	deadline := time.After(timeout)
	last := errors.New("no event")
	for {
		select {
		case ev, open := <-ch:
			if !open {
				t.Fatalf("event stream ended waiting for %s: %v", name, last)
			}
			if ev.name != name {
				continue
			}
			if last = ok(ev.data); last == nil {
				return
			}
		case <-deadline:
			t.Fatalf("no matching %s event within %s: %v", name, timeout, last)
		}
	}
}

func TestConsoleEvents(t *testing.T) {
	c := startConsole(t, "acme")
	nc := c.device(t, "acme", "pi-1")
	ch, _ := c.events(t)

	deviceState := func(online bool) func(string) error {
		return func(data string) error {
			var s hub.FleetSnapshot
			if err := json.Unmarshal([]byte(data), &s); err != nil {
				return err
			}
			d, ok := findDevice(s, "acme", "pi-1")
			if !ok || d.Online != online || (online && d.Version != "v2") {
				return fmt.Errorf("pi-1 %+v (listed: %v)", d, ok)
			}
			return nil
		}
	}
	nextEvent(t, ch, "fleet", 15*time.Second, deviceState(false))
	now := time.Now()
	beat(t, nc, heartbeat.Document{Device: "pi-1", Version: "v2", Started: now, Sent: now, Interval: time.Minute})
	nextEvent(t, ch, "fleet", 10*time.Second, deviceState(true))

	// Telemetry: messages per device per second, with the last value.
	for i := range 5 {
		payload := fmt.Sprintf(`{"unit": "C", "value": %d.5}`, 20+i)
		if err := nc.Publish("telemetry.pi-1.temp", []byte(payload)); err != nil {
			t.Fatal(err)
		}
	}
	nc.Flush()
	total := 0
	nextEvent(t, ch, "telemetry", 10*time.Second, func(data string) error {
		var ev hub.TelemetryEvent
		if err := json.Unmarshal([]byte(data), &ev); err != nil {
			return err
		}
		if time.Since(time.UnixMilli(ev.T)) > time.Minute {
			return fmt.Errorf("t %d", ev.T)
		}
		for _, d := range ev.Devices {
			if d.Tenant == "acme" && d.Device == "pi-1" {
				total += d.Msgs
				if total == 5 && (d.Value == nil || *d.Value != 24.5) {
					return fmt.Errorf("last value %v, want 24.5", d.Value)
				}
			}
		}
		if total != 5 {
			return fmt.Errorf("%d messages counted so far", total)
		}
		return nil
	})
	if err := nc.Publish("telemetry.pi-1.state", []byte(`"open"`)); err != nil {
		t.Fatal(err)
	}
	nextEvent(t, ch, "telemetry", 10*time.Second, func(data string) error {
		if !strings.Contains(data, `{"tenant":"acme","device":"pi-1","msgs":1,"value":null}`) {
			return fmt.Errorf("telemetry %s", data)
		}
		return nil
	})

	// A device that goes quiet turns offline: the stream says so when its
	// next heartbeat is overdue (2*1s+5s), without any bucket change.
	now = time.Now()
	beat(t, nc, heartbeat.Document{Device: "pi-1", Version: "v2", Started: now, Sent: now, Interval: time.Second})
	nextEvent(t, ch, "fleet", 10*time.Second, deviceState(true))
	nextEvent(t, ch, "fleet", 15*time.Second, deviceState(false))
	if d := time.Since(now); d < 7*time.Second {
		t.Errorf("offline after %s, want after 7s", d)
	}

	// An open stream does not hold up the hub's shutdown.
	start := time.Now()
	c.stop(t)
	if d := time.Since(start); d > 4*time.Second {
		t.Errorf("shutdown took %s with an event stream open", d)
	}
	for range ch {
	}
}

func TestConsoleWithoutOperatorMode(t *testing.T) {
	cfg := testConfig(t)
	cfg.Dashboard.Listen = "127.0.0.1:0"
	n := startHub(t, cfg)
	c := &console{node: n, base: n.DashboardURL()}
	login, _ := url.Parse(n.DashboardLoginURL())
	c.token = login.Query().Get("token")
	if _, err := os.Stat(filepath.Join(cfg.JetStream.StoreDir, "dashboard.token")); err != nil {
		t.Errorf("token file not in the store directory: %v", err)
	}
	if s := c.fleet(t); s.Tenants == nil || len(s.Tenants) != 0 || s.Server.Name == "" {
		t.Errorf("fleet %+v", s)
	}
	fams := c.scrape(t)
	if _, err := metric(fams, "canopy_hub_in_messages_total"); err != nil {
		t.Error(err)
	}
	for name := range fams {
		if strings.HasPrefix(name, "canopy_hub_tenant_") && len(fams[name].GetMetric()) > 0 {
			t.Errorf("tenant metric %s without operator mode", name)
		}
	}
}

func TestConsoleAddressInUse(t *testing.T) {
	// Held here, or already by another process (a hub of another test).
	ln, err := net.Listen("tcp", hub.DefaultDashboardListen)
	if err == nil {
		defer ln.Close()
	} else if !errors.Is(err, syscall.EADDRINUSE) {
		t.Skipf("cannot listen on the default address: %v", err)
	}
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()

	// The default address taken: the hub runs, without a console.
	cfg := testConfig(t)
	cfg.Dashboard.Listen = ""
	n := startHub(t, cfg)
	if n.DashboardURL() != "" {
		t.Fatalf("dashboard at %s while its address is taken", n.DashboardURL())
	}
	if err := n.logs.Contains("dashboard off: its default address is in use"); err != nil {
		t.Error(err)
	}

	// An address set explicitly must be free.
	cfg = testConfig(t)
	cfg.Dashboard.Listen = taken.Addr().String()
	h, err := hub.New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Run(context.Background()); err == nil || !strings.Contains(err.Error(), "dashboard.listen") {
		t.Fatalf("hub with its dashboard address taken: %v", err)
	}
}

// A device whose clock is far off (a board without a real-time clock,
// booted offline) is online and last seen by the hub's clock, in the
// console as in `canopy-hub device list`.
func TestConsoleGoesByTheHubsClock(t *testing.T) {
	c := startConsole(t, "acme")
	nc := c.device(t, "acme", "pi-1")
	before := time.Now()
	skewed := before.Add(-48 * time.Hour)
	beat(t, nc, heartbeat.Document{Device: "pi-1", Version: "v1", Started: skewed, Sent: skewed, Interval: time.Minute})
	wait.For(t, 10*time.Second, func() error {
		d, ok := findDevice(c.fleet(t), "acme", "pi-1")
		switch {
		case !ok || d.LastSeen == nil:
			return fmt.Errorf("pi-1 not seen yet: %+v", d)
		case !d.Online || d.LastSeen.Before(before.Add(-time.Second)):
			t.Fatalf("pi-1 with its clock 48h behind: online %v, last seen %v; want online, seen after %v", d.Online, d.LastSeen, before)
		}
		return nil
	})
	beats, err := c.admin.Heartbeats(context.Background(), "acme")
	if err != nil {
		t.Fatal(err)
	}
	if b := beats["pi-1"]; !b.Online(time.Now()) || b.LastSeen().Before(before.Add(-time.Second)) {
		t.Fatalf("Heartbeats: pi-1 received %v, online %v", b.Received, b.Online(time.Now()))
	}
}
