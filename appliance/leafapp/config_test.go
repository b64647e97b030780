package leafapp

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/canopy-iot/canopy/appliance"
	"github.com/canopy-iot/canopy/leaf"
)

// leafConfigCases lists every file in testdata/leaf with the exact
// problems expected from it (none for valid files).
var leafConfigCases = map[string][]string{
	"minimal.yaml": nil,
	"full.yaml":    nil,
	"token.yaml":   nil,
	"uplink.yaml":  nil,
	"bad_uplink.yaml": {
		`bad_uplink.yaml:2: uplink.credentials: set one of credentials, nkey_seed_file, user, token`,
		`bad_uplink.yaml:3: uplink.urls[0]: invalid URL "hub.example.com:7422" (want e.g. nats-leaf://hub:7422)`,
		`bad_uplink.yaml:4: uplink.user: needs password or password_file`,
		`bad_uplink.yaml:5: uplink.nkey_seed_file: read seed /nonexistent/device.nk: no such file or directory`,
		`bad_uplink.yaml:6: uplink.proxy: want http://[user:password@]host:port`,
		`bad_uplink.yaml:7: uplink.reconect_max: unknown key (did you mean "reconnect_max"?)`,
	},
	"unknown_key.yaml": {
		`unknown_key.yaml:4: nats.max_paylod: unknown key (did you mean "max_payload"?)`,
	},
	"bad_values.yaml": {
		`bad_values.yaml:2: log_level: unknown level "chatty" (want one of trace, debug, info, warn, error)`,
		`bad_values.yaml:4: nats.listen: port "99999" out of range (0-65535)`,
		`bad_values.yaml:5: nats.max_payload: 134217728 bytes is over the 64MiB nats-server allows`,
		`bad_values.yaml:6: nats.write_deadline: invalid duration "10" (use a unit, e.g. "30s" or "5m")`,
	},
	"bad_mqtt.yaml": {
		`bad_mqtt.yaml:4: mqtt.anonymous: unknown policy "sometimes" (want loopback, always or never)`,
		`bad_mqtt.yaml:5: mqtt.tls: a TLS listener needs cert_file and key_file`,
		`bad_mqtt.yaml:9: mqtt.acl[0].publish[0]: filter "sensors/a b/#": level 2 contains a space: NATS subjects cannot carry whitespace`,
		`bad_mqtt.yaml:10: mqtt.max_packet_size: must be between 64 bytes and 256MiB (MQTT's limit)`,
	},
	"bad_device.yaml": {
		`bad_device.yaml:4: gpio.inputs[0].pin: "GPIO.17": want a pin name such as GPIO17 (letters, digits, '-' and '_')`,
		`bad_device.yaml:5: gpio.inputs[0].pull: "sideways": want one of up, down, none`,
		`bad_device.yaml:8: gpio.outputs[0].initial: "on": want one of low, high`,
		`bad_device.yaml:10: health.interval: must be at least 1s`,
	},
	"missing_version.yaml": {
		`missing_version.yaml: version: missing (the file must start with "version: 1")`,
	},
}

func TestLoadLeafTestdata(t *testing.T) {
	files, err := filepath.Glob("testdata/leaf/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if _, ok := leafConfigCases[filepath.Base(f)]; !ok && filepath.Base(f) != "bad_auth.yaml" {
			t.Errorf("%s has no expected result in leafConfigCases", f)
		}
	}
	for name, want := range leafConfigCases {
		t.Run(name, func(t *testing.T) {
			t.Chdir("testdata/leaf")
			_, err := LoadLeaf(name, true, nil)
			if got := appliance.Problems(err); !reflect.DeepEqual(got, want) {
				t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
		})
	}
}

// The authorization block's problems are placed at their lines too, under
// the nats block.
func TestLoadLeafAuthProblems(t *testing.T) {
	t.Chdir("testdata/leaf")
	_, err := LoadLeaf("bad_auth.yaml", true, nil)
	got := appliance.Problems(err)
	if len(got) < 2 {
		t.Fatalf("problems: %q", got)
	}
	for _, p := range got {
		if !strings.HasPrefix(p, "bad_auth.yaml:") || !strings.Contains(p, " nats.authorization") {
			t.Errorf("problem %q is not placed at a line of nats.authorization", p)
		}
	}
}

func TestLoadLeafZeroConfig(t *testing.T) {
	t.Chdir(t.TempDir())
	cfg, err := LoadLeaf("absent.yaml", false, nil)
	if err != nil {
		t.Fatal(err)
	}
	host, _ := os.Hostname()
	if cfg.NATS.Listen != "127.0.0.1:4222" || cfg.DataDir != leaf.DefaultDataDir || cfg.ServerName != host || cfg.NATS.MaxPayload != 1<<20 {
		t.Fatalf("zero config: %+v", cfg)
	}
}

func TestLoadLeafFlags(t *testing.T) {
	t.Chdir(t.TempDir())
	cfg, err := LoadLeaf("absent.yaml", false, []appliance.Override{
		{Flag: "--nats-listen", Path: "nats.listen", Values: []string{"0.0.0.0:4333"}},
		{Flag: "--data-dir", Path: "data_dir", Values: []string{"/tmp/x"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.NATS.Listen != "0.0.0.0:4333" || cfg.DataDir != "/tmp/x" {
		t.Fatalf("flags not applied: %+v", cfg)
	}
}
