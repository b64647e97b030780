package leaf_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/canopy-iot/canopy/firmware"
	"github.com/canopy-iot/canopy/firmware/agent"
	"github.com/canopy-iot/canopy/hub"
	"github.com/canopy-iot/canopy/internal/config"
	"github.com/canopy-iot/canopy/internal/faultproxy"
	waitfor "github.com/canopy-iot/canopy/internal/wait"
	"github.com/canopy-iot/canopy/leaf"
	"github.com/canopy-iot/canopy/leaf/uplink"
)

// A 20 MB artifact reaches a real leaf over a link that is cut once, at
// about half of it: the download resumes after the reconnection without
// fetching again what it had, and the artifact is applied.
func TestIntegrationFirmwareResumesAfterLinkCut(t *testing.T) {
	if testing.Short() {
		t.Skip("20 MB over a throttled link")
	}
	h, keys, admin := operatorHub(t)
	ctx := context.Background()
	const device, size = "pi-fw", 20 << 20
	creds := deviceCreds(t, keys, "t1", device)
	tenant, err := keys.Tenant("t1")
	if err != nil {
		t.Fatal(err)
	}
	data := make([]byte, size)
	rand.Read(data)
	if _, err := admin.PublishFirmware(ctx, "t1", hub.FirmwareMeta{Name: "sensor-fw", Version: "2.0.0", Platform: "any"}, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	signed, _, err := admin.FirmwareManifest(ctx, "t1", "sensor-fw", "2.0.0", "any")
	if err != nil {
		t.Fatal(err)
	}

	hubAddr, err := url.Parse(h.LeafNodeURL())
	if err != nil {
		t.Fatal(err)
	}
	proxy := faultproxy.New(t, hubAddr.Host)
	path := filepath.Join(t.TempDir(), "sensor", "fw.bin")
	on := true
	n, logs, _ := runLeaf(t, leafWithMQTT(func(c *leaf.Config) {
		c.ServerName = ""
		c.Uplink = uplink.Config{URLs: []string{"nats://" + proxy.Addr()}, Credentials: creds}
		c.Firmware = agent.Config{
			Enabled:     &on,
			TrustedKeys: []string{tenant.FirmwareKey},
			// Slow enough that the cut lands mid-download.
			RateLimit:  config.Size(4 << 20),
			Installers: map[string]agent.InstallerConfig{"sensor-fw": {Path: path}},
		}
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
	status, err := js.KeyValue(ctx, firmware.StatusBucket)
	if err != nil {
		t.Fatal(err)
	}
	doc, _ := json.Marshal(firmware.Desired{Rollout: "r1", Manifest: signed, Install: true})
	if _, err := desired.Put(ctx, device, doc); err != nil {
		t.Fatal(err)
	}
	current := func() (firmware.Status, error) {
		var st firmware.Status
		e, err := status.Get(ctx, device)
		if err != nil {
			return st, err
		}
		return st, json.Unmarshal(e.Value(), &st)
	}

	// The hub's view decides when to cut: half of it reported.
	waitfor.For(t, 60*time.Second, func() error {
		st, err := current()
		if err != nil {
			return err
		}
		if st.State != firmware.StateDownloading || st.Progress < 50 {
			return fmt.Errorf("status %s %d%%", st.State, st.Progress)
		}
		return nil
	})
	before := n.Uplink().Stats().Reconnects
	// In the middle of the next chunk's reply: that request is lost.
	proxy.CutAfter(50 << 10)
	st, _ := current()
	waitfor.For(t, 10*time.Second, func() error {
		if n.Uplink().Stats().Reconnects == before {
			return errors.New("the link was not cut and restored")
		}
		return nil
	})
	t.Logf("cut at about %d%% (%d bytes fetched)", st.Progress, st.Bytes)
	if st.Progress >= 90 {
		t.Fatalf("the cut came too late to prove anything: %d%%", st.Progress)
	}

	waitfor.For(t, 120*time.Second, func() error {
		st, err = current()
		if err != nil {
			return err
		}
		if st.State != firmware.StateApplied {
			return fmt.Errorf("status %s %d%% %s", st.State, st.Progress, st.Reason)
		}
		return nil
	})
	if !strings.Contains(logs.String(), "firmware download interrupted") {
		t.Errorf("the download went on as if the link had not been cut:\n%s", logs)
	}
	got, err := os.ReadFile(path)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("installed artifact: %d bytes (%v), want the %d published", len(got), err, len(data))
	}
	t.Logf("fetched %d bytes for %d (%.3fx)", st.Bytes, size, float64(st.Bytes)/size)
	if st.Bytes < size || float64(st.Bytes) >= 1.2*size {
		t.Errorf("status says %d bytes fetched for %d: want at least all of it and less than 1.2x\n%s", st.Bytes, size, logs)
	}
}
