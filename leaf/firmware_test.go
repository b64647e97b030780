package leaf_test

import (
	"errors"
	"path/filepath"
	"slices"
	"testing"

	"github.com/canopy-iot/canopy/firmware/agent"
	"github.com/canopy-iot/canopy/internal/config"
	"github.com/canopy-iot/canopy/leaf"
)

func TestFirmwareConfig(t *testing.T) {
	c := leaf.Config{DataDir: "/var/lib/canopy/leaf"}.WithDefaults()
	if c.Firmware.On() || c.Firmware.Dir != filepath.Join("/var/lib/canopy/leaf", "firmware") {
		t.Errorf("defaults: %+v", c.Firmware)
	}
	on := true
	bad := leaf.Config{Firmware: agent.Config{Enabled: &on, Installers: map[string]agent.InstallerConfig{"sensor-fw": {Type: "flash"}}}}
	var paths []string
	for _, e := range config.Flatten(bad.WithDefaults().Validate()) {
		var ce *config.Error
		if errors.As(e, &ce) {
			paths = append(paths, ce.Path)
		}
	}
	for _, want := range []string{"firmware.trusted_keys", "firmware.installers.sensor-fw.type", "firmware.enabled"} {
		if !slices.Contains(paths, want) {
			t.Errorf("no problem at %s: %v", want, paths)
		}
	}
}
