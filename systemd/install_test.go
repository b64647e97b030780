package systemd

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// The units carry the settings the appliance relies on; a unit file is
// easy to edit, so the essentials are checked here.
func TestUnitSettings(t *testing.T) {
	common := []string{
		"Type=notify", "NotifyAccess=main", "WatchdogSec=30s", "Restart=on-failure", "RestartSec=2s", "RestartPreventExitStatus=2",
		"User=canopy", "Group=canopy", "ConfigurationDirectory=canopy", "ExecReload=/bin/kill -HUP $MAINPID",
		"ProtectSystem=strict", "ProtectHome=yes", "PrivateTmp=yes", "NoNewPrivileges=yes",
		"CapabilityBoundingSet=", "AmbientCapabilities=", "LockPersonality=yes", "MemoryDenyWriteExecute=yes",
		"RestrictRealtime=yes", "RestrictNamespaces=yes", "SystemCallArchitectures=native",
		"ProtectKernelTunables=yes", "ProtectKernelModules=yes", "ProtectKernelLogs=yes",
		"ProtectControlGroups=yes", "ProtectClock=yes", "ProtectHostname=yes", "UMask=0027", "LimitNOFILE=65536",
		"WantedBy=multi-user.target",
	}
	units := map[string][]string{
		"canopy-leaf": {
			"ExecStart=/usr/bin/canopy-leaf run --config /etc/canopy/leaf.yaml",
			"StateDirectory=canopy/leaf", "WorkingDirectory=/var/lib/canopy/leaf",
			"SupplementaryGroups=gpio i2c", "DevicePolicy=closed", "DeviceAllow=char-gpiochip rw", "DeviceAllow=char-i2c rw",
			"RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6",
		},
		"canopy-hub": {
			"ExecStart=/usr/bin/canopy-hub run --config /etc/canopy/hub.yaml", "TimeoutStartSec=10min",
			"StateDirectory=canopy/hub", "WorkingDirectory=/var/lib/canopy/hub", "PrivateDevices=yes",
			"RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK",
		},
	}
	for _, service := range Services {
		unit, err := UnitFile(service, "")
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(string(unit), "\n")
		for _, want := range append(slices.Clone(common), units[service]...) {
			if !slices.Contains(lines, want) {
				t.Errorf("%s: no line %q", service, want)
			}
		}
		if service == "canopy-leaf" && slices.Contains(lines, "PrivateDevices=yes") {
			t.Errorf("%s: PrivateDevices=yes hides /dev/gpiochip* and /dev/i2c-*", service)
		}
	}
	// Every supplementary group of a unit is created by sysusers: systemd
	// refuses to start a unit whose group does not exist.
	for _, group := range []string{"gpio", "i2c"} {
		if !slices.Contains(strings.Split(string(Sysusers()), "\n"), "g "+group+" -") {
			t.Errorf("canopy.sysusers does not create group %s", group)
		}
	}
}

func TestUnitFileExecutable(t *testing.T) {
	unit, err := UnitFile("canopy-leaf", "/opt/canopy/bin/canopy-leaf")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(unit, []byte("\nExecStart=/opt/canopy/bin/canopy-leaf run --config /etc/canopy/leaf.yaml\n")) {
		t.Fatalf("ExecStart not replaced:\n%s", unit)
	}
	for _, bad := range []string{"relative/canopy-leaf", "/opt/my canopy/canopy-leaf", "/opt/%h/canopy-leaf", "/opt/../canopy-leaf", `/opt/a"b`} {
		if _, err := UnitFile("canopy-leaf", bad); err == nil {
			t.Errorf("executable %q accepted", bad)
		}
	}
	if _, err := UnitFile("canopy-edge", ""); !errors.Is(err, ErrUnknownService) {
		t.Errorf("unknown service: %v", err)
	}
}

func TestInstallUninstall(t *testing.T) {
	root := t.TempDir()
	for _, s := range Services {
		if _, ok := Installed(root, s); ok {
			t.Fatalf("%s installed in an empty root", s)
		}
	}
	written, err := Install(root, "canopy-leaf", Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"/etc/systemd/system/canopy-leaf.service", SysusersFile, TmpfilesFile}
	if !slices.Equal(written, want) {
		t.Fatalf("wrote %v, want %v", written, want)
	}
	for i, data := range [][]byte{leafUnit, sysusers, tmpfiles} {
		got, err := os.ReadFile(filepath.Join(root, want[i]))
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("%s: %v, content differs: %v", want[i], err, !bytes.Equal(got, data))
		}
		if fi, _ := os.Stat(filepath.Join(root, want[i])); fi.Mode().Perm() != 0o644 {
			t.Errorf("%s: mode %v", want[i], fi.Mode())
		}
	}
	if p, ok := Installed(root, "canopy-leaf"); !ok || p != want[0] {
		t.Fatalf("Installed: %q %v", p, ok)
	}
	// Installing again replaces, and leaves no temporary files behind.
	if _, err := Install(root, "canopy-leaf", Options{Executable: "/usr/local/bin/canopy-leaf"}); err != nil {
		t.Fatal(err)
	}
	if _, err := Install(root, "canopy-hub", Options{}); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(filepath.Join(root, UnitDir))
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if !slices.Equal(names, []string{"canopy-hub.service", "canopy-leaf.service"}) {
		t.Fatalf("unit dir holds %v", names)
	}
	// A link as `systemctl enable` makes it.
	link := filepath.Join(root, wantsDir, "canopy-leaf.service")
	os.MkdirAll(filepath.Dir(link), 0o755)
	if err := os.Symlink("/etc/systemd/system/canopy-leaf.service", link); err != nil {
		t.Fatal(err)
	}
	// The hub's unit still needs the shared files.
	removed, err := Uninstall(root, "canopy-leaf")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"/etc/systemd/system/canopy-leaf.service", wantsDir + "/canopy-leaf.service"}; !slices.Equal(removed, want) {
		t.Fatalf("removed %v, want %v", removed, want)
	}
	if _, err := os.Stat(filepath.Join(root, SysusersFile)); err != nil {
		t.Fatalf("sysusers removed while the hub is installed: %v", err)
	}
	removed, err = Uninstall(root, "canopy-hub")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"/etc/systemd/system/canopy-hub.service", SysusersFile, TmpfilesFile}; !slices.Equal(removed, want) {
		t.Fatalf("removed %v, want %v", removed, want)
	}
	if _, err := Uninstall(root, "canopy-hub"); !errors.Is(err, ErrNotInstalled) {
		t.Fatalf("second uninstall: %v", err)
	}
	// A package's unit counts as installed.
	pkg := filepath.Join(root, "usr/lib/systemd/system/canopy-hub.service")
	os.MkdirAll(filepath.Dir(pkg), 0o755)
	os.WriteFile(pkg, hubUnit, 0o644)
	if p, ok := Installed(root, "canopy-hub"); !ok || p != "/usr/lib/systemd/system/canopy-hub.service" {
		t.Fatalf("package unit: %q %v", p, ok)
	}
}
