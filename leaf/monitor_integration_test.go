package leaf_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/canopy-iot/canopy/hub"
	"github.com/canopy-iot/canopy/internal/config"
	"github.com/canopy-iot/canopy/internal/faultproxy"
	"github.com/canopy-iot/canopy/internal/hubtest"
	"github.com/canopy-iot/canopy/internal/promtext"
	waitfor "github.com/canopy-iot/canopy/internal/wait"
	"github.com/canopy-iot/canopy/leaf"
	"github.com/canopy-iot/canopy/leaf/stream"
	"github.com/canopy-iot/canopy/leaf/uplink"
)

// page is one scrape of /metrics, as Prometheus parsed it.
type page map[string]*dto.MetricFamily

// scrape fetches and parses /metrics.
func scrape(t *testing.T, base string) (page, error) {
	t.Helper()
	res, err := http.Get(base + "/metrics")
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK || res.Header.Get("Content-Type") != promtext.ContentType {
		t.Fatalf("GET /metrics: %s, Content-Type %q", res.Status, res.Header.Get("Content-Type"))
	}
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(res.Body)
	if err != nil {
		t.Fatalf("Prometheus cannot parse /metrics: %v", err)
	}
	return page(fams), nil
}

// value is the sample of name with exactly these labels (name, value
// pairs); ok is false when there is none.
func (p page) value(name string, labels ...string) (float64, bool) {
	f := p[name]
	if f == nil {
		return 0, false
	}
	for _, m := range f.Metric {
		if len(m.Label) != len(labels)/2 {
			continue
		}
		match := true
		for i := 0; i < len(labels); i += 2 {
			found := false
			for _, l := range m.Label {
				if l.GetName() == labels[i] && l.GetValue() == labels[i+1] {
					found = true
				}
			}
			match = match && found
		}
		if match {
			switch f.GetType() {
			case dto.MetricType_COUNTER:
				return m.GetCounter().GetValue(), true
			default:
				return m.GetGauge().GetValue(), true
			}
		}
	}
	return 0, false
}

// must is value, failing the test without the sample.
func (p page) must(t *testing.T, name string, labels ...string) float64 {
	t.Helper()
	v, ok := p.value(name, labels...)
	if !ok {
		t.Fatalf("no sample %s%v on /metrics", name, labels)
	}
	return v
}

func getStatus(t *testing.T, base string) leaf.Status {
	t.Helper()
	res, err := http.Get(base + "/status")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var st leaf.Status
	b, _ := io.ReadAll(res.Body)
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatalf("GET /status: %s: %v\n%s", res.Status, err, b)
	}
	return st
}

