package leaf_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/canopy-iot/canopy/firmware"
	"github.com/canopy-iot/canopy/firmware/agent"
	"github.com/canopy-iot/canopy/hub"
	"github.com/canopy-iot/canopy/internal/config"
	waitfor "github.com/canopy-iot/canopy/internal/wait"
	"github.com/canopy-iot/canopy/leaf"
	"github.com/canopy-iot/canopy/leaf/uplink"
)

// The whole firmware path: published on the hub, rolled out to three
// leaves, downloaded, verified and applied by each with the file
// installer, and reported applied to the hub.
func TestFirmwareRolloutToThreeLeaves(t *testing.T) {
	h, keys, admin := operatorHub(t)
	tenant, err := keys.Tenant("t1")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	artifact := make([]byte, 3<<20+12345)
	rand.Read(artifact)
	if _, err := admin.PublishFirmware(ctx, "t1", hub.FirmwareMeta{Name: "sensor-fw", Version: "1.2.0", Platform: "any"}, bytes.NewReader(artifact)); err != nil {
		t.Fatal(err)
	}
	on := true
	var paths []string
	var first *leaf.Node
	for i := 1; i <= 3; i++ {
		device := fmt.Sprintf("pi-%d", i)
		path := filepath.Join(t.TempDir(), "sensor.bin")
		paths = append(paths, path)
		creds := deviceCreds(t, keys, "t1", device)
		n, _, _ := runLeaf(t, leafWithMQTT(func(c *leaf.Config) {
			c.ServerName = ""
			c.Uplink = uplink.Config{URLs: []string{h.LeafNodeURL()}, Credentials: creds}
			c.Firmware = agent.Config{
				Enabled:     &on,
				TrustedKeys: []string{tenant.FirmwareKey},
				Poll:        config.Duration(time.Second),
				Installers:  map[string]agent.InstallerConfig{"sensor-fw": {Type: agent.TypeFile, Path: path, ServeLocal: true}},
			}
		}))
		if first == nil {
			first = n
		}
	}
	signed, _, err := admin.FirmwareManifest(ctx, "t1", "sensor-fw", "1.2.0", "any")
	if err != nil {
		t.Fatal(err)
	}
	r, err := admin.CreateRollout(ctx, "t1", hub.RolloutSpec{Manifest: signed, Target: "all", Percent: 100, Threshold: hub.DefaultRolloutThreshold})
	if err != nil {
		t.Fatal(err)
	}
	waitfor.For(t, 60*time.Second, func() error {
		st, err := admin.FirmwareStatuses(ctx, "t1")
		if err != nil {
			return err
		}
		for i := 1; i <= 3; i++ {
			s := st[fmt.Sprintf("pi-%d", i)]
			if s.Rollout != r.ID || s.State != firmware.StateApplied {
				return fmt.Errorf("pi-%d: %s %d%% %s", i, s.State, s.Progress, s.Reason)
			}
		}
		return nil
	})
	for i, p := range paths {
		got, err := os.ReadFile(p)
		if err != nil || !bytes.Equal(got, artifact) {
			t.Fatalf("pi-%d: installed file differs (%d bytes, err %v)", i+1, len(got), err)
		}
	}
	waitfor.For(t, 30*time.Second, func() error {
		rs, err := admin.Rollouts(ctx, "t1")
		if err != nil {
			return err
		}
		for _, x := range rs {
			if x.ID == r.ID && x.State == hub.RolloutDone {
				return nil
			}
		}
		return fmt.Errorf("rollout %s not done yet", r.ID)
	})

	// An MQTT sensor on the first device fetches the firmware from it:
	// the manifest, verified with the tenant's key, then every chunk.
	sensor := mqttClient(t, first.MQTT().Addr(), "sensor", nil)
	got := newCollector()
	for _, f := range []string{"firmware/sensor-fw/manifest", "firmware/sensor-fw/chunk/+", "firmware/sensor-fw/error"} {
		subscribe(t, sensor, f, 0, got)
	}
	publish(t, sensor, "firmware/sensor-fw/get", 0, false, "manifest")
	mm := got.next(t)
	if mm.topic != "firmware/sensor-fw/manifest" {
		t.Fatalf("sensor got %s: %s", mm.topic, mm.payload)
	}
	m, err := firmware.Verify([]byte(mm.payload), []string{tenant.FirmwareKey})
	if err != nil {
		t.Fatalf("manifest served to the sensor: %v", err)
	}
	var fetched []byte
	for i := range m.Chunks {
		publish(t, sensor, "firmware/sensor-fw/get", 0, false, strconv.Itoa(i))
		c := got.next(t)
		if c.topic != fmt.Sprintf("firmware/sensor-fw/chunk/%d", i) {
			t.Fatalf("chunk %d: got %s: %.80s", i, c.topic, c.payload)
		}
		fetched = append(fetched, c.payload...)
	}
	if !bytes.Equal(fetched, artifact) {
		t.Fatalf("sensor assembled %d bytes, not the artifact", len(fetched))
	}
	publish(t, sensor, "firmware/sensor-fw/get", 0, false, "999")
	if e := got.next(t); e.topic != "firmware/sensor-fw/error" {
		t.Fatalf("bad chunk index answered on %s", e.topic)
	}
}

