package health_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/canopy-iot/canopy/internal/config"
	"github.com/canopy-iot/canopy/internal/testlog"
	"github.com/canopy-iot/canopy/internal/version"
	"github.com/canopy-iot/canopy/leaf/health"
	"github.com/canopy-iot/canopy/leaf/natsd"
)

// fakeRoot writes files (path relative to the root → content) into a
// fresh directory standing for "/".
func fakeRoot(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for name, content := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// A Raspberry Pi 4 under Raspberry Pi OS, as far as health reads it.
var piFiles = map[string]string{
	"proc/uptime":                          "350735.47 234388.90\n",
	"proc/loadavg":                         "0.52 0.58 0.59 1/389 14728\n",
	"proc/meminfo":                         "MemTotal:        3884360 kB\nMemFree:          215508 kB\nMemAvailable:    2871684 kB\nBuffers:          151720 kB\n",
	"sys/class/thermal/thermal_zone0/temp": "48312\n",
	"sys/devices/platform/soc/soc:firmware/get_throttled": "50005\n",
	"sys/class/hwmon/hwmon0/name":                         "cpu_thermal\n",
	"sys/class/hwmon/hwmon1/name":                         "rpi_volt\n",
	"sys/class/hwmon/hwmon1/in0_lcrit_alarm":              "0\n",
}

func yes() *bool { v := true; return &v }
func no() *bool  { v := false; return &v }

func TestReportFromAPi(t *testing.T) {
	dataDir := t.TempDir()
	p := health.New(health.Config{Root: fakeRoot(t, piFiles)}, "pi-001", dataDir, nil, nil)
	before := time.Now()
	r := p.Report()
	at, err := time.Parse(time.RFC3339Nano, r.At)
	if err != nil || at.Before(before.Add(-time.Second)) || at.After(time.Now()) {
		t.Fatalf("at %q: %v", r.At, err)
	}
	if r.Device != "pi-001" || r.Version != version.Version {
		t.Fatalf("device %q version %q", r.Device, r.Version)
	}
	if r.UptimeSeconds == nil || *r.UptimeSeconds != 350735.47 {
		t.Errorf("uptime %v", r.UptimeSeconds)
	}
	if r.CPUTempC == nil || *r.CPUTempC != 48.312 {
		t.Errorf("cpu temperature %v", r.CPUTempC)
	}
	if want := (&health.Load{Avg1: 0.52, Avg5: 0.58, Avg15: 0.59}); !reflect.DeepEqual(r.Load, want) {
		t.Errorf("load %+v", r.Load)
	}
	if want := (&health.Memory{TotalBytes: 3884360 * 1024, AvailableBytes: 2871684 * 1024}); !reflect.DeepEqual(r.Memory, want) {
		t.Errorf("memory %+v", r.Memory)
	}
	// 0x50005: under-voltage and throttled now, both also since boot.
	want := &health.Throttled{
		Source: "firmware", Raw: "0x50005",
		UnderVoltage: yes(), FreqCapped: no(), Throttled: yes(), SoftTempLimit: no(),
		UnderVoltageOccurred: yes(), FreqCappedOccurred: no(), ThrottledOccurred: yes(), SoftTempLimitOccurred: no(),
	}
	if !reflect.DeepEqual(r.Throttled, want) {
		got, _ := json.Marshal(r.Throttled)
		t.Errorf("throttled %s", got)
	}
	if r.Disk == nil || r.Disk.Path != dataDir || r.Disk.TotalBytes == 0 || r.Disk.FreeBytes > r.Disk.TotalBytes {
		t.Errorf("disk %+v", r.Disk)
	}

	// The document's field names are the compatibility surface.
	b, _ := json.Marshal(r)
	var doc map[string]any
	json.Unmarshal(b, &doc)
	var keys []string
	for k := range doc {
		keys = append(keys, k)
	}
	for _, k := range []string{"device", "version", "at", "uptime_s", "cpu_temp_c", "throttled", "load", "memory", "disk"} {
		if _, ok := doc[k]; !ok {
			t.Errorf("document %s has no %q", b, k)
		}
	}
	if len(doc) != 9 {
		t.Errorf("document has keys %v", keys)
	}
	for _, want := range []string{`"load":{"1m":0.52,"5m":0.58,"15m":0.59}`, `"memory":{"total_bytes":3977584640,"available_bytes":2940604416}`, `"under_voltage_occurred":true`, `"raw":"0x50005"`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("document %s lacks %s", b, want)
		}
	}
}

