// Command fwbench measures firmware delivery (bench/firmware.sh): one
// artifact rolled out from one hub to N leaves at once, and reports the
// total time, the hub's egress and the leaves' memory while they download.
//
//	fwbench [-leaves N] [-size S] [-timeout D] [-keep]
//
// It runs, on loopback:
//
//   - canopy-hub in operator mode in this process (a fresh key directory,
//     JetStream in a temporary directory, one tenant "bench" with its
//     firmware assets), as in the leaf package's integration tests;
//   - N canopy-leaf processes, built once from ./cmd/canopy-leaf (run it
//     from the module's root), each with its own data directory, device
//     credentials (dev-01 …) and a firmware agent polling every second
//     with a file installer for the firmware "blob".
//
// Once every leaf is linked (N connections in the hub's /leafz), it reads
// their idle resident memory, publishes a random artifact of -size bytes
// as blob 1.0.0 and creates a rollout of it to every device at 100%. From
// then on it samples every leaf's VmRSS (/proc/PID/status) every 200 ms,
// keeping each one's maximum, until the hub's fw-status says every device
// applied it. It then checks every installed file's SHA-256.
//
// Hub egress is the difference of nats-server's out_bytes (/varz) across
// the rollout: everything the hub sent to anyone, of which the leaves'
// downloads are nearly all; the leaf connections' own out_bytes (/leafz)
// are printed too. The time runs from just before the rollout is created
// to the first status poll (every 200 ms) that finds the last device
// applied; it is split at the first poll that finds a device past
// pending and the first that finds every byte fetched (the devices'
// own fw-status reports, so as late as they report). The leaves read
// their desired firmware every second (firmware.poll: 1s), so up to a
// second of it is waiting for the poll.
//
// Results go to stdout as a markdown table; progress to stderr. A run
// that fails (a device reporting failed, a leaf exiting, the timeout)
// exits 1 and keeps the temporary directory with every leaf's log.
package main

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/canopy-iot/canopy/firmware"
	"github.com/canopy-iot/canopy/hub"
	"github.com/canopy-iot/canopy/hub/fleet"
	"github.com/canopy-iot/canopy/internal/config"
)

func main() {
	leaves := flag.Int("leaves", 20, "number of canopy-leaf processes")
	sizeFlag := flag.String("size", "50MB", "artifact size (bytes or a unit: 50MB, 64MiB)")
	timeout := flag.Duration("timeout", 10*time.Minute, "give up when the rollout is not applied everywhere by then")
	keep := flag.Bool("keep", false, "keep the temporary directory (always kept on failure)")
	flag.Parse()
	size, err := config.ParseSize(*sizeFlag)
	if err != nil || size <= 0 || *leaves < 1 {
		fmt.Fprintf(os.Stderr, "fwbench: bad -size or -leaves (%v)\n", err)
		os.Exit(2)
	}
	tmp, err := os.MkdirTemp("", "fwbench-")
	if err != nil {
		fatal(err)
	}
	b := &bench{tmp: tmp, n: *leaves, size: int64(size), timeout: *timeout}
	err = b.run()
	b.stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "fwbench: %v\nfwbench: leaf logs kept in %s\n", err, tmp)
		os.Exit(1)
	}
	if *keep {
		logf("kept %s", tmp)
	} else {
		os.RemoveAll(tmp)
	}
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s fwbench: %s\n", time.Now().Format("15:04:05.000"), fmt.Sprintf(format, args...))
}

func fatal(err error) {
	fmt.Fprintf(os.Stderr, "fwbench: %v\n", err)
	os.Exit(1)
}

type leafProc struct {
	name, dir, path string
	cmd             *exec.Cmd
	done            chan struct{}
	err             error
	idle, max       int64 // KiB
}

type bench struct {
	tmp     string
	n       int
	size    int64
	timeout time.Duration

	cancelHub context.CancelFunc
	hubDone   chan error
	procs     []*leafProc
}

