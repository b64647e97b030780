package leafapp

import (
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"

	"github.com/canopy-iot/canopy/firmware/agent"
	"github.com/canopy-iot/canopy/leaf"
)

func TestCheckConfigArgs(t *testing.T) {
	cases := []struct {
		args, want []string
	}{
		{[]string{"run", "--config", "/etc/canopy/leaf.yaml"}, []string{"check-config", "--config", "/etc/canopy/leaf.yaml"}},
		{[]string{"--config", "leaf.yaml", "--nats-listen", "127.0.0.1:0"}, []string{"check-config", "--config", "leaf.yaml", "--nats-listen", "127.0.0.1:0"}},
		{nil, []string{"check-config"}},
		{[]string{"--config", "leaf.yaml", "run"}, nil},
	}
	for _, c := range cases {
		if got := checkConfigArgs(c.args); !reflect.DeepEqual(got, c.want) {
			t.Errorf("checkConfigArgs(%q) = %q, want %q", c.args, got, c.want)
		}
	}
}

func TestLaunch(t *testing.T) {
	dataDir := t.TempDir()
	bin := agent.SelfBinary(dataDir)
	if err := os.MkdirAll(filepath.Dir(bin), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	configured := func(leaf.Config) *agent.SelfInstaller {
		return &agent.SelfInstaller{Binary: bin, StateDir: filepath.Join(dataDir, "firmware", "self")}
	}
	none := func(leaf.Config) *agent.SelfInstaller { return nil }
	argv := []string{"/usr/bin/canopy-leaf", "run", "--config", "/etc/canopy/leaf.yaml"}
	env := []string{"NOTIFY_SOCKET=/run/systemd/notify"}
	log := slog.New(slog.DiscardHandler)

	cases := []struct {
		name       string
		selfUpdate func(leaf.Config) *agent.SelfInstaller
		env        []string
		execErr    error
		wantExec   bool
	}{
		{"self-update configured", configured, env, nil, true},
		{"exec fails: the packaged binary runs", configured, env, errors.New("exec format error"), true},
		{"not configured", none, env, nil, false},
		{"launched already", configured, append(slices.Clone(env), agent.EnvLaunched+"=1"), nil, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var gotPath string
			var gotArgv, gotEnv []string
			exec := func(path string, argv, env []string) error {
				gotPath, gotArgv, gotEnv = path, argv, env
				return c.execErr
			}
			if err := launch(leaf.Config{DataDir: dataDir}, log, c.selfUpdate, argv, c.env, exec); err != nil {
				t.Fatalf("launch: %v", err)
			}
			if !c.wantExec {
				if gotPath != "" {
					t.Fatalf("exec %s, want none", gotPath)
				}
				return
			}
			wantArgv := append([]string{bin}, argv[1:]...)
			wantEnv := append(slices.Clone(env), agent.EnvLaunched+"=1")
			if gotPath != bin || !reflect.DeepEqual(gotArgv, wantArgv) || !reflect.DeepEqual(gotEnv, wantEnv) {
				t.Fatalf("exec %s %q %q, want %s %q %q", gotPath, gotArgv, gotEnv, bin, wantArgv, wantEnv)
			}
		})
	}
}
