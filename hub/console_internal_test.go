package hub

import (
	"strings"
	"testing"
	"time"

	"github.com/canopy-iot/canopy/firmware"
	"github.com/canopy-iot/canopy/internal/heartbeat"
)

func init() {
	// Tests add tenants to running hubs; the console picks them up on
	// its next scan.
	defaultConsoleTiming.tenantScan = 500 * time.Millisecond
}

func TestTelemetryValue(t *testing.T) {
	for _, c := range []struct {
		payload string
		want    float64
		ok      bool
	}{
		{"21.5", 21.5, true},
		{" -3e2 ", -300, true},
		{`{"value": 7, "temp": 1}`, 7, true},
		{`{"temp": 1.25, "value": 7}`, 7, true},
		{`{"unit": "C", "temp": 19, "hum": 40}`, 19, true},
		{`{"nested": {"value": 3}, "x": 4}`, 4, true},
		{`{"value": "high"}`, 0, false},
		{`"21.5"`, 0, false},
		{"0x10", 0, false},
		{"-Inf", 0, false},
		{"NaN", 0, false},
		{"21.5 C", 0, false},
		{`{"value": 1`, 0, false},
		{"", 0, false},
		{"[1, 2]", 0, false},
	} {
		got, ok := telemetryValue([]byte(c.payload))
		if ok != c.ok || got != c.want {
			t.Errorf("telemetryValue(%q) = %v, %v; want %v, %v", c.payload, got, ok, c.want, c.ok)
		}
	}
}

func TestConsoleBaseURL(t *testing.T) {
	for listen, want := range map[string]string{
		"127.0.0.1:7481": "http://127.0.0.1:7481",
		"0.0.0.0:7481":   "http://127.0.0.1:7481",
		"[::]:7481":      "http://127.0.0.1:7481",
		":7481":          "http://127.0.0.1:7481",
		"[::1]:7481":     "http://[::1]:7481",
		"hub.local:7481": "http://hub.local:7481",
	} {
		if got := ConsoleBaseURL("http", listen); got != want {
			t.Errorf("ConsoleBaseURL(%q) = %q, want %q", listen, got, want)
		}
	}
}

func TestDashboardConfig(t *testing.T) {
	c := Config{Operator: Operator{KeyDir: "/k"}}.WithDefaults()
	if c.Dashboard.Listen != DefaultDashboardListen || c.Dashboard.TokenFile != "/k/dashboard.token" {
		t.Errorf("operator-mode defaults %+v", c.Dashboard)
	}
	c = Config{JetStream: JetStream{StoreDir: "/s"}}.WithDefaults()
	if c.Dashboard.TokenFile != "/s/dashboard.token" {
		t.Errorf("defaults %+v", c.Dashboard)
	}
	c = Config{Dashboard: Dashboard{Listen: "nope", TLS: &TLS{CertFile: "/absent.pem"}}}.WithDefaults()
	err := c.Validate()
	for _, want := range []string{"dashboard.listen", "dashboard.tls"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate: %v, want a problem with %s", err, want)
		}
	}
	if err := (Config{Dashboard: Dashboard{Listen: Off}}).WithDefaults().Validate(); err != nil {
		t.Errorf("off: %v", err)
	}
}

// The agent's status report, written on every change, wins over an older
// heartbeat's firmware; a newer heartbeat wins over an older report.
func TestDeviceFirmwareFreshestReportWins(t *testing.T) {
	now := time.Now()
	tv := newTenantView()
	tv.beats["pi-1"] = heartbeat.Document{Device: "pi-1", Sent: now.Add(-20 * time.Second), Received: now,
		Firmware: []heartbeat.Firmware{{Name: "app", Version: "1.0.0", State: "applied"}}}
	tv.statuses["pi-1"] = firmware.Status{Device: "pi-1", Name: "app", Version: "1.1.0", Running: "1.0.0",
		State: firmware.StateFailed, Reason: "install: hook exited 3", Updated: now.Add(-5 * time.Second)}
	d := tv.device("pi-1", "", now)
	if len(d.Firmware) != 1 || d.Firmware[0].State != "failed" || d.Firmware[0].Error != "install: hook exited 3" {
		t.Fatalf("newer status report: %+v", d.Firmware)
	}
	st := tv.statuses["pi-1"]
	st.Updated = now.Add(-time.Minute)
	tv.statuses["pi-1"] = st
	if d := tv.device("pi-1", "", now); len(d.Firmware) != 1 || d.Firmware[0].State != "applied" || d.Firmware[0].Version != "1.0.0" || d.Firmware[0].Error != "" {
		t.Fatalf("newer heartbeat: %+v", d.Firmware)
	}
}
