package deptest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// A rule forbids packages (and everything below them) in the dependency
// graph of some of Canopy's packages, for each target platform.
type rule struct {
	packages  []string // relative to the module root
	forbidden []string // import path prefixes
	why       string
}

var rules = []rule{
	{
		packages:  []string{"./cmd/canopy-leaf", "./leaf/..."},
		forbidden: []string{"github.com/nats-io/nats-server/v2"},
		why:       "canopy-leaf must stay small: it speaks the NATS protocols itself",
	},
	{
		packages: []string{"./cmd/canopy-leaf", "./leaf/...", "./mqtt/..."},
		forbidden: []string{
			// The storage hooks' engines; their parent package holds only the
			// record types mochi's root imports itself.
			"github.com/mochi-mqtt/server/v2/config",
			"github.com/mochi-mqtt/server/v2/hooks/storage/badger",
			"github.com/mochi-mqtt/server/v2/hooks/storage/bolt",
			"github.com/mochi-mqtt/server/v2/hooks/storage/pebble",
			"github.com/mochi-mqtt/server/v2/hooks/storage/redis",
			"github.com/dgraph-io/badger",
			"github.com/cockroachdb/pebble",
			"github.com/go-redis/redis",
		},
		why: "mochi's config and storage packages drag badger, pebble and redis into the leaf",
	},
	{
		packages: []string{"./cmd/canopy-leaf", "./leaf/..."},
		forbidden: []string{
			// What periph's host.Init would register besides the GPIO
			// character device driver (host/v3/gpioioctl).
			"periph.io/x/host/v3/allwinner", "periph.io/x/host/v3/am335x", "periph.io/x/host/v3/bcm283x",
			"periph.io/x/host/v3/beagle", "periph.io/x/host/v3/chip", "periph.io/x/host/v3/ftdi",
			"periph.io/x/host/v3/netlink", "periph.io/x/host/v3/odroidc1", "periph.io/x/host/v3/pine64",
			"periph.io/x/host/v3/rpi", "periph.io/x/host/v3/sysfs",
		},
		why: "GPIO goes through periph's character-device driver only; its other host drivers add ~400 KiB to the arm binary",
	},
	{
		packages:  []string{"./cmd/canopy-leaf", "./leaf/..."},
		forbidden: []string{"github.com/prometheus/client_golang", "google.golang.org/protobuf"},
		why:       "the Prometheus client adds 2.1 MiB to the arm binary: the leaf writes its metrics with internal/promtext",
	},
	{
		packages:  []string{"./hub/..."},
		forbidden: []string{"github.com/canopy-iot/canopy/leaf"},
		why:       "hub and leaf are siblings; neither imports the other",
	},
}

// The engines Canopy embeds each sit behind exactly one adapter package.
var adapters = map[string]string{
	"go.etcd.io/bbolt":                  "github.com/canopy-iot/canopy/store",
	"github.com/nats-io/nats-server/v2": "github.com/canopy-iot/canopy/hub",
	"github.com/mochi-mqtt/server/v2":   "github.com/canopy-iot/canopy/mqtt",
	"periph.io/x/conn/v3":               "github.com/canopy-iot/canopy/leaf/gpio",
	"periph.io/x/host/v3":               "github.com/canopy-iot/canopy/leaf/gpio",
}

// TestEnginesHaveOneAdapter checks that only the adapter imports each
// embedded engine directly (tests and bench/ aside).
func TestEnginesHaveOneAdapter(t *testing.T) {
	root := moduleRoot(t)
	cmd := exec.Command("go", "list", "-f", "{{.ImportPath}} {{join .Imports \" \"}}", "./...")
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		fields := strings.Fields(line)
		pkg := fields[0]
		if strings.Contains(pkg, "/bench") {
			continue
		}
		for _, imp := range fields[1:] {
			for engine, adapter := range adapters {
				if (imp == engine || strings.HasPrefix(imp, engine+"/")) && pkg != adapter && !strings.HasPrefix(pkg, adapter+"/") {
					t.Errorf("%s imports %s; only %s may", pkg, imp, adapter)
				}
			}
		}
	}
}

// platforms the leaf ships for; the graph can differ by build tags.
var platforms = []struct{ goos, goarch, goarm string }{
	{"linux", "arm64", ""},
	{"linux", "arm", "6"},
	{"linux", "amd64", ""},
}

func TestForbiddenDependencies(t *testing.T) {
	root := moduleRoot(t)
	for _, r := range rules {
		pkgs := existing(root, r.packages)
		if len(pkgs) == 0 {
			t.Logf("none of %v exists yet", r.packages)
			continue
		}
		for _, p := range platforms {
			deps := listDeps(t, root, p.goos, p.goarch, p.goarm, pkgs)
			for _, dep := range deps {
				for _, f := range r.forbidden {
					if dep == f || strings.HasPrefix(dep, f+"/") {
						t.Errorf("%s/%s: %v depend on %s: %s", p.goos, p.goarch, pkgs, dep, r.why)
					}
				}
			}
		}
	}
}

// The test itself must notice a forbidden import: the hub does link
// nats-server, so a rule aimed at it has to fire.
func TestRuleDetectsAForbiddenImport(t *testing.T) {
	root := moduleRoot(t)
	deps := listDeps(t, root, "linux", "arm64", "", []string{"./hub"})
	for _, d := range deps {
		if strings.HasPrefix(d, "github.com/nats-io/nats-server/v2/server") {
			return
		}
	}
	t.Fatal("go list -deps ./hub does not show nats-server: the dependency check would see nothing")
}

func listDeps(t *testing.T, root, goos, goarch, goarm string, pkgs []string) []string {
	t.Helper()
	args := append([]string{"list", "-deps", "-f", "{{.ImportPath}}"}, pkgs...)
	cmd := exec.Command("go", args...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "GOOS="+goos, "GOARCH="+goarch, "GOARM="+goarm, "CGO_ENABLED=0")
	out, err := cmd.Output()
	if err != nil {
		var stderr string
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, stderr)
	}
	return strings.Fields(string(out))
}

// existing keeps the package patterns whose directory exists, so rules can
// name binaries before they are written.
func existing(root string, patterns []string) []string {
	var out []string
	for _, p := range patterns {
		dir := filepath.Join(root, strings.TrimSuffix(p, "/..."))
		if _, err := os.Stat(dir); err == nil {
			out = append(out, p)
		}
	}
	return out
}

func moduleRoot(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Dir(strings.TrimSpace(string(out)))
}
