//go:build unix

package systemd

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"testing"
	"time"
)

// listen opens a datagram socket at addr (a path, or "@name") for the
// service manager's side.
func listen(t *testing.T, addr string) *net.UnixConn {
	t.Helper()
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: addr, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func receive(t *testing.T, c *net.UnixConn) string {
	t.Helper()
	buf := make([]byte, 4096)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err := c.Read(buf)
	if err != nil {
		t.Fatalf("no notification: %v", err)
	}
	return string(buf[:n])
}

func TestNotify(t *testing.T) {
	addrs := map[string]string{"path": filepath.Join(t.TempDir(), "notify")}
	if runtime.GOOS == "linux" {
		addrs["abstract"] = fmt.Sprintf("@canopy-systemd-test-%d", os.Getpid())
	}
	for name, addr := range addrs {
		t.Run(name, func(t *testing.T) {
			c := listen(t, addr)
			t.Setenv(EnvNotifySocket, addr)
			for _, step := range []struct {
				send func() error
				want string
			}{
				{Ready, "READY=1"},
				{Watchdog, "WATCHDOG=1"},
				{func() error { return Notify("STATUS=serving\nREADY=1") }, "STATUS=serving\nREADY=1"},
				{Stopping, "STOPPING=1"},
			} {
				if err := step.send(); err != nil {
					t.Fatal(err)
				}
				if got := receive(t, c); got != step.want {
					t.Fatalf("got %q, want %q", got, step.want)
				}
			}
			if err := Reloading(); err != nil {
				t.Fatal(err)
			}
			want := regexp.MustCompile(`^RELOADING=1$`)
			if runtime.GOOS == "linux" {
				want = regexp.MustCompile(`^RELOADING=1\nMONOTONIC_USEC=[1-9][0-9]*$`)
			}
			if got := receive(t, c); !want.MatchString(got) {
				t.Fatalf("got %q, want %v", got, want)
			}
		})
	}
}

func TestNotifyWithoutSocket(t *testing.T) {
	t.Setenv(EnvNotifySocket, "")
	os.Unsetenv(EnvNotifySocket)
	for _, f := range []func() error{Ready, Watchdog, Stopping, Reloading} {
		if err := f(); err != nil {
			t.Fatalf("without %s: %v", EnvNotifySocket, err)
		}
	}
}

func TestNotifyErrors(t *testing.T) {
	t.Setenv(EnvNotifySocket, "vsock:2:1234")
	if err := Ready(); !errors.Is(err, ErrNotifyAddress) {
		t.Fatalf("vsock address: %v", err)
	}
	t.Setenv(EnvNotifySocket, filepath.Join(t.TempDir(), "nobody-listens"))
	if err := Ready(); err == nil {
		t.Fatal("a socket nobody listens on: no error")
	}
}

func TestWatchdogInterval(t *testing.T) {
	self := strconv.Itoa(os.Getpid())
	cases := []struct {
		usec, pid string
		want      time.Duration
		ok        bool
	}{
		{"", "", 0, false},
		{"30000000", "", 30 * time.Second, true},
		{"30000000", self, 30 * time.Second, true},
		{"30000000", "1", 0, false}, // another process's watchdog
		{"30000000", "pid", 0, false},
		{"100000", self, 100 * time.Millisecond, true},
		{"0", "", 0, false},
		{"-5", "", 0, false},
		{"thirty", "", 0, false},
		{"18446744073709551615", "", 0, false},
	}
	for _, c := range cases {
		t.Setenv(EnvWatchdogUsec, c.usec)
		t.Setenv(EnvWatchdogPID, c.pid)
		got, ok := WatchdogInterval()
		if got != c.want || ok != c.ok {
			t.Errorf("WATCHDOG_USEC=%q WATCHDOG_PID=%q: %v %v, want %v %v", c.usec, c.pid, got, ok, c.want, c.ok)
		}
	}
}
