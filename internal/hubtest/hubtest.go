// Package hubtest runs canopy-hub for the tests of other packages: a hub
// in the test process until the test ends, and the operator-mode setup
// (key directory, tenants with their assets) that fleet, firmware and
// leaf tests share.
package hubtest

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/canopy-iot/canopy/hub"
	"github.com/canopy-iot/canopy/hub/fleet"
	"github.com/canopy-iot/canopy/internal/testlog"
)

// Run runs a hub on cfg until the test ends and waits until it is ready.
func Run(t testing.TB, cfg hub.Config) *hub.Hub {
	t.Helper()
	logs, log := testlog.New(0)
	h, err := hub.New(cfg, log)
	if err != nil {
		t.Fatalf("hub.New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("hub: %v", err)
		}
	})
	select {
	case <-h.Ready():
	case err := <-done:
		done <- err
		t.Fatalf("hub stopped before it was ready: %v\n%s", err, logs)
	case <-time.After(30 * time.Second):
		t.Fatalf("hub not ready after 30s\n%s", logs)
	}
	return h
}

// OperatorConfig is a hub in operator mode on keys, every listener on a
// kernel-chosen loopback port, JetStream in a fresh directory.
func OperatorConfig(t testing.TB, keys *fleet.Keys) hub.Config {
	return hub.Config{
		Listen:     "127.0.0.1:0",
		HTTPListen: "127.0.0.1:0",
		LeafNodes:  hub.LeafNodes{Listen: "127.0.0.1:0"},
		JetStream:  hub.JetStream{StoreDir: t.TempDir()},
		Operator:   hub.Operator{KeyDir: keys.Dir(), EnrollListen: "127.0.0.1:0"},
		Dashboard:  hub.Dashboard{Listen: "127.0.0.1:0"},
	}
}

// Operator makes a key directory, runs a hub in operator mode on it and
// adds the tenants, as `canopy-hub init`, the hub and `canopy-hub tenant
// add` do.
func Operator(t testing.TB, tenants ...string) (*hub.Hub, *fleet.Keys, *hub.Admin) {
	t.Helper()
	return OperatorWith(t, nil, tenants...)
}

// OperatorWith is Operator with the configuration changed by mutate (nil:
// unchanged) before the hub starts.
func OperatorWith(t testing.TB, mutate func(*hub.Config), tenants ...string) (*hub.Hub, *fleet.Keys, *hub.Admin) {
	t.Helper()
	keys, err := fleet.Init(filepath.Join(t.TempDir(), "keys"), nil)
	if err != nil {
		t.Fatalf("fleet.Init: %v", err)
	}
	cfg := OperatorConfig(t, keys)
	if mutate != nil {
		mutate(&cfg)
	}
	h := Run(t, cfg)
	admin := hub.NewAdmin(h.ClientURL(), nil, keys)
	for _, name := range tenants {
		AddTenant(t, admin, keys, name, fleet.DefaultLimits())
	}
	return h, keys, admin
}

// AddTenant adds a tenant, pushes it to the hub and creates its assets.
func AddTenant(t testing.TB, admin *hub.Admin, keys *fleet.Keys, name string, lim fleet.Limits) {
	t.Helper()
	_, accountJWT, err := keys.AddTenant(name, lim)
	if err != nil {
		t.Fatalf("add tenant %s: %v", name, err)
	}
	if _, err := admin.PushAccount(accountJWT); err != nil {
		t.Fatalf("push tenant %s: %v", name, err)
	}
	if err := admin.EnsureTenantAssets(context.Background(), name, 1); err != nil {
		t.Fatalf("assets of tenant %s: %v", name, err)
	}
}
