package stream_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"

	"github.com/canopy-iot/canopy/hub/fleet"
	"github.com/canopy-iot/canopy/internal/wait"
	"github.com/canopy-iot/canopy/leaf"
)

// devicePermissions are the permissions Canopy's hub gives device d's user
// JWT in operator mode: the leaf must work inside them.
func devicePermissions(d string) jwt.Permissions { return fleet.DevicePermissions(d) }

// startOperatorHub runs a hub in operator mode with a tenant account
// (JetStream on) holding the stream sc, and returns the hub, a .creds file
// for device (its user JWT named device, with devicePermissions) and the
// hub stream.
//
// The hub has no JetStream domain; the tenant account carries the
// mappings of Canopy's tenants (fleet.JetStreamMappings), which let its
// leaves reach its JetStream under the domain prefix they use.
func startOperatorHub(t *testing.T, device string, sc jetstream.StreamConfig) (*server.Server, string, jetstream.Stream) {
	t.Helper()
	op, _ := nkeys.CreateOperator()
	opPub, _ := op.PublicKey()
	opClaims := jwt.NewOperatorClaims(opPub)
	opClaims.Name = "canopy-test"
	sys, _ := nkeys.CreateAccount()
	sysPub, _ := sys.PublicKey()
	sysClaims := jwt.NewAccountClaims(sysPub)
	sysClaims.Name = "SYS"
	acc, _ := nkeys.CreateAccount()
	accPub, _ := acc.PublicKey()
	accClaims := jwt.NewAccountClaims(accPub)
	accClaims.Name = "acme"
	accClaims.Limits.JetStreamLimits = jwt.JetStreamLimits{MemoryStorage: -1, DiskStorage: -1, Streams: -1, Consumer: -1}
	accClaims.Mappings = jwt.Mapping{}
	for from, to := range fleet.JetStreamMappings() {
		accClaims.Mappings[jwt.Subject(from)] = []jwt.WeightedMapping{{Subject: jwt.Subject(to), Weight: 100}}
	}
	resolver := &server.MemAccResolver{}
	for pub, claims := range map[string]*jwt.AccountClaims{sysPub: sysClaims, accPub: accClaims} {
		token, err := claims.Encode(op)
		if err != nil {
			t.Fatal(err)
		}
		resolver.Store(pub, token)
	}
	o := &server.Options{
		ServerName: "hub", Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true,
		TrustedOperators: []*jwt.OperatorClaims{opClaims}, SystemAccount: sysPub, AccountResolver: resolver,
		JetStream: true, StoreDir: t.TempDir(),
	}
	o.LeafNode.Host, o.LeafNode.Port, o.LeafNode.NoAdvertise = "127.0.0.1", -1, true
	s, err := server.NewServer(o)
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("hub not ready")
	}
	t.Cleanup(s.Shutdown)

	user := func(name string, perms jwt.Permissions) (string, []byte) {
		kp, _ := nkeys.CreateUser()
		pub, _ := kp.PublicKey()
		seed, _ := kp.Seed()
		uc := jwt.NewUserClaims(pub)
		uc.Name = name
		uc.Permissions = perms
		token, err := uc.Encode(acc)
		if err != nil {
			t.Fatal(err)
		}
		return token, seed
	}
	appJWT, appSeed := user("app", jwt.Permissions{})
	nc, err := nats.Connect(s.ClientURL(), nats.UserJWTAndSeed(appJWT, string(appSeed)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, _ := jetstream.New(nc)
	st, err := js.CreateStream(context.Background(), sc)
	if err != nil {
		t.Fatal(err)
	}

	devJWT, devSeed := user(device, devicePermissions(device))
	creds, err := jwt.FormatUserConfig(devJWT, devSeed)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "device.creds")
	if err := os.WriteFile(file, creds, 0o600); err != nil {
		t.Fatal(err)
	}
	return s, file, st
}

// withCredentials makes the leaf authenticate with a .creds file, and
// send its duplicate check without a domain, as startOperatorHub's hub
// has none.
func withCredentials(file string) func(*leaf.Config) {
	return func(c *leaf.Config) {
		c.Uplink.NKeySeedFile = ""
		c.Uplink.Credentials = file
		c.Streams[0].Upstream.Domain = ""
	}
}

// The device id comes from the credentials, not from what the device
// claims: a leaf configured as pi-001 whose credentials name pi-007 sends
// its stream as pi-007, says so once, and stays inside pi-007's
// permissions (nothing refused, the duplicate check answered).
func TestIntegrationDeviceIDFromCredentials(t *testing.T) {
	hub, creds, hubStream := startOperatorHub(t, "pi-007",
		jetstream.StreamConfig{Name: "TELEMETRY", Subjects: []string{"telemetry.>"}, AllowDirect: true})
	n, logs := startLeaf(t, leafPort(t, hub), "", func(c *leaf.Config) {
		withCredentials(creds)(c)
		c.ServerName = "pi-001"
	})
	const total = 20
	publish(t, n.NATSURL(), total)
	readHubStream(t, hubStream, "pi-007", total, true)

	const warning = `msg="server_name differs from the device id in uplink.credentials; the credentials' device id is used at the hub" server_name=pi-001 device=pi-007`
	if c := logs.Count(warning); c != 1 {
		t.Errorf("warning logged %d times, want once:\n%s", c, logs)
	}
	for _, line := range strings.Split(logs.String(), "\n") {
		// The test's nats.go client has an inbox of its own, which the
		// device may not announce (it stays local); the streams' must go.
		denied := strings.Contains(line, "not permitted on the uplink") &&
			(strings.Contains(line, "pi-007") || strings.Contains(line, "$JS") || strings.Contains(line, "telemetry."))
		if denied || strings.Contains(line, "no answer from the hub stream") || strings.Contains(line, "hub refused") {
			t.Errorf("log has %s", line)
		}
	}
	wait.For(t, 10*time.Second, func() error {
		if acked := n.StreamStats("sensors").AckFloor; acked != total {
			return fmt.Errorf("device cursor at %d, want %d", acked, total)
		}
		return nil
	})
}

// Without server_name, an enrolled device is named by its credentials
// locally too, and nothing is logged about it.
func TestIntegrationServerNameDefaultsToCredentials(t *testing.T) {
	hub, creds, hubStream := startOperatorHub(t, "pi-007",
		jetstream.StreamConfig{Name: "TELEMETRY", Subjects: []string{"telemetry.>"}, AllowDirect: true})
	n, logs := startLeaf(t, leafPort(t, hub), "", func(c *leaf.Config) {
		withCredentials(creds)(c)
		c.ServerName = ""
	})
	publish(t, n.NATSURL(), 1)
	readHubStream(t, hubStream, "pi-007", 1, true)
	if err := logs.Contains(`msg="leaf ready" server_name=pi-007 device=pi-007`); err != nil {
		t.Error(err)
	}
	if strings.Contains(logs.String(), "server_name differs") {
		t.Errorf("warning without a server_name:\n%s", logs)
	}
}