// A wave rollout to ten real leaves at 20%: two get the firmware first;
// their installs fail (their hook exits 1), which is above the 10%
// threshold, so the rollout halts and no other leaf ever gets it.
func TestFirmwareWaveRolloutHaltsOnFailures(t *testing.T) {
	h, keys, admin := operatorHub(t)
	tenant, err := keys.Tenant("t1")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	artifact := make([]byte, 256<<10)
	rand.Read(artifact)
	if _, err := admin.PublishFirmware(ctx, "t1", hub.FirmwareMeta{Name: "sensor-fw", Version: "2.0.0", Platform: "any"}, bytes.NewReader(artifact)); err != nil {
		t.Fatal(err)
	}
	on := true
	for i := 1; i <= 10; i++ {
		creds := deviceCreds(t, keys, "t1", fmt.Sprintf("pi-%02d", i))
		path := filepath.Join(t.TempDir(), "sensor.bin")
		runLeaf(t, leafWithMQTT(func(c *leaf.Config) {
			c.ServerName = ""
			c.Uplink = uplink.Config{URLs: []string{h.LeafNodeURL()}, Credentials: creds}
			c.Firmware = agent.Config{
				Enabled:     &on,
				TrustedKeys: []string{tenant.FirmwareKey},
				Poll:        config.Duration(time.Second),
				Installers:  map[string]agent.InstallerConfig{"sensor-fw": {Type: agent.TypeFile, Path: path, Hook: []string{"false"}}},
			}
		}))
	}
	signed, _, err := admin.FirmwareManifest(ctx, "t1", "sensor-fw", "2.0.0", "any")
	if err != nil {
		t.Fatal(err)
	}
	r, err := admin.CreateRollout(ctx, "t1", hub.RolloutSpec{Manifest: signed, Target: "all", Percent: 20, Threshold: hub.DefaultRolloutThreshold})
	if err != nil {
		t.Fatal(err)
	}
	var halted hub.Rollout
	waitfor.For(t, 60*time.Second, func() error {
		rs, err := admin.Rollouts(ctx, "t1")
		if err != nil {
			return err
		}
		for _, x := range rs {
			if x.ID == r.ID && x.State == hub.RolloutHalted {
				halted = x
				return nil
			}
		}
		return fmt.Errorf("rollout %s not halted yet", r.ID)
	})
	if len(halted.Assigned) != 2 || halted.Reason == "" {
		t.Fatalf("halted rollout assigned %v (reason %q), want exactly the first wave of 2", halted.Assigned, halted.Reason)
	}
	t.Logf("halted: %s", halted.Reason)
	// Both first-wave devices end failed; nobody else hears of it.
	waitfor.For(t, 30*time.Second, func() error {
		st, err := admin.FirmwareStatuses(ctx, "t1")
		if err != nil {
			return err
		}
		failed := 0
		for device, s := range st {
			if s.Rollout != r.ID {
				continue
			}
			if !slices.Contains(halted.Assigned, device) {
				t.Fatalf("%s, outside the first wave, reports %s", device, s.State)
			}
			if s.State == firmware.StateFailed {
				failed++
			}
		}
		if failed != 2 {
			return fmt.Errorf("%d of the first wave failed so far", failed)
		}
		return nil
	})
	rs, err := admin.Rollouts(ctx, "t1")
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range rs {
		if x.ID == r.ID && (x.State != hub.RolloutHalted || len(x.Assigned) != 2) {
			t.Fatalf("rollout now %s with %v assigned", x.State, x.Assigned)
		}
	}
}
