package auth

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDependencies fails when the package links something canopy-leaf must
// not carry: nats-server above all.
func TestDependencies(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go tool not found")
	}
	out, err := exec.Command(goTool, "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, dep := range strings.Fields(string(out)) {
		if strings.HasPrefix(dep, "github.com/nats-io/nats-server") || strings.HasPrefix(dep, "github.com/nats-io/nats.go") ||
			strings.HasPrefix(dep, "github.com/nats-io/jwt") {
			t.Errorf("leaf/auth links %s", dep)
		}
	}
}