func TestIntegrationMonitorMetricsFollowTrafficAndLink(t *testing.T) {
	// The hub does not advertise its leafnode URL: a leaf that learnt it
	// would go round the cut proxy.
	h, keys, _ := hubtest.OperatorWith(t, func(c *hub.Config) { c.LeafNodes.NoAdvertise = true }, "t1")
	proxy := faultproxy.New(t, strings.TrimPrefix(h.LeafNodeURL(), "nats://"))
	creds := deviceCreds(t, keys, "t1", "pi-001")
	n, _, _ := runLeaf(t, leafWithMQTT(func(c *leaf.Config) {
		c.ServerName = ""
		c.Uplink = uplink.Config{URLs: []string{"nats-leaf://" + proxy.Addr()}, Credentials: creds,
			ReconnectMin: config.Duration(20 * time.Millisecond), ReconnectMax: config.Duration(100 * time.Millisecond)}
		c.Streams = []stream.Config{{Name: "sensors", Subjects: []string{"sensors.>"}}}
		c.Monitor = leaf.MonitorConfig{Listen: "127.0.0.1:0"}
	}))
	base := n.MonitorURL()
	if base == "" {
		t.Fatal("the monitor does not listen")
	}
	// linkState waits until the link, the backlog and the scrape agree.
	linkState := func(up float64, backlog func(float64) bool, what string) page {
		t.Helper()
		var last page
		waitfor.For(t, 20*time.Second, func() error {
			p, err := scrape(t, base)
			if err != nil {
				return err
			}
			last = p
			u := p.must(t, "canopy_leaf_uplink_up")
			b := p.must(t, "canopy_leaf_stream_backlog_messages", "stream", "sensors")
			if u != up || !backlog(b) {
				return fmt.Errorf("uplink_up %v, backlog %v: want %s", u, b, what)
			}
			return nil
		})
		return last
	}
	linkState(1, func(b float64) bool { return b == 0 }, "up, empty")

	nc := natsConn(t, n)
	sensor := mqttClient(t, n.MQTT().Addr(), "sensor-1", nil)
	before, err := scrape(t, base)
	if err != nil {
		t.Fatal(err)
	}
	if v := before.must(t, "canopy_leaf_connections", "protocol", "mqtt"); v != 1 {
		t.Errorf("MQTT connections %v, want 1", v)
	}
	if v := before.must(t, "canopy_leaf_connections", "protocol", "nats"); v != 1 {
		t.Errorf("NATS connections %v, want 1", v)
	}
	const natsMsgs, mqttMsgs = 5, 3
	for range natsMsgs {
		nc.Publish("sensors.nats", []byte("0123456789"))
	}
	nc.Flush()
	for range mqttMsgs {
		publish(t, sensor, "sensors/mqtt", 1, false, "abcd")
	}
	delta := func(p page, name, proto string) float64 {
		return p.must(t, name, "protocol", proto) - before.must(t, name, "protocol", proto)
	}
	waitfor.For(t, 10*time.Second, func() error {
		p, err := scrape(t, base)
		if err != nil {
			return err
		}
		got := [4]float64{
			delta(p, "canopy_leaf_messages_in_total", "nats"), delta(p, "canopy_leaf_bytes_in_total", "nats"),
			delta(p, "canopy_leaf_messages_in_total", "mqtt"), delta(p, "canopy_leaf_bytes_in_total", "mqtt"),
		}
		if want := [4]float64{natsMsgs, natsMsgs * 10, mqttMsgs, mqttMsgs * 4}; got != want {
			return fmt.Errorf("in since the first scrape (nats msgs, bytes, mqtt msgs, bytes): %v, want %v", got, want)
		}
		return nil
	})
	p := linkState(1, func(b float64) bool { return b == 0 }, "up, everything at the hub")
	if v := p.must(t, "canopy_leaf_stream_acked_sequence", "stream", "sensors"); v != natsMsgs+mqttMsgs {
		t.Errorf("acked sequence %v, want %d", v, natsMsgs+mqttMsgs)
	}
	if f := p["canopy_leaf_uplink_last_error_info"]; f != nil {
		t.Errorf("a last error while the link never failed: %v", f)
	}

	// Cut: what is published waits on the device, and both endpoints say
	// so.
	proxy.SetDown(true)
	linkState(0, func(float64) bool { return true }, "down")
	const cut = 20
	for i := range cut {
		nc.Publish(fmt.Sprintf("sensors.cut.%d", i), []byte("while down"))
	}
	nc.Flush()
	p = linkState(0, func(b float64) bool { return b >= cut }, fmt.Sprintf("down, backlog at least %d", cut))
	waitfor.For(t, 10*time.Second, func() error {
		p, err := scrape(t, base)
		if err != nil {
			return err
		}
		if p["canopy_leaf_uplink_last_error_info"] == nil {
			return fmt.Errorf("no last error after the link was cut")
		}
		return nil
	})
	if v := p.must(t, "canopy_leaf_stream_oldest_age_seconds", "stream", "sensors"); v <= 0 {
		t.Errorf("oldest age %v with a backlog", v)
	}
	st := getStatus(t, base)
	if st.Link == nil || st.Link.Up || len(st.Streams) != 1 || st.Streams[0].Msgs < cut || st.Device != "pi-001" {
		t.Fatalf("/status while down: %+v", st)
	}

	// Restored: the backlog drains.
	proxy.SetDown(false)
	p = linkState(1, func(b float64) bool { return b == 0 }, "up again, drained")
	if v := p.must(t, "canopy_leaf_uplink_reconnects_total"); v < 1 {
		t.Errorf("reconnects %v after a cut", v)
	}
	if v := p.must(t, "canopy_leaf_messages_in_total", "protocol", "nats") - before.must(t, "canopy_leaf_messages_in_total", "protocol", "nats"); v != natsMsgs+cut {
		t.Errorf("NATS messages in %v, want %d", v, natsMsgs+cut)
	}
	if v := p.must(t, "canopy_leaf_uplink_messages_out_total"); v < natsMsgs+mqttMsgs+cut {
		t.Errorf("uplink messages out %v, want at least %d", v, natsMsgs+mqttMsgs+cut)
	}
	if v := p.must(t, "canopy_leaf_store_file_bytes"); v <= 0 {
		t.Errorf("store file %v bytes", v)
	}
	if v := p.must(t, "canopy_leaf_goroutines"); v <= 0 {
		t.Errorf("%v goroutines", v)
	}
}

