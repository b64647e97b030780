package leaf_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
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
	for i := 1; i <= 3; i++ {
		device := fmt.Sprintf("pi-%d", i)
		path := filepath.Join(t.TempDir(), "sensor.bin")
		paths = append(paths, path)
		creds := deviceCreds(t, keys, "t1", device)
		runLeaf(t, leafWithMQTT(func(c *leaf.Config) {
			c.ServerName = ""
			c.Uplink = uplink.Config{URLs: []string{h.LeafNodeURL()}, Credentials: creds}
			c.Firmware = agent.Config{
				Enabled:     &on,
				TrustedKeys: []string{tenant.FirmwareKey},
				Poll:        config.Duration(time.Second),
				Installers:  map[string]agent.InstallerConfig{"sensor-fw": {Type: agent.TypeFile, Path: path}},
			}
		}))
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
}