// Where the firmware's file is on other boards, and what is left when a
// kernel has only the hwmon driver.
func TestThrottledSources(t *testing.T) {
	for _, c := range []struct {
		name  string
		files map[string]string
		want  *health.Throttled
	}{
		{"pi 5", map[string]string{"sys/devices/platform/soc@107c000000/soc@107c000000:firmware/get_throttled": "0\n", "sys/devices/platform/other/x": ""},
			&health.Throttled{Source: "firmware", Raw: "0x0", UnderVoltage: no(), FreqCapped: no(), Throttled: no(), SoftTempLimit: no(),
				UnderVoltageOccurred: no(), FreqCappedOccurred: no(), ThrottledOccurred: no(), SoftTempLimitOccurred: no()}},
		{"hwmon only", map[string]string{"sys/class/hwmon/hwmon0/name": "cpu_thermal\n", "sys/class/hwmon/hwmon3/name": "rpi_volt\n", "sys/class/hwmon/hwmon3/in0_lcrit_alarm": "1\n"},
			&health.Throttled{Source: "hwmon", UnderVoltage: yes()}},
		{"neither", map[string]string{"sys/class/hwmon/hwmon0/name": "acpitz\n", "sys/devices/platform/soc/soc:other/get_throttled": "1\n"}, nil},
		{"garbled", map[string]string{"sys/devices/platform/soc/soc:firmware/get_throttled": "zz\n"}, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := health.New(health.Config{Root: fakeRoot(t, c.files)}, "pi-001", t.TempDir(), nil, nil).Report()
			if !reflect.DeepEqual(r.Throttled, c.want) {
				got, _ := json.Marshal(r.Throttled)
				want, _ := json.Marshal(c.want)
				t.Fatalf("throttled %s, want %s", got, want)
			}
		})
	}
}

// A value that cannot be read is left out, and said once at debug level,
// however many documents follow.
func TestMissingValuesLeftOut(t *testing.T) {
	logs, log := testlog.New(slog.LevelDebug)
	root := fakeRoot(t, map[string]string{"proc/loadavg": "garbage\n", "proc/meminfo": "MemTotal: 1 kB\n"})
	p := health.New(health.Config{Root: root}, "pi-001", filepath.Join(root, "no-such-dir"), nil, log)
	for range 3 {
		b, _ := json.Marshal(p.Report())
		var doc map[string]any
		json.Unmarshal(b, &doc)
		if len(doc) != 3 || doc["device"] != "pi-001" || doc["at"] == nil || doc["version"] == nil {
			t.Fatalf("document from an empty root: %s", b)
		}
	}
	for _, field := range []string{"uptime_s", "cpu_temp_c", "throttled", "load", "memory", "disk"} {
		if n := logs.Count(`msg="health value unavailable; left out" component=health field=` + field + " "); n != 1 {
			t.Errorf("%s: logged %d times, want once:\n%s", field, n, logs)
		}
	}
	if n := logs.Count("\n"); n != 6 {
		t.Errorf("%d log lines, want 6:\n%s", n, logs)
	}
	if !strings.Contains(logs.String(), `field=load err="proc/loadavg: \"garbage\": want 3 numbers"`) {
		t.Errorf("the garbled file's error is not said:\n%s", logs)
	}
}

// The publisher publishes on the local server at once and then every
// interval, on the subject with the device's name filled in.
func TestPublishes(t *testing.T) {
	srv, err := natsd.New(natsd.Config{Listen: "127.0.0.1:0"}, "pi-001", nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go srv.Run(ctx)
	<-srv.Ready()
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	sub, _ := nc.SubscribeSync("telemetry.pi-001.health")
	nc.Flush()

	cfg := health.Config{Interval: config.Duration(time.Second), Subject: "telemetry.{device}.health", Root: fakeRoot(t, piFiles)}
	p := health.New(cfg, "pi-001", t.TempDir(), internalBus{srv.NewInternal("health")}, nil)
	if p.Subject() != "telemetry.pi-001.health" {
		t.Fatalf("subject %q", p.Subject())
	}
	runCtx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(runCtx) }()
	<-p.Ready()
	var first time.Time
	for i := range 2 {
		m, err := sub.NextMsg(5 * time.Second)
		if err != nil {
			t.Fatalf("document %d: %v", i+1, err)
		}
		if i == 0 {
			first = time.Now()
		}
		var r health.Report
		if err := json.Unmarshal(m.Data, &r); err != nil || r.Device != "pi-001" || r.CPUTempC == nil {
			t.Fatalf("document %s: %v", m.Data, err)
		}
	}
	if d := time.Since(first); d < 500*time.Millisecond {
		t.Errorf("second document %v after the first, want about the 1s interval", d)
	}
	stop()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return")
	}
}

type internalBus struct{ in *natsd.Internal }

func (b internalBus) Publish(subject string, payload []byte) {
	b.in.Publish([]byte(subject), nil, nil, payload)
}

func TestConfig(t *testing.T) {
	d := health.Config{}.WithDefaults()
	if !d.On() || d.Interval.Std() != 30*time.Second || d.Subject != "health" || d.Root != "/" {
		t.Fatalf("defaults: %+v", d)
	}
	if err := d.Validate(); err != nil {
		t.Fatal(err)
	}
	off := false
	if (health.Config{Enabled: &off}).On() {
		t.Fatal("enabled: false is on")
	}
	bad := health.Config{Interval: config.Duration(100 * time.Millisecond), Subject: "telemetry..health"}.WithDefaults()
	var got []string
	for _, e := range config.Flatten(bad.Validate()) {
		got = append(got, e.Error())
	}
	want := []string{`interval: must be at least 1s`, `subject: invalid subject "telemetry..health"`}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("problems %q, want %q", got, want)
	}
}