func (b *bench) run() error {
	// The hub, in this process.
	keys, err := fleet.Init(filepath.Join(b.tmp, "keys"), nil)
	if err != nil {
		return fmt.Errorf("fleet.Init: %w", err)
	}
	h, err := hub.New(hub.Config{
		Listen:     "127.0.0.1:0",
		HTTPListen: "127.0.0.1:0",
		LeafNodes:  hub.LeafNodes{Listen: "127.0.0.1:0"},
		JetStream:  hub.JetStream{StoreDir: filepath.Join(b.tmp, "hub-js")},
		Operator:   hub.Operator{KeyDir: keys.Dir(), EnrollListen: hub.Off},
	}, slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	if err != nil {
		return fmt.Errorf("hub.New: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	b.cancelHub, b.hubDone = cancel, make(chan error, 1)
	go func() { b.hubDone <- h.Run(ctx) }()
	select {
	case <-h.Ready():
	case err := <-b.hubDone:
		b.hubDone <- err
		return fmt.Errorf("hub stopped before it was ready: %v", err)
	case <-time.After(30 * time.Second):
		return errors.New("hub not ready after 30s")
	}
	admin := hub.NewAdmin(h.ClientURL(), nil, keys)
	_, accountJWT, err := keys.AddTenant("bench", fleet.DefaultLimits())
	if err != nil {
		return fmt.Errorf("add tenant: %w", err)
	}
	if _, err := admin.PushAccount(accountJWT); err != nil {
		return fmt.Errorf("push tenant: %w", err)
	}
	bg := context.Background()
	if err := admin.EnsureTenantAssets(bg, "bench", 1); err != nil {
		return fmt.Errorf("tenant assets: %w", err)
	}
	tenant, err := keys.Tenant("bench")
	if err != nil {
		return err
	}
	monitor := h.MonitorURL()

	// canopy-leaf, built the way the other benchmarks build it.
	bin := filepath.Join(b.tmp, "canopy-leaf")
	logf("building canopy-leaf")
	build := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", bin, "./cmd/canopy-leaf")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		return fmt.Errorf("go build ./cmd/canopy-leaf (run fwbench from the module's root): %w", err)
	}

	// The leaves' configurations, checked once.
	for i := 1; i <= b.n; i++ {
		name := fmt.Sprintf("dev-%02d", i)
		dir := filepath.Join(b.tmp, name)
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return err
		}
		creds, err := keys.AddDevice("bench", name)
		if err != nil {
			return fmt.Errorf("add device %s: %w", name, err)
		}
		if err := os.WriteFile(filepath.Join(dir, "device.creds"), creds, 0o600); err != nil {
			return err
		}
		p := &leafProc{name: name, dir: dir, path: filepath.Join(dir, "blob.bin"), done: make(chan struct{})}
		conf := fmt.Sprintf(`version: 1
data_dir: %q
nats:
  listen: 127.0.0.1:0
mqtt:
  enabled: false
uplink:
  urls: [%q]
  credentials: %q
firmware:
  enabled: true
  trusted_keys: [%q]
  poll: 1s
  installers:
    blob:
      type: file
      path: %q
`, filepath.Join(dir, "data"), h.LeafNodeURL(), filepath.Join(dir, "device.creds"), tenant.FirmwareKey, p.path)
		if err := os.WriteFile(filepath.Join(dir, "leaf.yaml"), []byte(conf), 0o600); err != nil {
			return err
		}
		if i == 1 {
			if out, err := exec.Command(bin, "check-config", "--config", filepath.Join(dir, "leaf.yaml")).CombinedOutput(); err != nil {
				return fmt.Errorf("check-config: %v\n%s", err, out)
			}
		}
		b.procs = append(b.procs, p)
	}

	logf("starting %d leaves", b.n)
	for _, p := range b.procs {
		logFile, err := os.Create(filepath.Join(p.dir, "leaf.log"))
		if err != nil {
			return err
		}
		p.cmd = exec.Command(bin, "run", "--config", filepath.Join(p.dir, "leaf.yaml"))
		p.cmd.Stdout, p.cmd.Stderr = logFile, logFile
		if err := p.cmd.Start(); err != nil {
			logFile.Close()
			return fmt.Errorf("start %s: %w", p.name, err)
		}
		go func() {
			p.err = p.cmd.Wait()
			logFile.Close()
			close(p.done)
		}()
	}

	// Every leaf linked, then settled: their idle memory.
	deadline := time.Now().Add(60 * time.Second)
	for {
		lz, err := leafz(monitor)
		if err == nil && len(lz.Leafs) >= b.n {
			break
		}
		if err := b.exited(); err != nil {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("only %d of %d leaves linked after 60s (/leafz: %v)", len(lz.Leafs), b.n, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	logf("all %d leaves linked; letting them settle for 5s", b.n)
	time.Sleep(5 * time.Second)
	for _, p := range b.procs {
		if p.idle, err = rssKiB(p.cmd.Process.Pid); err != nil {
			return fmt.Errorf("%s: %w", p.name, err)
		}
	}
	hubIdle, _ := rssKiB(os.Getpid())

	// The artifact, streamed from a seeded generator: neither this process
	// nor the hub's publisher holds it whole.
	logf("publishing a %d-byte artifact", b.size)
	sum := sha256.New()
	src := io.TeeReader(io.LimitReader(chachaReader{rand.NewChaCha8([32]byte{'f', 'w'})}, b.size), sum)
	pubStart := time.Now()
	if _, err := admin.PublishFirmware(bg, "bench", hub.FirmwareMeta{Name: "blob", Version: "1.0.0", Platform: "any"}, src); err != nil {
		return fmt.Errorf("publish: %w", err)
	}
	pubTime := time.Since(pubStart)
	want := sum.Sum(nil)
	signed, _, err := admin.FirmwareManifest(bg, "bench", "blob", "1.0.0", "any")
	if err != nil {
		return fmt.Errorf("manifest: %w", err)
	}

	// Sampling, from just before the rollout until the end.
	stopSampling := make(chan struct{})
	var wg sync.WaitGroup
	var hubMax int64
	wg.Go(func() {
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			for _, p := range b.procs {
				if kib, err := rssKiB(p.cmd.Process.Pid); err == nil {
					p.max = max(p.max, kib)
				}
			}
			if kib, err := rssKiB(os.Getpid()); err == nil {
				hubMax = max(hubMax, kib)
			}
			select {
			case <-stopSampling:
				return
			case <-t.C:
			}
		}
	})
	v0, err := varz(monitor)
	if err != nil {
		return err
	}
	l0, _ := leafz(monitor)

	logf("creating the rollout")
	start := time.Now()
	r, err := admin.CreateRollout(bg, "bench", hub.RolloutSpec{Manifest: signed, Target: "all", Percent: 100, Threshold: hub.DefaultRolloutThreshold})
	if err != nil {
		close(stopSampling)
		return fmt.Errorf("create rollout: %w", err)
	}
	var elapsed, firstSeen, allFetched time.Duration
	var fetched int64
	lastReport := time.Now()
	for {
		st, err := admin.FirmwareStatuses(bg, "bench")
		if err == nil {
			applied, sofar := 0, int64(0)
			var progress []string
			for _, p := range b.procs {
				s := st[p.name]
				if s.Rollout != r.ID {
					progress = append(progress, "-")
					continue
				}
				sofar += s.Bytes
				if firstSeen == 0 && s.State != firmware.StatePending {
					firstSeen = time.Since(start)
				}
				switch s.State {
				case firmware.StateApplied:
					applied++
				case firmware.StateFailed:
					close(stopSampling)
					return fmt.Errorf("%s failed: %s", p.name, s.Reason)
				}
				progress = append(progress, strconv.Itoa(s.Progress))
			}
			if allFetched == 0 && sofar >= int64(b.n)*b.size {
				allFetched = time.Since(start)
			}
			if applied == b.n {
				elapsed = time.Since(start)
				allFetched = cmp.Or(allFetched, elapsed)
				break
			}
			if time.Since(lastReport) >= 5*time.Second {
				lastReport = time.Now()
				logf("%s: %d/%d applied, %.0f MB fetched, progress %% %s", time.Since(start).Round(time.Second), applied, b.n, float64(sofar)/1e6, strings.Join(progress, " "))
			}
		}
		if err := b.exited(); err != nil {
			close(stopSampling)
			return err
		}
		if time.Since(start) > b.timeout {
			close(stopSampling)
			return fmt.Errorf("not applied everywhere after %s", b.timeout)
		}
		time.Sleep(200 * time.Millisecond)
	}
	close(stopSampling)
	wg.Wait()
	v1, err := varz(monitor)
	if err != nil {
		return err
	}
	l1, _ := leafz(monitor)
	if st, err := admin.FirmwareStatuses(bg, "bench"); err == nil {
		for _, p := range b.procs {
			fetched += st[p.name].Bytes
		}
	}

	// What was installed is the artifact.
	for _, p := range b.procs {
		f, err := os.Open(p.path)
		if err != nil {
			return fmt.Errorf("%s: %w", p.name, err)
		}
		h := sha256.New()
		n, err := io.Copy(h, bufio.NewReader(f))
		f.Close()
		if err != nil || n != b.size || !bytes.Equal(h.Sum(nil), want) {
			return fmt.Errorf("%s: installed file differs (%d bytes, err %v)", p.name, n, err)
		}
	}
	logf("every installed file matches the artifact")

	// Report.
	egress := v1.OutBytes - v0.OutBytes
	leafEgress := sumLeafOut(l1) - sumLeafOut(l0)
	total := float64(b.n) * float64(b.size)
	var maxes, idles []int64
	for _, p := range b.procs {
		maxes = append(maxes, p.max)
		idles = append(idles, p.idle)
	}
	mib := func(kib int64) string { return fmt.Sprintf("%.1f MiB", float64(kib)/1024) }
	mb := func(n int64) string { return fmt.Sprintf("%.1f MB", float64(n)/1e6) }
	fmt.Printf("| | |\n| --- | --- |\n")
	fmt.Printf("| leaves | %d |\n", b.n)
	fmt.Printf("| artifact | %s (%d bytes; %s published in %.2f s) |\n", mb(b.size), b.size, "blob 1.0.0", pubTime.Seconds())
	fmt.Printf("| total time, rollout created → last device applied | %.1f s |\n", elapsed.Seconds())
	fmt.Printf("| of which: until the first device reports progress · until all bytes are fetched · until the last applied | %.1f s · %.1f s · %.1f s |\n", firstSeen.Seconds(), allFetched.Seconds(), elapsed.Seconds())
	fmt.Printf("| aggregate delivery rate | %.1f MB/s |\n", total/1e6/elapsed.Seconds())
	fmt.Printf("| hub egress (/varz out_bytes) | %s = %.3f × leaves × size |\n", mb(egress), float64(egress)/total)
	fmt.Printf("| of which to leaf connections (/leafz out_bytes) | %s = %.3f × leaves × size |\n", mb(leafEgress), float64(leafEgress)/total)
	fmt.Printf("| bytes fetched, as the devices report (fw-status) | %s = %.3f × leaves × size |\n", mb(fetched), float64(fetched)/total)
	fmt.Printf("| leaf RSS during download, max of all leaves | %s |\n", mib(slices.Max(maxes)))
	fmt.Printf("| leaf RSS during download, median of the leaves' maxima | %s |\n", mib(median(maxes)))
	fmt.Printf("| leaf RSS idle before the rollout, median (min–max) | %s (%s–%s) |\n", mib(median(idles)), mib(slices.Min(idles)), mib(slices.Max(idles)))
	fmt.Printf("| hub + fwbench process RSS, idle → max during rollout | %s → %s |\n", mib(hubIdle), mib(hubMax))
	return nil
}

// exited reports a leaf that is no longer running.
func (b *bench) exited() error {
	for _, p := range b.procs {
		select {
		case <-p.done:
			return fmt.Errorf("%s exited: %v (see %s)", p.name, p.err, filepath.Join(p.dir, "leaf.log"))
		default:
		}
	}
	return nil
}

// stop terminates the leaves (SIGTERM, then SIGKILL after 10 s) and the hub.
func (b *bench) stop() {
	for _, p := range b.procs {
		if p.cmd != nil && p.cmd.Process != nil {
			p.cmd.Process.Signal(os.Interrupt)
		}
	}
	for _, p := range b.procs {
		if p.cmd == nil || p.cmd.Process == nil {
			continue
		}
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			p.cmd.Process.Kill()
			<-p.done
		}
	}
	if b.cancelHub != nil {
		b.cancelHub()
		if err := <-b.hubDone; err != nil {
			logf("hub: %v", err)
		}
	}
}

type chachaReader struct{ c *rand.ChaCha8 }

func (r chachaReader) Read(p []byte) (int, error) { return r.c.Read(p) }

func median(v []int64) int64 {
	s := slices.Sorted(slices.Values(v))
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// rssKiB is VmRSS in /proc/PID/status.
func rssKiB(pid int) (int64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(data)) {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(rest)
			if len(f) > 0 {
				return strconv.ParseInt(f[0], 10, 64)
			}
		}
	}
	return 0, fmt.Errorf("no VmRSS for pid %d", pid)
}

type varzResp struct {
	OutBytes int64 `json:"out_bytes"`
}

type leafzResp struct {
	Leafs []struct {
		Name     string `json:"name"`
		OutBytes int64  `json:"out_bytes"`
	} `json:"leafs"`
}

func sumLeafOut(l leafzResp) int64 {
	var n int64
	for _, c := range l.Leafs {
		n += c.OutBytes
	}
	return n
}

func varz(base string) (varzResp, error) {
	var v varzResp
	return v, getJSON(base+"/varz", &v)
}

func leafz(base string) (leafzResp, error) {
	var v leafzResp
	return v, getJSON(base+"/leafz", &v)
}

func getJSON(url string, v any) error {
	resp, err := http.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}
