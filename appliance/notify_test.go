//go:build linux

package appliance_test

import (
	"bufio"
	"context"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/canopy-iot/canopy/appliance"
	"github.com/canopy-iot/canopy/appliance/leafapp"
	"github.com/canopy-iot/canopy/internal/testlog"
	"github.com/canopy-iot/canopy/systemd"
)

// serviceManager is systemd's side of sd_notify: a datagram socket in a
// temporary directory, named by NOTIFY_SOCKET for the code under test.
type serviceManager struct {
	conn *net.UnixConn
	msgs chan string
}

func newServiceManager(t *testing.T) *serviceManager {
	t.Helper()
	addr := filepath.Join(t.TempDir(), "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: addr, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv(systemd.EnvNotifySocket, addr)
	m := &serviceManager{conn: conn, msgs: make(chan string, 1000)}
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				close(m.msgs)
				return
			}
			m.msgs <- string(buf[:n])
		}
	}()
	t.Cleanup(func() { conn.Close() })
	return m
}

// next returns the next message other than WATCHDOG=1 (those are
// counted), failing the test after timeout.
func (m *serviceManager) next(t *testing.T, timeout time.Duration, watchdogs *int) string {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case msg := <-m.msgs:
			if msg == "WATCHDOG=1" {
				*watchdogs++
				continue
			}
			return msg
		case <-deadline:
			t.Fatalf("no notification within %v", timeout)
			return ""
		}
	}
}

// TestRunNotifiesSystemd runs the real leaf through the shared run command
// as systemd would, with a notify socket and a 200ms watchdog: READY=1
// once the leaf serves, WATCHDOG=1 every 100ms, RELOADING=1 and READY=1
// around a SIGHUP, STOPPING=1 on shutdown, and nothing after exit.
func TestRunNotifiesSystemd(t *testing.T) {
	sm := newServiceManager(t)
	t.Setenv(systemd.EnvWatchdogUsec, "200000")
	t.Setenv(systemd.EnvWatchdogPID, strconv.Itoa(os.Getpid()))
	logs, _ := testlog.New(0)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	exited := make(chan int, 1)
	args := []string{"run", "--nats-listen", "127.0.0.1:0", "--mqtt-listen", "127.0.0.1:0", "--data-dir", t.TempDir()}
	go func() { exited <- appliance.Main(ctx, leafapp.Program, args, &strings.Builder{}, logs) }()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("log:\n%s", logs)
		}
	})

	watchdogs := 0
	if msg := sm.next(t, 20*time.Second, &watchdogs); msg != "READY=1" {
		t.Fatalf("first notification %q, want READY=1", msg)
	}
	// READY=1 came after the leaf served: its NATS listener answers.
	m := regexp.MustCompile(`msg="leaf ready".* nats=nats://(\S+)`).FindStringSubmatch(logs.String())
	if m == nil {
		t.Fatalf("READY=1 before the leaf was ready; log:\n%s", logs)
	}
	nc, err := net.DialTimeout("tcp", m[1], 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	if line, err := bufio.NewReader(nc).ReadString('\n'); err != nil || !strings.HasPrefix(line, "INFO ") {
		t.Fatalf("leaf after READY=1: %q %v", line, err)
	}
	nc.Close()

	// The watchdog is fed while the leaf runs.
	for deadline := time.After(5 * time.Second); watchdogs < 3; {
		select {
		case msg := <-sm.msgs:
			if msg != "WATCHDOG=1" {
				t.Fatalf("unexpected %q while waiting for WATCHDOG=1", msg)
			}
			watchdogs++
		case <-deadline:
			t.Fatalf("%d WATCHDOG=1 within 5s, want 3 or more (every 100ms)", watchdogs)
		}
	}

	// SIGHUP: the handler is installed (the leaf is ready), so the signal
	// reaches the run loop rather than ending the test process.
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	if msg := sm.next(t, 5*time.Second, &watchdogs); !regexp.MustCompile(`^RELOADING=1\nMONOTONIC_USEC=\d+$`).MatchString(msg) {
		t.Fatalf("after SIGHUP: %q, want RELOADING=1 with MONOTONIC_USEC", msg)
	}
	if msg := sm.next(t, 5*time.Second, &watchdogs); msg != "READY=1" {
		t.Fatalf("after the reload: %q, want READY=1", msg)
	}

	cancel()
	if msg := sm.next(t, 5*time.Second, &watchdogs); msg != "STOPPING=1" {
		t.Fatalf("on shutdown: %q, want STOPPING=1", msg)
	}
	select {
	case code := <-exited:
		if code != appliance.ExitOK {
			t.Fatalf("exit status %d; log:\n%s", code, logs)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run did not return within 10s of cancel")
	}
	select {
	case msg := <-sm.msgs:
		t.Fatalf("%q after run returned", msg)
	case <-time.After(300 * time.Millisecond):
	}
}

// A leaf that cannot start never says READY=1, and the watchdog stops with
// it.
func TestRunFailureIsNotReady(t *testing.T) {
	sm := newServiceManager(t)
	t.Setenv(systemd.EnvWatchdogUsec, "100000")
	t.Setenv(systemd.EnvWatchdogPID, "")
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	logs, _ := testlog.New(0)
	args := []string{"run", "--nats-listen", busy.Addr().String(), "--mqtt-enabled", "false", "--data-dir", t.TempDir()}
	if code := appliance.Main(context.Background(), leafapp.Program, args, &strings.Builder{}, logs); code != appliance.ExitFailure {
		t.Fatalf("exit status %d with the port taken, want %d; log:\n%s", code, appliance.ExitFailure, logs)
	}
	for {
		select {
		case msg := <-sm.msgs:
			if msg != "WATCHDOG=1" {
				t.Fatalf("%q from a leaf that failed to start", msg)
			}
		case <-time.After(300 * time.Millisecond):
			return
		}
	}
}
