package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/canopy-iot/canopy/internal/wait"
)

// runFreePort prints a TCP port on 127.0.0.1 that the kernel reports free.
// Nothing holds it afterwards; run.sh starts a server on it at once.
func runFreePort(_ context.Context, args []string, stdout, stderr io.Writer) error {
	if err := parse(newFlagSet("free-port", stderr), args); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("free port: %w", err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	if err := ln.Close(); err != nil {
		return fmt.Errorf("free port: %w", err)
	}
	fmt.Fprintln(stdout, port)
	return nil
}

// runWaitListen waits until a socket listens on a TCP port. It reads the
// kernel's socket tables instead of connecting, so the server under test
// has seen no client when the measurement starts (the idle case measures
// the memory of a server no client has touched).
func runWaitListen(ctx context.Context, args []string, _, stderr io.Writer) error {
	fs := newFlagSet("wait-listen", stderr)
	port := fs.Int("port", 0, "TCP port (required)")
	pid := fs.Int("pid", 0, "fail at once if this process exits first")
	timeout := fs.Duration("timeout", 30*time.Second, "fail if the port is not listening by then")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *port <= 0 || *port > 65535 {
		return usageErrorf(fs, "-port is required (1-65535)")
	}

	var exited error
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	err := wait.Until(ctx, *timeout, func() error {
		if *pid > 0 {
			if err := running(*pid); err != nil {
				exited = err
				cancel()
				return err
			}
		}
		return listening(*port)
	})
	if exited != nil {
		return exited
	}
	return err
}

// running reports an error once the process has exited (gone, or a zombie
// its parent has not reaped yet).
func running(pid int) error {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("process %d exited", pid)
	}
	if err != nil {
		return err
	}
	// The state follows the command name, which is in parentheses and
	// may itself contain spaces or parentheses.
	_, rest, ok := strings.Cut(string(b[strings.LastIndexByte(string(b), ')')+1:]), " ")
	if ok && strings.HasPrefix(rest, "Z") {
		return fmt.Errorf("process %d exited", pid)
	}
	return nil
}

// tcpListen is the socket state LISTEN in /proc/net/tcp{,6}.
const tcpListen = "0A"

// listening reports an error unless some socket listens on port.
func listening(port int) error {
	for _, path := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		found, err := listensIn(path, port)
		if err != nil {
			return err
		}
		if found {
			return nil
		}
	}
	return fmt.Errorf("nothing listens on port %d", port)
}

func listensIn(path string, port int) (bool, error) {
	file, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) { // no IPv6 in this kernel
		return false, nil
	}
	if err != nil {
		return false, err
	}
	defer file.Close()
	sc := bufio.NewScanner(file)
	sc.Scan() // header
	for sc.Scan() {
		// "  0: 0100007F:1F90 00000000:0000 0A ...": slot, local
		// address:port in hex, remote address:port, state.
		fields := strings.Fields(sc.Text())
		if len(fields) < 4 || fields[3] != tcpListen {
			continue
		}
		_, hexPort, ok := strings.Cut(fields[1], ":")
		if !ok {
			continue
		}
		if p, err := strconv.ParseUint(hexPort, 16, 16); err == nil && int(p) == port {
			return true, nil
		}
	}
	return false, sc.Err()
}
