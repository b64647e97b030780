package hubapp

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/canopy-iot/canopy/hub"
	"github.com/canopy-iot/canopy/hub/fleet"
	"github.com/canopy-iot/canopy/internal/hubtest"
	"github.com/canopy-iot/canopy/internal/wait"
)

// rolloutHub runs an operator-mode hub with tenant acme, devices pi-0 to
// pi-3 and firmware sensor-fw 1.0.0 published, and returns how to run
// `canopy-hub firmware ...` against it.
func rolloutHub(t *testing.T) (admin *hub.Admin, run func(args ...string) (string, error)) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "keys")
	keys, err := fleet.Init(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg := hub.Config{
		Listen:     "127.0.0.1:0",
		HTTPListen: "127.0.0.1:0",
		LeafNodes:  hub.LeafNodes{Listen: "127.0.0.1:0"},
		JetStream:  hub.JetStream{StoreDir: t.TempDir()},
		Operator:   hub.Operator{KeyDir: dir, EnrollListen: "127.0.0.1:0"},
	}
	h := hubtest.Run(t, cfg)
	ctx := context.Background()
	admin = hub.NewAdmin(h.ClientURL(), nil, keys)
	_, accountJWT, err := keys.AddTenant("acme", fleet.DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.PushAccount(accountJWT); err != nil {
		t.Fatal(err)
	}
	if err := admin.EnsureTenantAssets(ctx, "acme", 1); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"pi-0", "pi-1", "pi-2", "pi-3"} {
		if _, err := keys.AddDevice("acme", d); err != nil {
			t.Fatal(err)
		}
	}
	meta := hub.FirmwareMeta{Name: "sensor-fw", Version: "1.0.0", Platform: "linux/arm64", ChunkSize: 4096}
	if _, err := admin.PublishFirmware(ctx, "acme", meta, bytes.NewReader(bytes.Repeat([]byte("fw"), 5000))); err != nil {
		t.Fatal(err)
	}
	load := func() (hub.Config, error) { return cfg, nil }
	run = func(args ...string) (string, error) {
		t.Helper()
		var out, errOut bytes.Buffer
		root := &cobra.Command{Use: "canopy-hub", SilenceErrors: true, SilenceUsage: true}
		root.AddCommand(commands(load, &out, &errOut)...)
		root.SetArgs(append(args, "--server", h.ClientURL()))
		err := root.ExecuteContext(context.Background())
		return out.String(), err
	}
	return admin, run
}

func TestIntegrationRolloutCommands(t *testing.T) {
	admin, run := rolloutHub(t)
	ctx := context.Background()

	if out, err := run("firmware", "group", "set", "--tenant", "acme", "lab", "pi-2", "pi-0", "pi-1"); err != nil || !strings.Contains(out, "group lab of tenant acme: pi-0 pi-1 pi-2") {
		t.Fatalf("group set: %q, %v", out, err)
	}
	if out, err := run("firmware", "group", "list", "--tenant", "acme"); err != nil || !hasRow(out, "lab", "pi-0", "pi-1", "pi-2") {
		t.Fatalf("group list: %q, %v", out, err)
	}
	for _, args := range [][]string{
		{"--version", "9.9.9", "--to", "all"},                       // not published
		{"--version", "1.0.0", "--to", "group=nope"},                // no such group
		{"--version", "1.0.0", "--to", "device=pi-9"},               // no such device
		{"--version", "1.0.0", "--to", "all", "--percent", "0"},     // out of range
		{"--version", "1.0.0", "--to", "all", "--window", "2-4"},    // not a window
		{"--version", "1.0.0", "--to", "all", "--platform", "any"},  // not published for it
		{"--version", "1.0.0", "--to", "everything", "--percent=5"}, // no such target
	} {
		if out, err := run(append([]string{"firmware", "rollout", "--tenant", "acme", "--name", "sensor-fw"}, args...)...); err == nil {
			t.Errorf("rollout %v: accepted: %s", args, out)
		}
	}

	// A group at 34%: 3 devices, waves of 2 and 1. The platform is found.
	out, err := run("firmware", "rollout", "--tenant", "acme", "--name", "sensor-fw", "--version", "1.0.0", "--to", "group=lab", "--percent", "34", "--download-only")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "(linux/arm64) to 3 devices (group=lab)") || !strings.Contains(out, "first wave: 2 devices") {
		t.Fatalf("rollout output %q", out)
	}
	id := strings.TrimSuffix(strings.Fields(out)[1], ":")
	var r hub.Rollout
	wait.For(t, 30*time.Second, func() error {
		all, err := admin.Rollouts(ctx, "acme")
		if err != nil || len(all) != 1 {
			return errors.Join(err, errors.New("no rollout"))
		}
		if r = all[0]; r.Waves == 0 {
			return errors.New("wave 1 not started")
		}
		return nil
	})
	if r.ID != id || len(r.Assigned) != 2 || !r.DownloadOnly {
		t.Fatalf("rollout %+v", r)
	}

	out, err = run("firmware", "status", "--tenant", "acme", "--rollout", id)
	if err != nil {
		t.Fatal(err)
	}
	for _, row := range [][]string{
		{id, "sensor-fw", "1.0.0", "linux/arm64", "group=lab", "running", "1", "2/3", "0", "0", "2"},
		{r.Assigned[0], "assigned"},
		{r.Assigned[1], "assigned"},
		{r.Devices[2], "queued"},
	} {
		if !hasRow(out, row...) {
			t.Errorf("status has no row starting %q:\n%s", row, out)
		}
	}
	if out, err := run("firmware", "status", "--tenant", "acme"); err != nil || !strings.Contains(out, "DEVICE") {
		t.Errorf("status of all: %q, %v", out, err)
	}
	if _, err := run("firmware", "status", "--tenant", "acme", "--rollout", "nope"); !errors.Is(err, hub.ErrNoRollout) {
		t.Errorf("status of no rollout: %v", err)
	}

	out, err = run("firmware", "cancel", "--tenant", "acme", id, "--reason", "wrong build")
	if err != nil || !strings.Contains(out, "cancelled; 2 of 3 devices got it") {
		t.Fatalf("cancel: %q, %v", out, err)
	}
	if out, err := run("firmware", "status", "--tenant", "acme"); err != nil || !strings.Contains(out, "cancelled") || !strings.Contains(out, "wrong build") {
		t.Errorf("status after cancel: %q, %v", out, err)
	}
	if _, err := run("firmware", "cancel", "--tenant", "acme", id); err == nil {
		t.Error("cancelled twice")
	}
	// Its devices are free for the next rollout.
	if out, err := run("firmware", "rollout", "--tenant", "acme", "--name", "sensor-fw", "--version", "1.0.0", "--platform", "linux/arm64", "--to", "device=pi-0"); err != nil || !strings.Contains(out, "first wave: 1 device;") {
		t.Errorf("rollout after cancel: %q, %v", out, err)
	}
}

// hasRow reports whether a line of a table starts with fields.
func hasRow(table string, fields ...string) bool {
	for line := range strings.Lines(table) {
		f := strings.Fields(line)
		if len(f) >= len(fields) && slices.Equal(f[:len(fields)], fields) {
			return true
		}
	}
	return false
}
