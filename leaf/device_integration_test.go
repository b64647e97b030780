package leaf_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	periph "periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpiotest"

	"github.com/canopy-iot/canopy/internal/config"
	"github.com/canopy-iot/canopy/internal/testlog"
	poll "github.com/canopy-iot/canopy/internal/wait"
	"github.com/canopy-iot/canopy/leaf"
	"github.com/canopy-iot/canopy/leaf/gpio"
	"github.com/canopy-iot/canopy/leaf/health"
	"github.com/canopy-iot/canopy/leaf/stream"
)

// The GPIO bridge and the health publisher of a running leaf, seen from
// NATS and MQTT clients, with their messages kept by a stream.
func TestIntegrationDeviceThroughNATSAndMQTT(t *testing.T) {
	root := t.TempDir()
	for name, content := range map[string]string{
		"proc/uptime":                          "120.5 100.0\n",
		"sys/class/thermal/thermal_zone0/temp": "51000\n",
	} {
		os.MkdirAll(filepath.Dir(filepath.Join(root, name)), 0o755)
		os.WriteFile(filepath.Join(root, name), []byte(content), 0o644)
	}
	zero := config.Duration(0)
	cfg := leafWithMQTT(func(c *leaf.Config) {
		c.DataDir = t.TempDir()
		c.Streams = []stream.Config{{Name: "device", Subjects: []string{"hw.gpio.*", "health"}}}
		c.GPIO = gpio.Config{
			Inputs:  []gpio.Input{{Pin: "GPIO17", Pull: "down", Debounce: &zero}},
			Outputs: []gpio.Output{{Pin: "GPIO27"}},
		}
		c.Health = health.Config{Interval: config.Duration(time.Second), Root: root}
	})
	button := &gpiotest.Pin{N: "GPIO17", EdgesChan: make(chan periph.Level)}
	relay := &gpiotest.Pin{N: "GPIO27"}
	logs, log := testlog.New(-4)
	n, err := leaf.New(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	n.UseGPIOPins(func() (func(string) gpio.Pin, error) {
		return func(name string) gpio.Pin {
			switch name {
			case "GPIO17":
				return button
			case "GPIO27":
				return relay
			}
			return nil
		}, nil
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("leaf: %v", err)
		}
	})
	select {
	case <-n.Ready():
	case err := <-done:
		t.Fatalf("leaf: %v\n%s", err, logs)
	}

	// What was published at start (both pins' levels, the first health
	// document) went into the stream: internal publishes reach streams.
	poll.For(t, 5*time.Second, func() error {
		if got := n.StreamStats("device").Msgs; got < 3 {
			return fmt.Errorf("stream holds %d messages, want the 2 levels and a health document", got)
		}
		return nil
	})

	col := newCollector()
	watcher := mqttClient(t, n.MQTT().Addr(), "dashboard", nil)
	subscribe(t, watcher, "hw/gpio/+", 1, col)
	healthDocs := newCollector()
	subscribe(t, watcher, "health", 0, healthDocs)

	// An MQTT command sets the relay; the new level is published.
	sensor := mqttClient(t, n.MQTT().Addr(), "panel", nil)
	publish(t, sensor, "hw/gpio/GPIO27/set", 1, false, "on")
	m := col.next(t)
	var l gpio.Level
	if err := json.Unmarshal([]byte(m.payload), &l); err != nil || m.topic != "hw/gpio/GPIO27" || l.Level != "high" {
		t.Fatalf("after the MQTT command: %+v (%v)", m, err)
	}
	if relay.Read() != periph.High {
		t.Fatal("relay not set")
	}

	// The button's edge reaches MQTT.
	button.EdgesChan <- periph.High
	m = col.next(t)
	if err := json.Unmarshal([]byte(m.payload), &l); err != nil || m.topic != "hw/gpio/GPIO17" || l.Level != "high" {
		t.Fatalf("after the press: %+v (%v)", m, err)
	}

	// A NATS request with a bad payload is refused with the reason.
	nc := natsConn(t, n)
	reply, err := nc.Request("hw.gpio.GPIO27.set", []byte("blink"), 5*time.Second)
	if err != nil || !strings.Contains(string(reply.Data), "not a GPIO level") {
		t.Fatalf("bad command: %v %s", err, reply.Data)
	}
	if relay.Read() != periph.High {
		t.Fatal("a refused command changed the relay")
	}

	// The health document arrives every interval, on MQTT too.
	h := healthDocs.next(t)
	var r health.Report
	if err := json.Unmarshal([]byte(h.payload), &r); err != nil || r.Device != "pi-001" || r.CPUTempC == nil || *r.CPUTempC != 51 || r.Memory != nil {
		t.Fatalf("health document %s: %v", h.payload, err)
	}
	poll.For(t, 5*time.Second, func() error {
		// 3 at start, the relay's and the button's change, more health.
		if got := n.StreamStats("device").Msgs; got < 6 {
			return fmt.Errorf("stream holds %d messages", got)
		}
		return nil
	})
}
