package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/nats-io/nats.go"
)

// runIdle opens K client connections, each with one subscription on its
// own subject, and reports the server's resident memory once the server
// has processed every one of them. With K = 0 it only reads the memory of
// the server as started.
func runIdle(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("idle", stderr)
	var c common
	c.flags(fs)
	pid := fs.Int("pid", 0, "process ID of the server (required)")
	clients := fs.Int("clients", 1000, "idle client connections to open")
	if err := parse(fs, args); err != nil {
		return err
	}
	switch {
	case *pid <= 0:
		return usageErrorf(fs, "-pid is required")
	case *clients < 0:
		return usageErrorf(fs, "-clients %d: must not be negative", *clients)
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	f := newFailures()

	conns := make([]*nats.Conn, 0, *clients)
	defer func() { closeAll(conns) }()
	for i := range *clients {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("after %d clients: %w", i, err)
		}
		name := fmt.Sprintf("idle %d", i+1)
		nc, err := connect(c.url, name, f)
		if err != nil {
			return err
		}
		conns = append(conns, nc)
		if _, err := nc.Subscribe(fmt.Sprintf("bench.idle.%d", i), func(*nats.Msg) {}); err != nil {
			return fmt.Errorf("%s: subscribe: %w", name, err)
		}
	}
	// Each PONG comes after the server has processed that client's SUB.
	for i, nc := range conns {
		if err := nc.FlushTimeout(flushTimeout); err != nil {
			return fmt.Errorf("idle %d: flush: %w", i+1, err)
		}
	}
	select {
	case err := <-f:
		return err
	default:
	}

	st, err := readProcStatus(*pid, "VmRSS", "VmHWM")
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "idle clients=%d rss_kib=%d hwm_kib=%d\n", *clients, st["VmRSS"], st["VmHWM"])
	return nil
}

// readProcStatus returns the named fields, in KiB, of /proc/<pid>/status.
func readProcStatus(pid int, keys ...string) (map[string]int64, error) {
	path := fmt.Sprintf("/proc/%d/status", pid)
	file, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("server memory: %w", err)
	}
	defer file.Close()
	want := make(map[string]bool, len(keys))
	for _, k := range keys {
		want[k] = true
	}
	got := make(map[string]int64, len(keys))
	sc := bufio.NewScanner(file)
	for sc.Scan() {
		// Lines look like "VmRSS:	   12345 kB".
		key, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok || !want[key] {
			continue
		}
		fields := strings.Fields(rest)
		if len(fields) != 2 || fields[1] != "kB" {
			return nil, fmt.Errorf("%s: unexpected line %q", path, sc.Text())
		}
		n, err := strconv.ParseInt(fields[0], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%s: %s: %w", path, key, err)
		}
		got[key] = n
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	for _, k := range keys {
		if _, ok := got[k]; !ok {
			return nil, fmt.Errorf("%s: no %s line", path, k)
		}
	}
	return got, nil
}
