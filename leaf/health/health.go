package health

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/canopy-iot/canopy/internal/version"
)

// Bus takes the documents: the leaf's local NATS server (and the streams
// that keep the subject).
type Bus interface {
	Publish(subject string, payload []byte)
}

// Report is the health document, published as JSON. A value that could
// not be read is left out.
type Report struct {
	// Device is the leaf's server_name.
	Device string `json:"device"`
	// Version is the leaf's version.
	Version string `json:"version"`
	// At is when the values were read, RFC 3339 with nanoseconds, UTC.
	At string `json:"at"`
	// UptimeSeconds is the time since the system booted (/proc/uptime).
	UptimeSeconds *float64 `json:"uptime_s,omitempty"`
	// CPUTempC is the SoC temperature in °C
	// (/sys/class/thermal/thermal_zone0/temp).
	CPUTempC *float64 `json:"cpu_temp_c,omitempty"`
	// Throttled holds the Raspberry Pi firmware's flags.
	Throttled *Throttled `json:"throttled,omitempty"`
	// Load holds the load averages (/proc/loadavg).
	Load *Load `json:"load,omitempty"`
	// Memory is from /proc/meminfo.
	Memory *Memory `json:"memory,omitempty"`
	// Disk is the file system of the data directory.
	Disk *Disk `json:"disk,omitempty"`
}

// Throttled holds the Raspberry Pi firmware's under-voltage and
// throttling flags. From the firmware (source "firmware") every flag is
// present; from the hwmon driver (source "hwmon") only under_voltage.
type Throttled struct {
	Source string `json:"source"`
	// Raw is the firmware's bit field, e.g. "0x50000".
	Raw string `json:"raw,omitempty"`
	// Now.
	UnderVoltage  *bool `json:"under_voltage,omitempty"`   // bit 0
	FreqCapped    *bool `json:"freq_capped,omitempty"`     // bit 1
	Throttled     *bool `json:"throttled,omitempty"`       // bit 2
	SoftTempLimit *bool `json:"soft_temp_limit,omitempty"` // bit 3
	// Since boot.
	UnderVoltageOccurred  *bool `json:"under_voltage_occurred,omitempty"`   // bit 16
	FreqCappedOccurred    *bool `json:"freq_capped_occurred,omitempty"`     // bit 17
	ThrottledOccurred     *bool `json:"throttled_occurred,omitempty"`       // bit 18
	SoftTempLimitOccurred *bool `json:"soft_temp_limit_occurred,omitempty"` // bit 19
}

// Sources of Throttled.
const (
	sourceFirmware = "firmware"
	sourceHwmon    = "hwmon"
)

// Load averages over 1, 5 and 15 minutes.
type Load struct {
	Avg1  float64 `json:"1m"`
	Avg5  float64 `json:"5m"`
	Avg15 float64 `json:"15m"`
}

// Memory in bytes.
type Memory struct {
	TotalBytes     uint64 `json:"total_bytes"`
	AvailableBytes uint64 `json:"available_bytes"`
}

// Disk is the space of the file system holding Path.
type Disk struct {
	Path       string `json:"path"`
	FreeBytes  uint64 `json:"free_bytes"` // available to the leaf (not root's reserve)
	TotalBytes uint64 `json:"total_bytes"`
}

// Publisher publishes the health document every interval.
type Publisher struct {
	cfg     Config
	device  string
	subject string
	dataDir string
	bus     Bus
	log     *slog.Logger
	ready   chan struct{} // closed by Run after the first document

	mu            sync.Mutex      // guards the fields below (Report may be called concurrently)
	searched      bool            // for the files below, once: they come with the kernel
	throttledFile string          // the firmware's get_throttled, relative to the root; "" if none
	voltFile      string          // the rpi_volt hwmon's in0_lcrit_alarm; "" if none
	failed        map[string]bool // values whose failure was logged
}

// New returns a publisher for cfg (after defaults) of the device named
// device, whose data directory is dataDir. A nil log discards logs.
func New(cfg Config, device, dataDir string, bus Bus, log *slog.Logger) *Publisher {
	cfg = cfg.WithDefaults()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Publisher{
		cfg: cfg, device: device, subject: cfg.SubjectFor(device), dataDir: dataDir, bus: bus,
		log: log.With("component", "health"), failed: map[string]bool{}, ready: make(chan struct{}),
	}
}

// Subject is where the documents are published.
func (p *Publisher) Subject() string { return p.subject }

// Ready is closed once the first document is published.
func (p *Publisher) Ready() <-chan struct{} { return p.ready }

