package hub_test

import (
	"context"
	"encoding/json"
	"fmt"
	"github.com/nats-io/nats.go"
	"io"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/canopy-iot/canopy/hub"
	"github.com/canopy-iot/canopy/internal/testlog"
)

// testConfig is the zero configuration with kernel-picked ports and a
// private store, so tests run side by side.
func testConfig(t testing.TB) hub.Config {
	return hub.Config{
		Listen:     "127.0.0.1:0",
		HTTPListen: "127.0.0.1:0",
		LeafNodes:  hub.LeafNodes{Listen: "127.0.0.1:0"},
		JetStream:  hub.JetStream{StoreDir: t.TempDir()},
		Dashboard:  hub.Dashboard{Listen: "127.0.0.1:0"},
	}
}

// node is a hub running in the test process.
type node struct {
	*hub.Hub
	cfg    hub.Config
	logs   *testlog.Buffer
	cancel context.CancelFunc
	done   chan error
}

// startHub runs a hub on cfg until the test ends, and waits until it is
// ready.
func startHub(t testing.TB, cfg hub.Config) *node {
	t.Helper()
	logs := &testlog.Buffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	h, err := hub.New(cfg, log)
	if err != nil {
		t.Fatalf("hub.New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	n := &node{Hub: h, cfg: cfg, logs: logs, cancel: cancel, done: make(chan error, 1)}
	go func() { n.done <- h.Run(ctx) }()
	t.Cleanup(func() { n.stop(t) })
	select {
	case <-h.Ready():
	case err := <-n.done:
		n.done <- err
		t.Fatalf("hub stopped before it was ready: %v\n%s", err, logs)
	case <-time.After(30 * time.Second):
		t.Fatalf("hub not ready after 30s\n%s", logs)
	}
	return n
}

// stop shuts the hub down and checks that it stopped cleanly. Calling it
// again is harmless.
func (n *node) stop(t testing.TB) {
	t.Helper()
	n.cancel()
	select {
	case err, ok := <-n.done:
		if ok && err != nil {
			t.Errorf("hub.Run: %v", err)
		}
		if ok {
			close(n.done)
		}
	case <-time.After(30 * time.Second):
		t.Errorf("hub did not stop within 30s")
	}
}

// getJSON fetches a monitoring endpoint into v.
func getJSON(url string, v any) error {
	resp, err := http.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s: %s", url, resp.Status, body)
	}
	return json.Unmarshal(body, v)
}

// logBuffer collects a hub's log lines for assertions.

func natsUser(user, password string) nats.Option { return nats.UserInfo(user, password) }
