package leaf_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/canopy-iot/canopy/firmware"
	"github.com/canopy-iot/canopy/firmware/agent"
	"github.com/canopy-iot/canopy/hub"
	"github.com/canopy-iot/canopy/internal/config"
	waitfor "github.com/canopy-iot/canopy/internal/wait"
	"github.com/canopy-iot/canopy/leaf"
	"github.com/canopy-iot/canopy/leaf/uplink"
)

// The heartbeat, /metrics and /status tell what firmware the agent
// installed and how the device is.
func TestIntegrationHeartbeatAndMonitorReportFirmwareAndHealth(t *testing.T) {
	h, keys, admin := operatorHub(t)
	ctx := context.Background()
	const device = "pi-hb"
	creds := deviceCreds(t, keys, "t1", device)
	tenant, err := keys.Tenant("t1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.PublishFirmware(ctx, "t1", hub.FirmwareMeta{Name: "sensor-fw", Version: "3.1.0", Platform: "any"}, bytes.NewReader([]byte("firmware image"))); err != nil {
		t.Fatal(err)
	}
	signed, _, err := admin.FirmwareManifest(ctx, "t1", "sensor-fw", "3.1.0", "any")
	if err != nil {
		t.Fatal(err)
	}
	on := true
	n, _, _ := runLeaf(t, leafWithMQTT(func(c *leaf.Config) {
		c.ServerName = ""
		c.Uplink = uplink.Config{URLs: []string{h.LeafNodeURL()}, Credentials: creds}
		c.Firmware = agent.Config{
			Enabled:     &on,
			TrustedKeys: []string{tenant.FirmwareKey},
			Installers:  map[string]agent.InstallerConfig{"sensor-fw": {Path: filepath.Join(t.TempDir(), "fw.bin")}},
		}
		c.Monitor = leaf.MonitorConfig{Listen: "127.0.0.1:0"}
		c.Heartbeat = config.Duration(200 * time.Millisecond) // the test waits for one after the install
	}))
	waitLinked(t, n)
	js, err := jetstream.New(tenantConn(t, h, keys, "t1"))
	if err != nil {
		t.Fatal(err)
	}
	desired, err := js.KeyValue(ctx, firmware.DesiredBucket)
	if err != nil {
		t.Fatal(err)
	}
	doc, _ := json.Marshal(firmware.Desired{Rollout: "r1", Manifest: signed, Install: true})
	if _, err := desired.Put(ctx, device, doc); err != nil {
		t.Fatal(err)
	}

	waitfor.For(t, 30*time.Second, func() error {
		beats, err := admin.Heartbeats(ctx, "t1")
		if err != nil {
			return err
		}
		b := beats[device]
		if len(b.Firmware) != 1 || b.Firmware[0].Name != "sensor-fw" || b.Firmware[0].Version != "3.1.0" || b.Firmware[0].State != string(firmware.StateApplied) {
			return fmt.Errorf("heartbeat firmware %+v", b.Firmware)
		}
		if b.Health == nil {
			return fmt.Errorf("heartbeat without health")
		}
		if runtime.GOOS == "linux" && (b.Health.MemTotal == nil || *b.Health.MemTotal == 0 || b.Health.Load1 == nil) {
			return fmt.Errorf("heartbeat health %+v: want memory and load on Linux", *b.Health)
		}
		return nil
	})

	p, err := scrape(t, n.MonitorURL())
	if err != nil {
		t.Fatal(err)
	}
	if v := p.must(t, "canopy_leaf_firmware_info", "name", "sensor-fw", "version", "3.1.0"); v != 1 {
		t.Errorf("firmware_info %v", v)
	}
	if v := p.must(t, "canopy_leaf_firmware_state", "name", "sensor-fw", "state", "applied"); v != 1 {
		t.Errorf("firmware_state %v", v)
	}
	st := getStatus(t, n.MonitorURL())
	if st.Device != device || st.Link == nil || !st.Link.Up || len(st.Firmware) != 1 || st.Firmware[0].Version != "3.1.0" {
		t.Errorf("/status %+v", st)
	}
}
