package store

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Some tests need a second process: the test binary re-executes itself
// with helperEnv naming the part to play.
const (
	helperEnv     = "CANOPY_STORE_TEST_HELPER"
	helperPathEnv = "CANOPY_STORE_TEST_PATH"
	helperTagEnv  = "CANOPY_STORE_TEST_TAG"
)

// helpers are the parts a re-executed test binary can play, by name; each
// gets the store path and a tag from the environment.
var helpers = map[string]func(path, tag string) int{
	"hold":   func(path, _ string) int { return helperHold(path) },
	"append": helperAppend,
}

func TestMain(m *testing.M) {
	role := os.Getenv(helperEnv)
	if role == "" {
		os.Exit(m.Run())
	}
	h, ok := helpers[role]
	if !ok {
		fmt.Fprintf(os.Stderr, "unknown helper %q\n", role)
		os.Exit(2)
	}
	os.Exit(h(os.Getenv(helperPathEnv), os.Getenv(helperTagEnv)))
}

// startHelper starts this test binary as helper role and returns it with
// its stdout, once it has printed "ready".
func startHelper(t *testing.T, role, path, tag string) (*exec.Cmd, io.WriteCloser, *bufio.Reader) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"="+role, helperPathEnv+"="+path, helperTagEnv+"="+tag)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	r := bufio.NewReader(out)
	line, err := r.ReadString('\n')
	if err != nil || line != "ready\n" {
		t.Fatalf("helper %s: read %q, %v", role, line, err)
	}
	return cmd, stdin, r
}

// helperHold keeps the store open until stdin closes.
func helperHold(path string) int {
	s, err := Open(path, Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println("ready")
	_, _ = io.Copy(io.Discard, os.Stdin)
	if err := s.Close(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

func TestLockedByAnotherProcess(t *testing.T) {
	path := filepath.Join(t.TempDir(), "store.db")
	cmd, stdin, _ := startHelper(t, "hold", path, "")

	start := time.Now()
	_, err := Open(path, Options{OpenTimeout: 300 * time.Millisecond})
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("Open of a held file: %v, want ErrLocked", err)
	}
	if !strings.Contains(err.Error(), path) {
		t.Errorf("error %q does not name the file", err)
	}
	// bbolt polls the lock every 50ms and stops one poll early.
	if d := time.Since(start); d < 200*time.Millisecond || d > 5*time.Second {
		t.Errorf("Open gave up after %v, OpenTimeout is 300ms", d)
	}
	t.Log(err)

	// Once the other process is gone, the file opens.
	stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("helper: %v", err)
	}
	s := openStore(t, path, Options{OpenTimeout: 300 * time.Millisecond})
	_ = s
}

// The power-cut helper appends from several goroutines (so that commits
// are shared) and prints "a <seq> <writer> <n>" for each append that
// returned, and "k <seq>" after each acknowledgement that returned, until
// it is killed.
const powerCutWriters = 8

func powerCutPayload(tag string, w, n int) []byte {
	// Sizes vary from a few bytes to a few pages, so that commits write
	// overflow pages too.
	size := (n*7919 + w*104729) % 9000
	p := fmt.Appendf(nil, "%s/%d/%d/", tag, w, n)
	for len(p) < size {
		p = append(p, byte('a'+(len(p)+n)%26))
	}
	return p
}

func helperAppend(path, tag string) int {
	s, err := Open(path, Options{OpenTimeout: 5 * time.Second})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	l, err := s.Log("telemetry", Limits{})
	if err == nil {
		err = l.Consumer("uplink")
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	var (
		mu      sync.Mutex
		out     = os.Stdout // unbuffered: a printed line left the process
		highest atomic.Uint64
	)
	say := func(format string, args ...any) {
		mu.Lock()
		fmt.Fprintf(out, format, args...)
		mu.Unlock()
	}
	say("ready\n")
	for w := range powerCutWriters {
		go func() {
			for n := 0; ; n++ {
				seq, err := l.Append(powerCutPayload(tag, w, n))
				if err != nil {
					fmt.Fprintln(os.Stderr, err)
					os.Exit(1)
				}
				say("a %d %d %d\n", seq, w, n)
				for h := highest.Load(); seq > h && !highest.CompareAndSwap(h, seq); h = highest.Load() {
				}
			}
		}()
	}
	// The forwarder: acknowledge all but the newest records now and then.
	for {
		time.Sleep(3 * time.Millisecond)
		if h := highest.Load(); h > 50 {
			if err := l.Ack("uplink", h-50); err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
			say("k %d\n", h-50)
		}
	}
}

// TestPowerCut kills a process that appends and acknowledges at random
// moments, several times on the same file, and checks after each kill that
// every append and acknowledgement the process reported is in the file.
// SIGKILL tests the commit protocol; what the disk does with a real power
// cut rests on fsync, which bbolt calls before answering.
func TestPowerCut(t *testing.T) {
	if testing.Short() {
		t.Skip("kills subprocesses")
	}
	path := filepath.Join(t.TempDir(), "store.db")
	type appended struct {
		tag  string
		w, n int
	}
	want := map[uint64]appended{}
	var acked uint64
	for round := range 6 {
		tag := fmt.Sprintf("r%d", round)
		cmd, _, out := startHelper(t, "append", path, tag)
		lines := make(chan []byte, 1)
		go func() {
			all, _ := io.ReadAll(out)
			lines <- all
		}()
		time.Sleep(time.Duration(20+rand.IntN(200)) * time.Millisecond)
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		var nAppends, nAcks int
		for line := range bytes.Lines(<-lines) {
			var seq uint64
			var a appended
			if _, err := fmt.Sscanf(string(line), "a %d %d %d\n", &seq, &a.w, &a.n); err == nil {
				a.tag = tag
				if prev, dup := want[seq]; dup {
					t.Fatalf("sequence %d handed out twice: %+v and %+v", seq, prev, a)
				}
				want[seq] = a
				nAppends++
			} else if _, err := fmt.Sscanf(string(line), "k %d\n", &seq); err == nil {
				acked = max(acked, seq)
				nAcks++
			} else if len(line) > 0 && line[len(line)-1] == '\n' {
				t.Fatalf("helper printed %q", line)
			}
		}
		if err := verifyFile(path); err != nil {
			t.Fatalf("round %d: file after kill: %v", round, err)
		}
		s := openStore(t, path, quiet(Options{}))
		l := openLog(t, s, "telemetry", Limits{})
		st := l.Stats()
		t.Logf("round %d: %d appends and %d acks reported before the kill; log %+v", round, nAppends, nAcks, st)
		if got := l.Acked("uplink"); got < acked {
			t.Errorf("round %d: uplink acknowledged %d, the process reported %d", round, got, acked)
		}
		recs := readAll(t, l)
		for seq, a := range want {
			if seq <= l.Acked("uplink") {
				continue // acknowledged, may be deleted
			}
			if p := powerCutPayload(a.tag, a.w, a.n); !bytes.Equal(recs[seq], p) {
				t.Fatalf("round %d: record %d = %.40q…, want %.40q…", round, seq, recs[seq], p)
			}
			if seq > st.LastSeq {
				t.Errorf("round %d: record %d beyond last sequence %d", round, seq, st.LastSeq)
			}
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if len(want) == 0 {
		t.Fatal("no append was reported")
	}
}
