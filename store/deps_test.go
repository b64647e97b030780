package store

import (
	"os/exec"
	"strings"
	"testing"
)

// The store goes into canopy-leaf, which runs on small devices: besides the
// standard library it may link bbolt and nothing else (above all, not
// nats-server).
func TestDependencies(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", ".").CombinedOutput()
	if err != nil {
		t.Skipf("go list: %v: %s", err, out)
	}
	for _, dep := range strings.Fields(string(out)) {
		switch {
		case strings.HasPrefix(dep, "github.com/canopy-iot/canopy/store"),
			dep == "go.etcd.io/bbolt", strings.HasPrefix(dep, "go.etcd.io/bbolt/"),
			strings.HasPrefix(dep, "golang.org/x/sys/"): // bbolt's
		default:
			t.Errorf("store depends on %s", dep)
		}
	}
}
