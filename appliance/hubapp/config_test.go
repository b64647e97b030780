package hubapp

import (
	"github.com/canopy-iot/canopy/appliance"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/canopy-iot/canopy/hub"
	"github.com/canopy-iot/canopy/internal/config"
	"github.com/canopy-iot/canopy/internal/testcert"
)

// inConfigDir copies testdata/hub/<name> into a fresh directory holding
// test certificates in tls/, and makes it the working directory, so that
// error messages name "<name>" and relative certificate paths resolve.
func inConfigDir(t *testing.T, name string) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "hub", name))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "tls"), 0o700); err != nil {
		t.Fatal(err)
	}
	testcert.Write(t, filepath.Join(dir, "tls"))
	if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Chdir(dir)
}

// hubConfigCases lists every file in testdata/hub with the exact problems
// expected from it (none for valid files).
var hubConfigCases = map[string][]string{
	"minimal.yaml": nil,
	"full.yaml":    nil,
	"cluster.yaml": nil,
	"off.yaml":     nil,
	"unknown_key.yaml": {
		`unknown_key.yaml:3: cluster.listen: required when other cluster settings are set`,
		`unknown_key.yaml:5: cluster.lisen: unknown key (did you mean "listen"?)`,
	},
	"bad_duration.yaml": {
		`bad_duration.yaml:2: lame_duck: invalid duration "30" (use a unit, e.g. "30s" or "5m")`,
	},
	"port_out_of_range.yaml": {
		`port_out_of_range.yaml:2: listen: port "70000" out of range (0-65535)`,
	},
	"unreadable_tls.yaml": {
		`unreadable_tls.yaml:4: leafnodes.tls.cert_file: cannot read /nonexistent/cert.pem: no such file or directory`,
		`unreadable_tls.yaml:5: leafnodes.tls.key_file: cannot read /nonexistent/key.pem: no such file or directory`,
	},
	"gateway_without_name.yaml": {
		`gateway_without_name.yaml:2: gateways.name: required when gateways.listen is set`,
	},
	"missing_version.yaml": {
		`missing_version.yaml: version: missing (the file must start with "version: 1")`,
	},
	"future_version.yaml": {
		`future_version.yaml:1: version: unsupported version "2" (this release reads version 1)`,
	},
	"not_yaml.yaml": {
		`not_yaml.yaml:4: mapping values are not allowed in this context`,
	},
	"wrong_types.yaml": {
		`wrong_types.yaml:2: cluster: want a mapping of settings, got a list`,
		`wrong_types.yaml:4: jetstream.enabled: want true or false, got "maybe"`,
		`wrong_types.yaml:5: jetstream.max_memory: invalid size "lots" (use bytes or a unit, e.g. "512MiB" or "2GB")`,
		`wrong_types.yaml:6: log_level: unknown level "loud" (want one of trace, debug, info, warn, error)`,
	},
	"bad_accounts.yaml": {
		`bad_accounts.yaml:5: accounts.acme.users[0].nkey: not a user public key (want 56 characters starting with "U")`,
		`bad_accounts.yaml:6: accounts.acme.users[1].password: required with user`,
		`bad_accounts.yaml:9: accounts.$SYS: "$SYS" is reserved by nats-server`,
		`bad_accounts.yaml:11: no_auth_user: "nobody" is not a user of any account`,
	},
	"bad_routes.yaml": {
		`bad_routes.yaml:6: cluster.routes[0]: URL "http://hub-1:6222": scheme must be one of nats, nats-route, tls`,
		`bad_routes.yaml:7: cluster.routes[1]: invalid URL "hub-2" (want e.g. nats://host:port)`,
		`bad_routes.yaml:8: cluster.routes[2]: URL "nats://hub-3:99999": port "99999" out of range (1-65535)`,
		`bad_routes.yaml: server_name: required for clustered JetStream (each node needs a stable name)`,
	},
	"duplicate_key.yaml": {
		`duplicate_key.yaml:3: listen: duplicate key`,
	},
	"clustered_jetstream_without_name.yaml": {
		`clustered_jetstream_without_name.yaml:6: gateways.name: "dc2" differs from cluster.name "dc1": a cluster has one name in the supercluster`,
		`clustered_jetstream_without_name.yaml: server_name: required for clustered JetStream (each node needs a stable name)`,
	},
}

