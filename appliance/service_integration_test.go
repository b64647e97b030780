//go:build linux

package appliance_test

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"golang.org/x/sys/unix"

	"github.com/canopy-iot/canopy/internal/proctest"
)

// envMDWEExec makes this test binary a launcher: it turns on the kernel's
// memory-deny-write-execute for itself (what MemoryDenyWriteExecute=yes
// enforces) and executes the binary the variable names, which inherits it.
const envMDWEExec = "CANOPY_TEST_MDWE_EXEC"

func TestMain(m *testing.M) {
	if bin := os.Getenv(envMDWEExec); bin != "" {
		os.Exit(execUnderMDWE(bin))
	}
	code := m.Run()
	proctest.Cleanup()
	os.Exit(code)
}

// execUnderMDWE returns only on failure: 3 when the kernel cannot, 1
// otherwise.
func execUnderMDWE(bin string) int {
	if err := unix.Prctl(unix.PR_SET_MDWE, unix.PR_MDWE_REFUSE_EXEC_GAIN, 0, 0, 0); err != nil {
		fmt.Fprintf(os.Stderr, "mdwe unsupported: PR_SET_MDWE: %v\n", err)
		return 3
	}
	// Check that it holds: a writable and executable mapping is refused.
	if mem, err := unix.Mmap(-1, 0, 4096, unix.PROT_READ|unix.PROT_WRITE|unix.PROT_EXEC, unix.MAP_PRIVATE|unix.MAP_ANON); err == nil {
		unix.Munmap(mem)
		fmt.Fprintln(os.Stderr, "PR_SET_MDWE did not refuse a writable executable mapping")
		return 1
	}
	env := os.Environ()
	for i, kv := range env {
		if strings.HasPrefix(kv, envMDWEExec+"=") {
			env = append(env[:i], env[i+1:]...)
			break
		}
	}
	err := unix.Exec(bin, append([]string{bin}, os.Args[1:]...), env)
	fmt.Fprintf(os.Stderr, "exec %s: %v\n", bin, err)
	return 1
}

var leafReady = regexp.MustCompile(`msg="leaf ready".* nats=(nats://\S+)`)

// TestIntegrationLeafUnderMemoryDenyWriteExecute runs the built leaf (NATS,
// MQTT and its bbolt store) with writable-executable memory refused, as
// the unit's MemoryDenyWriteExecute=yes has it: Go needs no such mapping.
func TestIntegrationLeafUnderMemoryDenyWriteExecute(t *testing.T) {
	bin := proctest.Build(t, "github.com/canopy-iot/canopy/cmd/canopy-leaf", "")
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	probe := exec.Command(self)
	probe.Env = append(os.Environ(), envMDWEExec+"=/bin/true")
	if out, err := probe.CombinedOutput(); err != nil {
		if strings.Contains(string(out), "mdwe unsupported") {
			t.Skipf("the kernel has no PR_SET_MDWE (Linux 6.3+): %s", out)
		}
		t.Fatalf("launcher: %v\n%s", err, out)
	}
	t.Setenv(envMDWEExec, bin)
	dir := t.TempDir()
	p := proctest.Start(t, self, dir, leafReady, "run", "--nats-listen", "127.0.0.1:0", "--mqtt-listen", "127.0.0.1:0", "--data-dir", filepath.Join(dir, "data"))
	nc, err := nats.Connect(p.Ready[1])
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	sub, err := nc.SubscribeSync("sensors.kitchen.temp")
	if err != nil {
		t.Fatal(err)
	}
	nc.Publish("sensors.kitchen.temp", []byte("21.5"))
	if m, err := sub.NextMsg(5 * time.Second); err != nil || string(m.Data) != "21.5" {
		t.Fatalf("round trip: %v %v", m, err)
	}
	if err := p.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := p.WaitExit(t, 10*time.Second); err != nil {
		t.Fatalf("exit after SIGTERM: %v", err)
	}
}

// TestIntegrationInstallNeedsRoot runs the built leaf as an unprivileged
// user: install and uninstall of the system are refused with a clear
// message, and install --root into a directory of the user's works.
func TestIntegrationInstallNeedsRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root, to run the binary as another user")
	}
	const nobody = 65534
	bin := proctest.Build(t, "github.com/canopy-iot/canopy/cmd/canopy-leaf", "")
	// A copy that user may run, in a directory it may enter.
	dir, err := os.MkdirTemp("", "canopy-nonroot")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	exe := filepath.Join(dir, "canopy-leaf")
	copyFile(t, bin, exe, 0o755)
	root := filepath.Join(dir, "root")
	if err := os.Mkdir(root, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(root, nobody, nobody); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) (int, string, string) {
		cmd := exec.Command(exe, args...)
		cmd.Dir = dir
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody, NoSetGroups: true}}
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return code, stdout.String(), stderr.String()
	}
	for _, cmd := range []string{"install", "uninstall"} {
		code, _, stderr := run(cmd)
		if want := "canopy-leaf: " + cmd + " needs root: run it with sudo\n"; code != 1 || stderr != want {
			t.Errorf("%s as nobody: exit %d, stderr %q, want 1 and %q", cmd, code, stderr, want)
		}
	}
	if code, stdout, stderr := run("install", "--root", root); code != 0 || !strings.Contains(stdout, "wrote "+root+"/etc/systemd/system/canopy-leaf.service\n") {
		t.Fatalf("install --root as nobody: exit %d\n%s%s", code, stdout, stderr)
	}
}

func copyFile(t *testing.T, from, to string, perm os.FileMode) {
	t.Helper()
	in, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, perm)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}
