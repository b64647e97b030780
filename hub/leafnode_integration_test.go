package hub_test

import (
	"bufio"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nkeys"

	"github.com/canopy-iot/canopy/hub"
	"github.com/canopy-iot/canopy/internal/wait"
)

// startStockLeaf runs an unmodified nats-server as a leaf node of the hub,
// authenticating with an NKey seed.
func startStockLeaf(t *testing.T, hubLeafURL string, seed []byte) *server.Server {
	t.Helper()
	u, err := url.Parse(hubLeafURL)
	if err != nil {
		t.Fatal(err)
	}
	opts := &server.Options{
		ServerName: "stock-leaf", Host: "127.0.0.1", Port: -1, NoSigs: true, NoLog: true,
		LeafNode: server.LeafNodeOpts{
			ReconnectInterval: 50 * time.Millisecond,
			Remotes:           []*server.RemoteLeafOpts{{URLs: []*url.URL{u}, Nkey: string(seed)}},
		},
	}
	s, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("stock leaf not ready")
	}
	t.Cleanup(s.Shutdown)
	return s
}

func newUserKey(t *testing.T) (seed []byte, public string) {
	t.Helper()
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	seed, _ = kp.Seed()
	public, _ = kp.PublicKey()
	return seed, public
}

func TestIntegrationLeafNodeBoundToAccount(t *testing.T) {
	seed, public := newUserKey(t)
	cfg := testConfig(t)
	cfg.Accounts = map[string]hub.Account{
		"acme":  {Users: []hub.User{{NKey: public}, {User: "ops", Password: "ops-secret"}}},
		"other": {Users: []hub.User{{User: "intruder", Password: "x"}}},
	}
	h := startHub(t, cfg)
	leaf := startStockLeaf(t, h.LeafNodeURL(), seed)

	var leafz server.Leafz
	wait.For(t, 10*time.Second, func() error {
		if err := getJSON(h.MonitorURL()+"/leafz", &leafz); err != nil {
			return err
		}
		if len(leafz.Leafs) != 1 {
			return fmt.Errorf("/leafz lists %d leaf nodes", len(leafz.Leafs))
		}
		return nil
	})
	if got := leafz.Leafs[0].Account; got != "acme" {
		t.Fatalf("leaf bound to account %q, want acme", got)
	}

	ops := connect(t, h.ClientURL(), natsUser("ops", "ops-secret"))
	intruder := connect(t, h.ClientURL(), natsUser("intruder", "x"))
	device := connect(t, leaf.ClientURL())

	// hub → leaf
	cmds, err := device.SubscribeSync("cmd.>")
	if err != nil {
		t.Fatal(err)
	}
	device.Flush()
	wait.For(t, 10*time.Second, func() error {
		ops.Publish("cmd.reboot", []byte("now"))
		if _, err := cmds.NextMsg(200 * time.Millisecond); err != nil {
			return fmt.Errorf("command not delivered to the leaf: %w", err)
		}
		return nil
	})

	// leaf → hub, seen in acme and not in another account.
	telemetry, err := ops.SubscribeSync("telemetry.>")
	if err != nil {
		t.Fatal(err)
	}
	stolen, err := intruder.SubscribeSync(">")
	if err != nil {
		t.Fatal(err)
	}
	ops.Flush()
	intruder.Flush()
	wait.For(t, 10*time.Second, func() error {
		device.Publish("telemetry.temp", []byte("21.5"))
		msg, err := telemetry.NextMsg(200 * time.Millisecond)
		if err != nil {
			return fmt.Errorf("telemetry not delivered to the hub: %w", err)
		}
		if string(msg.Data) != "21.5" {
			return fmt.Errorf("got %q", msg.Data)
		}
		return nil
	})
	if msg, err := stolen.NextMsg(100 * time.Millisecond); err == nil {
		t.Fatalf("account other received %s from acme's leaf", msg.Subject)
	}

	// A leaf with a key the hub does not know is refused, and the hub says why.
	badSeed, badPublic := newUserKey(t)
	startStockLeaf(t, h.LeafNodeURL(), badSeed)
	wait.For(t, 10*time.Second, func() error { return h.logs.Contains("authentication error") })
	if err := getJSON(h.MonitorURL()+"/leafz", &leafz); err != nil {
		t.Fatal(err)
	}
	if len(leafz.Leafs) != 1 {
		t.Fatalf("/leafz lists %d leaf nodes after a refused one, want 1", len(leafz.Leafs))
	}
	if strings.Contains(h.logs.String(), string(badSeed)) {
		t.Fatal("the hub logged a seed")
	}
	_ = badPublic
}

func TestIntegrationNATSConfigPassthrough(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "extra.conf")
	if err := os.WriteFile(file, []byte("max_payload: 2MB\nmax_connections: 7\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t)
	cfg.NATSConfig = file
	h := startHub(t, cfg)
	nc := connect(t, h.ClientURL())
	if got := nc.MaxPayload(); got != 2*1024*1024 {
		t.Fatalf("max payload = %d, want 2 MiB from nats_config", got)
	}
	var varz server.Varz
	if err := getJSON(h.MonitorURL()+"/varz", &varz); err != nil {
		t.Fatal(err)
	}
	if varz.MaxConn != 7 {
		t.Fatalf("max_connections = %d, want 7 from nats_config", varz.MaxConn)
	}
}

// leafInfo reads the INFO a device gets when it opens a leafnode
// connection.
func leafInfo(t *testing.T, leafURL string) string {
	t.Helper()
	u, err := url.Parse(leafURL)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.DialTimeout("tcp", u.Host, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "INFO ") {
		t.Fatalf("leafnode INFO: %q, %v", line, err)
	}
	return line
}

// leafnodes.no_advertise keeps the node's own leafnode address from
// devices, which would otherwise go round a load balancer to it.
func TestIntegrationLeafNodesNoAdvertise(t *testing.T) {
	cfg := testConfig(t)
	n := startHub(t, cfg)
	addr := strings.TrimPrefix(n.LeafNodeURL(), "nats://")
	if info := leafInfo(t, n.LeafNodeURL()); !strings.Contains(info, `"leafnode_urls"`) || !strings.Contains(info, addr) {
		t.Fatalf("by default the hub advertises its leafnode address %s: %s", addr, info)
	}
	cfg = testConfig(t)
	cfg.LeafNodes.NoAdvertise = true
	n = startHub(t, cfg)
	if info := leafInfo(t, n.LeafNodeURL()); strings.Contains(info, `"leafnode_urls"`) {
		t.Fatalf("with no_advertise the hub still advertises: %s", info)
	}
}
