package hubapp

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/canopy-iot/canopy/appliance"
	"github.com/canopy-iot/canopy/hub/fleet"
)

// check-config checks an operator-mode configuration, tenants included,
// and writes nothing: run as root on a packaged hub, anything it wrote in
// the state directory would be root's, and the hub (user canopy) could not
// write it any more.
func TestCheckConfigWritesNothing(t *testing.T) {
	dir := t.TempDir()
	keys, err := fleet.Init(filepath.Join(dir, "keys"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := keys.AddTenant("acme", fleet.DefaultLimits()); err != nil {
		t.Fatal(err)
	}
	store := filepath.Join(dir, "state")
	conf := filepath.Join(dir, "hub.yaml")
	yaml := "version: 1\noperator:\n  key_dir: " + keys.Dir() + "\njetstream:\n  store_dir: " + store + "\n"
	if err := os.WriteFile(conf, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	before := listTree(t, keys.Dir())
	var stdout, stderr bytes.Buffer
	if code := appliance.Main(context.Background(), Program, []string{"check-config", "--config", conf}, &stdout, &stderr); code != appliance.ExitOK {
		t.Fatalf("check-config: exit %d\n%s%s", code, stdout.String(), stderr.String())
	}
	if _, err := os.Stat(store); !os.IsNotExist(err) {
		t.Errorf("check-config created %s (%v)", store, err)
	}
	if after := listTree(t, keys.Dir()); after != before {
		t.Errorf("check-config changed the key directory:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

// listTree lists the files under dir with their sizes.
func listTree(t *testing.T, dir string) string {
	t.Helper()
	var b bytes.Buffer
	err := filepath.Walk(dir, func(path string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		size := int64(0)
		if !fi.IsDir() {
			size = fi.Size()
		}
		fmt.Fprintf(&b, "%s %v %d\n", path, fi.Mode(), size)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}
