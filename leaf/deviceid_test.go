package leaf_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nkeys"

	"github.com/canopy-iot/canopy/internal/config"
	"github.com/canopy-iot/canopy/leaf"
	"github.com/canopy-iot/canopy/leaf/uplink"
)

// writeCreds writes a .creds file whose user JWT is named name.
func writeCreds(t *testing.T, name string) string {
	t.Helper()
	acc, _ := nkeys.CreateAccount()
	user, _ := nkeys.CreateUser()
	pub, _ := user.PublicKey()
	seed, _ := user.Seed()
	uc := jwt.NewUserClaims(pub)
	uc.Name = name
	token, err := uc.Encode(acc)
	if err != nil {
		t.Fatal(err)
	}
	creds, err := jwt.FormatUserConfig(token, seed)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "device.creds")
	if err := os.WriteFile(file, creds, 0o600); err != nil {
		t.Fatal(err)
	}
	return file
}

// The device id comes from the credentials when there are any; server_name
// then defaults to it too.
func TestDeviceID(t *testing.T) {
	creds := writeCreds(t, "pi-007")
	hub := []string{"nats-leaf://hub.example.com:7422"}
	tests := []struct {
		name                       string
		cfg                        leaf.Config
		serverName, device, uplink string
	}{
		{"no credentials", leaf.Config{ServerName: "pi-001"}, "pi-001", "pi-001", "pi-001"},
		{"credentials", leaf.Config{Uplink: uplink.Config{URLs: hub, Credentials: creds}}, "pi-007", "pi-007", "pi-007"},
		{"credentials win over server_name", leaf.Config{ServerName: "pi-001", Uplink: uplink.Config{URLs: hub, Credentials: creds}}, "pi-001", "pi-007", "pi-007"},
		{"uplink.name stays", leaf.Config{Uplink: uplink.Config{URLs: hub, Credentials: creds, Name: "kiosk"}}, "pi-007", "pi-007", "kiosk"},
		{"credentials without a hub", leaf.Config{Uplink: uplink.Config{Credentials: creds}}, "pi-007", "pi-007", "pi-007"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := tt.cfg.WithDefaults()
			if err := c.Validate(); err != nil {
				t.Fatal(err)
			}
			id, err := c.DeviceID()
			if err != nil {
				t.Fatal(err)
			}
			if c.ServerName != tt.serverName || id != tt.device || c.Uplink.Name != tt.uplink {
				t.Errorf("server_name %q, device %q, uplink.name %q; want %q, %q, %q", c.ServerName, id, c.Uplink.Name, tt.serverName, tt.device, tt.uplink)
			}
		})
	}
}

// Credentials that cannot name the device are configuration errors, each
// reported once.
func TestDeviceIDProblems(t *testing.T) {
	hub := []string{"nats-leaf://hub.example.com:7422"}
	missing := filepath.Join(t.TempDir(), "missing.creds")
	tests := []struct {
		name string
		up   uplink.Config
		want string
	}{
		{"no name", uplink.Config{URLs: hub, Credentials: writeCreds(t, "")},
			"uplink.credentials: the user JWT has no name: the device id comes from it"},
		{"not a token", uplink.Config{URLs: hub, Credentials: writeCreds(t, "pi.007")},
			`uplink.credentials: the device id "pi.007" (the user JWT's name) cannot be a subject token`},
		{"missing, with a hub", uplink.Config{URLs: hub, Credentials: missing},
			"uplink.credentials: read credentials " + missing + ": no such file or directory"},
		{"missing, without a hub", uplink.Config{Credentials: missing},
			"uplink.credentials: read credentials " + missing + ": no such file or directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := leaf.Config{ServerName: "pi-001", Uplink: tt.up}.WithDefaults()
			var got []string
			for _, e := range config.Flatten(c.Validate()) {
				got = append(got, e.Error())
			}
			if len(got) != 1 || got[0] != tt.want {
				t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), tt.want)
			}
			if _, err := leaf.New(c, nil); err == nil {
				t.Error("New accepted it")
			}
		})
	}
}
