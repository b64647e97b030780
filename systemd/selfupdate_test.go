package systemd

import (
	"strings"
	"testing"
)

// Self-updates install canopy-leaf under the service's state directory,
// and the packaged binary execs it there: no setting may take exec away
// from that directory.
func TestLeafUnitExecutesFromStateDir(t *testing.T) {
	unit, err := UnitFile("canopy-leaf", "")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(unit), "\n") {
		key, value, _ := strings.Cut(line, "=")
		switch key {
		case "NoExecPaths", "ExecPaths", "TemporaryFileSystem", "InaccessiblePaths":
			t.Errorf("canopy-leaf.service: %s=%s: the launcher runs <data_dir>/bin/canopy-leaf from /var/lib/canopy/leaf", key, value)
		}
	}
}