func TestIntegrationMonitorCountsDeliveries(t *testing.T) {
	n, _, _ := runLeaf(t, leafWithMQTT(func(c *leaf.Config) {
		c.Monitor = leaf.MonitorConfig{Listen: "127.0.0.1:0"}
	}))
	base := n.MonitorURL()
	nc := natsConn(t, n)
	sub, err := nc.SubscribeSync("room.>")
	if err != nil {
		t.Fatal(err)
	}
	nc.Flush()
	listener := mqttClient(t, n.MQTT().Addr(), "listener", nil)
	got := newCollector()
	subscribe(t, listener, "room/#", 0, got)
	sensor := mqttClient(t, n.MQTT().Addr(), "sensor", nil)

	publish(t, sensor, "room/temp", 0, true, "21.5")
	got.next(t)
	if _, err := sub.NextMsg(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	waitfor.For(t, 5*time.Second, func() error {
		p, err := scrape(t, base)
		if err != nil {
			return err
		}
		got := [4]float64{
			p.must(t, "canopy_leaf_messages_out_total", "protocol", "nats"), p.must(t, "canopy_leaf_messages_out_total", "protocol", "mqtt"),
			p.must(t, "canopy_leaf_bytes_out_total", "protocol", "mqtt"), p.must(t, "canopy_leaf_mqtt_retained_messages"),
		}
		if want := [4]float64{1, 1, 4, 1}; got != want {
			return fmt.Errorf("nats out msgs, mqtt out msgs, bytes, retained: %v, want %v", got, want)
		}
		// The bridge's headers (the MQTT QoS) count with the payload.
		if b := p.must(t, "canopy_leaf_bytes_out_total", "protocol", "nats"); b < 4 {
			return fmt.Errorf("nats out bytes %v, want at least 4", b)
		}
		return nil
	})
	// Without an uplink there is no link to report.
	p, err := scrape(t, base)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := p.value("canopy_leaf_uplink_up"); ok {
		t.Error("uplink_up without an uplink")
	}
	if !strings.HasPrefix(n.MonitorURL(), "http://127.0.0.1:") {
		t.Errorf("monitor URL %q", n.MonitorURL())
	}
}

func TestMonitorOffAndBusyPort(t *testing.T) {
	off, _, _ := runLeaf(t, leafWithMQTT(func(c *leaf.Config) { c.Monitor.Listen = leaf.MonitorOff }))
	if u := off.MonitorURL(); u != "" {
		t.Fatalf("monitor off, yet at %s", u)
	}
	// A port another program holds costs the metrics, not the leaf.
	first, _, _ := runLeaf(t, leafWithMQTT(func(c *leaf.Config) { c.Monitor.Listen = "127.0.0.1:0" }))
	busy := strings.TrimPrefix(first.MonitorURL(), "http://")
	second, logs, _ := runLeaf(t, leafWithMQTT(func(c *leaf.Config) { c.Monitor.Listen = busy }))
	if second.MonitorURL() != "" || !strings.Contains(logs.String(), "monitor not started") {
		t.Fatalf("second monitor on a busy port: URL %q, logs:\n%s", second.MonitorURL(), logs)
	}
}

func TestMonitorConfig(t *testing.T) {
	for listen, ok := range map[string]bool{"": true, "off": true, "0.0.0.0:9100": true, "[::1]:8223": true, "8223": false, "localhost:99999": false} {
		cfg := leaf.Config{ServerName: "pi", Monitor: leaf.MonitorConfig{Listen: listen}}.WithDefaults()
		err := cfg.Validate()
		if (err == nil) != ok {
			t.Errorf("monitor.listen %q: %v", listen, err)
		}
		if err != nil && !strings.Contains(err.Error(), "monitor.listen") {
			t.Errorf("monitor.listen %q: error does not name the setting: %v", listen, err)
		}
	}
	if got := (leaf.Config{}).WithDefaults().Monitor.Listen; got != leaf.DefaultMonitorListen {
		t.Errorf("default monitor.listen %q", got)
	}
	for listen, want := range map[string]string{"": "http://127.0.0.1:8223", "0.0.0.0:9100": "http://127.0.0.1:9100", "[::]:9100": "http://[::1]:9100", "10.0.0.5:1": "http://10.0.0.5:1"} {
		if got, err := leaf.MonitorClientURL(leaf.MonitorConfig{Listen: listen}); err != nil || got != want {
			t.Errorf("client URL of %q: %q, %v; want %q", listen, got, err, want)
		}
	}
	for _, listen := range []string{"off", "127.0.0.1:0"} {
		if got, err := leaf.MonitorClientURL(leaf.MonitorConfig{Listen: listen}); err == nil {
			t.Errorf("client URL of %q: %q, want an error", listen, got)
		}
	}
}
