package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/canopy-iot/canopy/appliance"
	"github.com/canopy-iot/canopy/internal/proctest"
	"github.com/canopy-iot/canopy/internal/testcert"
	"github.com/canopy-iot/canopy/internal/wait"
)

// validConfigs are the files of appliance/hubapp/testdata/hub that check-config
// accepts; every other file there must be refused with exit status 2.
var validConfigs = map[string]bool{"minimal.yaml": true, "full.yaml": true, "cluster.yaml": true, "off.yaml": true}

func TestCheckConfigExitStatus(t *testing.T) {
	files, err := filepath.Glob("../../appliance/hubapp/testdata/hub/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no test configurations: %v", err)
	}
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "tls"), 0o700); err != nil {
		t.Fatal(err)
	}
	testcert.Write(t, filepath.Join(dir, "tls"))
	for _, f := range files {
		abs, _ := filepath.Abs(f)
		name := filepath.Base(f)
		t.Run(name, func(t *testing.T) {
			t.Chdir(dir) // full.yaml names certificates under tls/
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), []string{"check-config", "--config", abs}, &stdout, &stderr)
			want := appliance.ExitUsage
			if validConfigs[name] {
				want = appliance.ExitOK
			}
			if code != want {
				t.Fatalf("exit status %d, want %d\nstdout: %s\nstderr: %s", code, want, &stdout, &stderr)
			}
			if want == appliance.ExitUsage && !strings.Contains(stderr.String(), "invalid configuration") {
				t.Fatalf("stderr does not explain the problem: %s", &stderr)
			}
			if want == appliance.ExitOK && !strings.Contains(stdout.String(), "configuration OK") {
				t.Fatalf("stdout: %s", &stdout)
			}
		})
	}
}

func TestCommandLine(t *testing.T) {
	cases := []struct {
		args       []string
		code       int
		stdout     string
		stderrPart string
	}{
		{args: []string{"version"}, code: appliance.ExitOK, stdout: "canopy-hub dev"},
		{args: []string{"bogus"}, code: appliance.ExitUsage, stderrPart: `unknown command "bogus"`},
		{args: []string{"--no-such-flag"}, code: appliance.ExitUsage, stderrPart: "unknown flag: --no-such-flag"},
		{args: []string{"check-config", "--config", "/nonexistent/hub.yaml"}, code: appliance.ExitUsage, stderrPart: "no such file or directory"},
		{args: []string{"check-config", "--listen", "127.0.0.1:99999"}, code: appliance.ExitUsage, stderrPart: `flag --listen: listen: port "99999" out of range`},
		{args: []string{"run", "--config", "/nonexistent/hub.yaml"}, code: appliance.ExitUsage, stderrPart: "no such file or directory"},
	}
	for _, c := range cases {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), c.args, &stdout, &stderr)
			if code != c.code {
				t.Fatalf("exit status %d, want %d\nstderr: %s", code, c.code, &stderr)
			}
			if !strings.HasPrefix(stdout.String(), c.stdout) {
				t.Fatalf("stdout = %q, want prefix %q", &stdout, c.stdout)
			}
			if !strings.Contains(stderr.String(), c.stderrPart) {
				t.Fatalf("stderr = %q, want it to contain %q", &stderr, c.stderrPart)
			}
		})
	}
}

// testVersion is stamped into the test binary through -ldflags.
const testVersion = "9.9.9-test"

func buildBinary(t *testing.T) string {
	return proctest.Build(t, ".", "-X github.com/canopy-iot/canopy/internal/version.Version="+testVersion)
}

func TestIntegrationVersionFromLdflags(t *testing.T) {
	out, err := exec.Command(buildBinary(t), "version").Output()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(out), "canopy-hub "+testVersion+" (") {
		t.Fatalf("version printed %q, want the -ldflags version %s", out, testVersion)
	}
}

func TestMain(m *testing.M) {
	code := m.Run()
	proctest.Cleanup()
	os.Exit(code)
}

// hubReady matches the log line that names the client URL.
var hubReady = regexp.MustCompile(`msg="hub ready".* client=(nats://\S+)`)

// TestIntegrationBinaryZeroConfig runs the built binary with no
// configuration file (only kernel-picked ports, so it can run beside other
// tests), serves a client, and stops cleanly on SIGTERM.
func TestIntegrationBinaryZeroConfig(t *testing.T) {
	bin := buildBinary(t)
	dir := t.TempDir()
	p := proctest.Start(t, bin, dir, hubReady, "--listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0", "--leafnodes-listen", "127.0.0.1:0", "--dashboard-listen", "127.0.0.1:0")

	nc, err := nats.Connect(p.Ready[1])
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	sub, err := nc.SubscribeSync("hello")
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Publish("hello", []byte("world")); err != nil {
		t.Fatal(err)
	}
	if msg, err := sub.NextMsg(5 * time.Second); err != nil || string(msg.Data) != "world" {
		t.Fatalf("round trip through the binary: %v %v", msg, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "canopy-data", "jetstream")); err != nil {
		t.Fatalf("zero config did not put JetStream in ./canopy-data: %v", err)
	}

	if err := p.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := p.WaitExit(t, 5*time.Second); err != nil {
		t.Fatalf("exit after SIGTERM: %v", err)
	}
}

// TestIntegrationBinaryReloadOnSIGHUP edits the configuration of a running
// binary and signals it: the new user can connect without a restart.
func TestIntegrationBinaryReloadOnSIGHUP(t *testing.T) {
	bin := buildBinary(t)
	dir := t.TempDir()
	file := filepath.Join(dir, "hub.yaml")
	write := func(users string) {
		t.Helper()
		conf := "version: 1\nlisten: 127.0.0.1:0\nhttp_listen: \"off\"\nleafnodes:\n  listen: \"off\"\n" +
			"jetstream:\n  enabled: false\naccounts:\n  acme:\n    users:\n" + users
		if err := os.WriteFile(file, []byte(conf), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("      - {user: alice, password: a-secret}\n")
	p := proctest.Start(t, bin, dir, hubReady, "--config", file)
	url := p.Ready[1]
	if _, err := nats.Connect(url, nats.UserInfo("bob", "b-secret")); err == nil {
		t.Fatal("bob connected before being configured")
	}

	write("      - {user: alice, password: a-secret}\n      - {user: bob, password: b-secret}\n")
	if err := p.Cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	wait.For(t, 10*time.Second, func() error {
		nc, err := nats.Connect(url, nats.UserInfo("bob", "b-secret"))
		if err != nil {
			return err
		}
		nc.Close()
		return nil
	})
}
