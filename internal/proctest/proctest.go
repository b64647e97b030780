// Package proctest builds Canopy's binaries and runs them as real
// processes for tests: start, wait for the log line that says the process
// is ready, signal, and collect the exit status. Only tests import it.
package proctest

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

var (
	buildMu sync.Mutex
	built   = map[string]string{} // package+ldflags → binary
	tmpDir  string
)

// Build compiles the package (an import path or a ./relative directory)
// once per test process, with the given -ldflags, and returns the
// binary's path. Cleanup removes every binary built.
func Build(t testing.TB, pkg, ldflags string) string {
	t.Helper()
	buildMu.Lock()
	defer buildMu.Unlock()
	key := pkg + "\x00" + ldflags
	if bin, ok := built[key]; ok {
		return bin
	}
	if tmpDir == "" {
		dir, err := os.MkdirTemp("", "canopy-proctest")
		if err != nil {
			t.Fatal(err)
		}
		tmpDir = dir
	}
	bin := filepath.Join(tmpDir, fmt.Sprintf("bin%d-%s", len(built), filepath.Base(pkg)))
	out, err := exec.Command("go", "build", "-ldflags", ldflags, "-o", bin, pkg).CombinedOutput()
	if err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, out)
	}
	built[key] = bin
	return bin
}

// Cleanup removes the binaries built by Build; call it from TestMain.
func Cleanup() {
	buildMu.Lock()
	defer buildMu.Unlock()
	if tmpDir != "" {
		os.RemoveAll(tmpDir)
	}
}

// Process is a binary running under a test.
type Process struct {
	Cmd *exec.Cmd
	// Ready holds the submatches of the ready pattern's first match.
	Ready []string
	// Exited receives the result of Cmd.Wait once.
	Exited chan error

	mu    sync.Mutex
	lines []string // standard error so far
}

// Start runs bin with args in dir and waits until a line of its standard
// error matches ready. The process is killed when the test ends.
func Start(t testing.TB, bin, dir string, ready *regexp.Regexp, args ...string) *Process {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	return StartCommand(t, cmd, ready, 30*time.Second)
}

// StartCommand is Start for a command prepared by the caller (an
// emulator in front of the binary, say), waiting up to timeout.
func StartCommand(t testing.TB, cmd *exec.Cmd, ready *regexp.Regexp, timeout time.Duration) *Process {
	t.Helper()
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill() })
	p := &Process{Cmd: cmd, Exited: make(chan error, 1)}
	matched := make(chan []string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			p.mu.Lock()
			p.lines = append(p.lines, sc.Text())
			p.mu.Unlock()
			if m := ready.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case matched <- m:
				default:
				}
			}
		}
		io.Copy(io.Discard, stderr)
		p.Exited <- cmd.Wait()
	}()
	name := filepath.Base(cmd.Path)
	select {
	case p.Ready = <-matched:
	case err := <-p.Exited:
		t.Fatalf("%s exited before it was ready: %v\n%s", name, err, p.Log())
	case <-time.After(timeout):
		t.Fatalf("%s not ready within %v:\n%s", name, timeout, p.Log())
	}
	return p
}

// Log is the process's standard error so far.
func (p *Process) Log() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.lines, "\n")
}

// WaitExit waits up to timeout for the process to exit and returns its
// Wait error (nil for exit status 0).
func (p *Process) WaitExit(t testing.TB, timeout time.Duration) error {
	t.Helper()
	select {
	case err := <-p.Exited:
		return err
	case <-time.After(timeout):
		t.Fatalf("process still running after %v", timeout)
		return nil
	}
}
