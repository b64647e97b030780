package hubapp

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/spf13/cobra"

	"github.com/canopy-iot/canopy/appliance"
	"github.com/canopy-iot/canopy/hub"
	"github.com/canopy-iot/canopy/hub/fleet"
	"github.com/canopy-iot/canopy/internal/heartbeat"
	"github.com/canopy-iot/canopy/internal/hubtest"
	"github.com/canopy-iot/canopy/internal/wait"
)

func TestIntegrationStatus(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "keys")
	keys, err := fleet.Init(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg := hubtest.OperatorConfig(t, keys)
	cfg.Dashboard.Listen = "127.0.0.1:0"
	h := hubtest.Run(t, cfg)
	admin := hub.NewAdmin(h.ClientURL(), nil, keys)
	hubtest.AddTenant(t, admin, keys, "acme", fleet.DefaultLimits())
	ctx := context.Background()
	var creds []byte
	for _, d := range []string{"pi-0", "pi-1", "pi-2"} {
		if creds, err = keys.AddDevice("acme", d); err != nil {
			t.Fatal(err)
		}
	}
	meta := hub.FirmwareMeta{Name: "sensor-fw", Version: "1.0.0", Platform: "linux/arm64", ChunkSize: 4096}
	if _, err := admin.PublishFirmware(ctx, "acme", meta, bytes.NewReader(bytes.Repeat([]byte("fw"), 5000))); err != nil {
		t.Fatal(err)
	}
	signed, _, err := admin.FirmwareManifest(ctx, "acme", "sensor-fw", "1.0.0", "linux/arm64")
	if err != nil {
		t.Fatal(err)
	}
	r, err := admin.CreateRollout(ctx, "acme", hub.RolloutSpec{Manifest: signed, Target: "all", Percent: 100, Threshold: 100})
	if err != nil {
		t.Fatal(err)
	}

	// pi-2 reports, with a backlog.
	credsFile := filepath.Join(t.TempDir(), "pi-2.creds")
	os.WriteFile(credsFile, creds, 0o600)
	nc, err := nats.Connect(h.ClientURL(), nats.UserCredentials(credsFile), nats.CustomInboxPrefix("_INBOX.pi-2"))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	now := time.Now()
	doc, _ := json.Marshal(heartbeat.Document{Device: "pi-2", Sent: now, Started: now, Interval: time.Minute,
		Streams: []heartbeat.Stream{{Name: "telemetry", Msgs: 7, Bytes: 2048}}})
	if _, err := nc.Request("$JS.canopy.API.$KV.devices.pi-2", doc, 5*time.Second); err != nil {
		t.Fatal(err)
	}

	// The configuration names the console's address as the running hub
	// bound it.
	loaded := cfg.WithDefaults()
	loaded.Dashboard.Listen = strings.TrimPrefix(h.DashboardURL(), "http://")
	run := func(args ...string) (string, error) {
		var out, errOut bytes.Buffer
		root := &cobra.Command{Use: "canopy-hub", SilenceErrors: true, SilenceUsage: true}
		root.AddCommand(commands(func() (hub.Config, error) { return loaded, nil }, &out, &errOut)...)
		root.SetArgs(args)
		err := root.ExecuteContext(context.Background())
		return out.String(), err
	}

	if out, err := run("dashboard", "url"); err != nil || strings.TrimSpace(out) != h.DashboardLoginURL() {
		t.Fatalf("dashboard url: %q, %v; want %q", out, err, h.DashboardLoginURL())
	}
	var out string
	wait.For(t, 20*time.Second, func() error {
		var b bytes.Buffer
		if err := liveStatus(context.Background(), loaded, false, &b); err != nil {
			return err
		}
		out = b.String()
		if !hasRow(out, "acme", "1/3", "7", "msgs,", "2.0", "KiB", "1") {
			return fmt.Errorf("no tenant row with pi-2 online and its backlog:\n%s", out)
		}
		for _, want := range []string{
			": canopy dev, nats-server 2.",
			"not clustered; gateways 0; leafnodes 0;",
			"jetstream: storage ",
			"rollouts running:\n  acme " + r.ID + ": sensor-fw 1.0.0, 0/3 applied, 0 failed, 3 in progress, 0 pending\n",
		} {
			if !strings.Contains(out, want) {
				return fmt.Errorf("status lacks %q:\n%s", want, out)
			}
		}
		return nil
	})
	t.Logf("canopy-hub status:\n%s", out)
}

func TestStatusWithoutHub(t *testing.T) {
	dir := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	token := filepath.Join(dir, "dashboard.token")
	os.WriteFile(token, []byte("t0ken\n"), 0o600)
	conf := filepath.Join(dir, "hub.yaml")
	os.WriteFile(conf, []byte(fmt.Sprintf("version: 1\njetstream:\n  store_dir: %s\ndashboard:\n  listen: %s\n  token_file: %s\n", dir, addr, token)), 0o600)

	var stdout, stderr bytes.Buffer
	code := appliance.Main(context.Background(), Program, []string{"status", "--config", conf}, &stdout, &stderr)
	want := "canopy-hub: no running hub answers at http://" + addr + " (dashboard.listen): "
	if (code != appliance.ExitNotInstalled && code != appliance.ExitNotRunning) || !strings.HasPrefix(stderr.String(), want) ||
		!strings.HasPrefix(stdout.String(), "canopy-hub: ") {
		t.Errorf("exit %d, stdout %q, stderr %q; want exit 3 or 4, %q and the service's state", code, stdout.String(), stderr.String(), want)
	}

	stdout.Reset()
	if code := appliance.Main(context.Background(), Program, []string{"dashboard", "url", "--config", conf}, &stdout, &stderr); code != appliance.ExitOK ||
		strings.TrimSpace(stdout.String()) != "http://"+addr+"/login?token=t0ken" {
		t.Errorf("dashboard url: exit %d, %q", code, stdout.String())
	}

	// A token others may read is refused.
	os.Chmod(token, 0o640)
	stderr.Reset()
	if code := appliance.Main(context.Background(), Program, []string{"dashboard", "url", "--config", conf}, &stdout, &stderr); code == appliance.ExitOK ||
		!strings.Contains(stderr.String(), "chmod 600") {
		t.Errorf("readable token: exit %d, %q", code, stderr.String())
	}
}