// Run publishes a document at once and then every interval until ctx
// ends.
func (p *Publisher) Run(ctx context.Context) error {
	t := time.NewTicker(p.cfg.Interval.Std())
	defer t.Stop()
	for first := true; ; first = false {
		b, _ := json.Marshal(p.Report())
		p.bus.Publish(p.subject, b)
		if first {
			close(p.ready)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Report reads the values now.
func (p *Publisher) Report() Report {
	p.mu.Lock()
	defer p.mu.Unlock()
	r := Report{Device: p.device, Version: version.Version, At: time.Now().UTC().Format(time.RFC3339Nano)}
	if v, err := p.readFloats(fileUptime, 1); p.ok("uptime_s", err) {
		r.UptimeSeconds = &v[0]
	}
	if v, err := p.readFloats(fileThermal, 1); p.ok("cpu_temp_c", err) {
		c := v[0] / 1000 // millidegrees
		r.CPUTempC = &c
	}
	if v, err := p.readThrottled(); p.ok("throttled", err) {
		r.Throttled = v
	}
	if v, err := p.readFloats(fileLoadavg, 3); p.ok("load", err) {
		r.Load = &Load{Avg1: v[0], Avg5: v[1], Avg15: v[2]}
	}
	if v, err := p.readMemory(); p.ok("memory", err) {
		r.Memory = v
	}
	if v, err := statDisk(p.dataDir); p.ok("disk", err) {
		r.Disk = v
	}
	return r
}

// ok reports whether err is nil; the first failure of each value is
// logged at debug level (a device without the file is no problem).
func (p *Publisher) ok(field string, err error) bool {
	if err == nil {
		return true
	}
	if !p.failed[field] {
		p.failed[field] = true
		p.log.Debug("health value unavailable; left out", "field", field, "err", err)
	}
	return false
}

func (p *Publisher) path(rel string) string { return filepath.Join(p.cfg.Root, rel) }

// readFirstLine reads the first line of a small procfs or sysfs file.
func (p *Publisher) readFirstLine(rel string) (string, error) {
	b, err := os.ReadFile(p.path(rel))
	if err != nil {
		return "", err
	}
	line, _, _ := bytes.Cut(b, []byte("\n"))
	return strings.TrimSpace(string(line)), nil
}

// readFloats reads the first n numbers of the first line of a file.
func (p *Publisher) readFloats(rel string, n int) ([]float64, error) {
	line, err := p.readFirstLine(rel)
	if err != nil {
		return nil, err
	}
	f := strings.Fields(line)
	if len(f) < n {
		return nil, fmt.Errorf("%s: %q: want %d numbers", rel, line, n)
	}
	v := make([]float64, n)
	for i := range v {
		if v[i], err = strconv.ParseFloat(f[i], 64); err != nil {
			return nil, fmt.Errorf("%s: %w", rel, err)
		}
	}
	return v, nil
}

func (p *Publisher) readMemory() (*Memory, error) {
	b, err := os.ReadFile(p.path(fileMeminfo))
	if err != nil {
		return nil, err
	}
	// Lines such as "MemTotal:        3884360 kB".
	var v [2]uint64
	for i, key := range []string{"MemTotal:", "MemAvailable:"} {
		_, rest, ok := strings.Cut(string(b), "\n"+key)
		if !ok {
			_, rest, ok = strings.Cut(string(b), key) // the first line
		}
		line, _, _ := strings.Cut(rest, "\n")
		f := strings.Fields(line)
		if !ok || len(f) < 2 || f[1] != "kB" {
			return nil, fmt.Errorf("%s: no %s in kB", fileMeminfo, key)
		}
		if v[i], err = strconv.ParseUint(f[0], 10, 64); err != nil {
			return nil, fmt.Errorf("%s: %s %w", fileMeminfo, key, err)
		}
	}
	return &Memory{TotalBytes: v[0] * 1024, AvailableBytes: v[1] * 1024}, nil
}

// readThrottled reads the firmware's flags from its sysfs file
// (Raspberry Pi OS kernels), else the under-voltage alarm of the
// raspberrypi-hwmon driver (mainline kernels, e.g. Ubuntu's).
func (p *Publisher) readThrottled() (*Throttled, error) {
	if !p.searched {
		p.searched = true
		p.throttledFile = p.findThrottled()
		p.voltFile = p.findHwmon()
	}
	if p.throttledFile != "" {
		line, err := p.readFirstLine(p.throttledFile)
		if err != nil {
			return nil, err
		}
		v, err := strconv.ParseUint(strings.TrimPrefix(line, "0x"), 16, 32)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p.throttledFile, err)
		}
		return decodeThrottled(uint32(v)), nil
	}
	if p.voltFile != "" {
		line, err := p.readFirstLine(p.voltFile)
		if err != nil {
			return nil, err
		}
		return &Throttled{Source: sourceHwmon, UnderVoltage: flag(line == "1")}, nil
	}
	return nil, errNoThrottled
}

var errNoThrottled = errors.New("no get_throttled file and no rpi_volt hwmon (not a Raspberry Pi)")

// findThrottled returns the firmware's get_throttled file relative to
// the root, "" when there is none. Its directory is named after the bus
// holding the firmware node: soc/soc:firmware up to the Raspberry Pi 4,
// soc@107c000000/soc@107c000000:firmware on the Pi 5.
func (p *Publisher) findThrottled() string {
	entries, _ := os.ReadDir(p.path(dirPlatform))
	for _, e := range entries {
		f := filepath.Join(dirPlatform, e.Name(), e.Name()+":firmware", "get_throttled")
		if fileExists(p.path(f)) {
			return f
		}
	}
	return ""
}

// findHwmon returns the under-voltage alarm of the hwmon device named
// rpi_volt, relative to the root; "" when there is none.
func (p *Publisher) findHwmon() string {
	entries, _ := os.ReadDir(p.path(dirHwmon))
	for _, e := range entries {
		dir := filepath.Join(dirHwmon, e.Name())
		if name, err := p.readFirstLine(filepath.Join(dir, "name")); err == nil && name == hwmonVolt {
			if f := filepath.Join(dir, "in0_lcrit_alarm"); fileExists(p.path(f)) {
				return f
			}
		}
	}
	return ""
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

func flag(v bool) *bool { return &v }

func decodeThrottled(v uint32) *Throttled {
	bit := func(n uint) *bool { return flag(v&(1<<n) != 0) }
	return &Throttled{
		Source:                sourceFirmware,
		Raw:                   "0x" + strconv.FormatUint(uint64(v), 16),
		UnderVoltage:          bit(0),
		FreqCapped:            bit(1),
		Throttled:             bit(2),
		SoftTempLimit:         bit(3),
		UnderVoltageOccurred:  bit(16),
		FreqCappedOccurred:    bit(17),
		ThrottledOccurred:     bit(18),
		SoftTempLimitOccurred: bit(19),
	}
}