func TestLoadHubTestdata(t *testing.T) {
	files, err := filepath.Glob("testdata/hub/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if _, ok := hubConfigCases[filepath.Base(f)]; !ok {
			t.Errorf("%s has no expected result in hubConfigCases", f)
		}
	}
	for name, want := range hubConfigCases {
		t.Run(name, func(t *testing.T) {
			inConfigDir(t, name)
			_, err := LoadHub(name, true, nil)
			if got := appliance.Problems(err); !reflect.DeepEqual(got, want) {
				t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
		})
	}
}

func TestLoadHubFullFile(t *testing.T) {
	inConfigDir(t, "full.yaml")
	cfg, err := LoadHub("full.yaml", true, nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ServerName != "hub-1" || cfg.LameDuck.Std().String() != "30s" || cfg.JetStream.MaxMemory != 1<<30 ||
		len(cfg.Cluster.Routes) != 3 || len(cfg.Gateways.Remotes["dc2"]) != 2 || !cfg.Cluster.TLS.Verify || !cfg.LeafNodes.NoAdvertise ||
		len(cfg.Accounts["acme"].Users) != 2 || cfg.Accounts["acme"].Users[0].Publish[0] != "telemetry.pi-001.>" {
		t.Fatalf("full.yaml decoded wrongly: %+v", cfg)
	}
	// hub.New runs nats-server's own option checks on the result.
	if _, err := hub.New(cfg, nil); err != nil {
		t.Fatalf("hub.New(full.yaml): %v", err)
	}
}

func TestLoadHubZeroConfig(t *testing.T) {
	t.Chdir(t.TempDir())
	cfg, err := LoadHub("absent.yaml", false, nil)
	if err != nil {
		t.Fatalf("missing default config: %v", err)
	}
	want := hub.Config{}.WithDefaults()
	if !reflect.DeepEqual(cfg, want) {
		t.Fatalf("zero config = %+v, want the defaults %+v", cfg, want)
	}
	if cfg.Listen != "127.0.0.1:4222" || cfg.LeafNodes.Listen != "127.0.0.1:7422" || cfg.HTTPListen != "127.0.0.1:8222" ||
		!*cfg.JetStream.Enabled || cfg.JetStream.StoreDir != "./canopy-data" {
		t.Fatalf("defaults changed: %+v", cfg)
	}
	if _, err := LoadHub("absent.yaml", true, nil); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Fatalf("explicit missing config: %v, want a read error", err)
	}
}

func TestLoadHubFlagsOverrideFile(t *testing.T) {
	inConfigDir(t, "cluster.yaml")
	cfg, err := LoadHub("cluster.yaml", true, []config.Override{
		{Flag: "--listen", Path: "listen", Values: []string{"127.0.0.1:5222"}},
		{Flag: "--cluster-routes", Path: "cluster.routes", Values: []string{"nats://a:6222", "nats://b:6222"}, List: true},
		{Flag: "--jetstream-max-file", Path: "jetstream.max_file", Values: []string{"2GB"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Listen != "127.0.0.1:5222" || !reflect.DeepEqual(cfg.Cluster.Routes, []string{"nats://a:6222", "nats://b:6222"}) ||
		cfg.JetStream.MaxFile != 2_000_000_000 || cfg.ServerName != "hub-2" {
		t.Fatalf("overrides not applied: %+v", cfg)
	}

	_, err = LoadHub("cluster.yaml", true, []config.Override{
		{Flag: "--listen", Path: "listen", Values: []string{"127.0.0.1:99999"}},
		{Flag: "--lame-duck", Path: "lame_duck", Values: []string{"soon"}},
	})
	want := []string{
		`flag --lame-duck: lame_duck: invalid duration "soon" (use a unit, e.g. "30s" or "5m")`,
		`flag --listen: listen: port "99999" out of range (0-65535)`,
	}
	if got := appliance.Problems(err); !reflect.DeepEqual(got, want) {
		t.Fatalf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestFlagNames(t *testing.T) {
	for _, s := range HubSettings {
		name := appliance.FlagName(s.Path)
		if strings.ContainsAny(name, "._") {
			t.Errorf("flag for %s is %q", s.Path, name)
		}
	}
	if got := appliance.FlagName("jetstream.store_dir"); got != "jetstream-store-dir" {
		t.Fatalf("FlagName = %q", got)
	}
}
