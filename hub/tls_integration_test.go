package hub_test

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/canopy-iot/canopy/hub"
	"github.com/canopy-iot/canopy/internal/testcert"
	"github.com/canopy-iot/canopy/internal/wait"
)

func TestIntegrationTLSClientsAndLeafNodes(t *testing.T) {
	certs := testcert.Write(t, t.TempDir())
	cfg := testConfig(t)
	cfg.TLS = &hub.TLS{CertFile: certs.Cert, KeyFile: certs.Key, CAFile: certs.CA, Verify: true}
	cfg.LeafNodes.TLS = &hub.TLS{CertFile: certs.Cert, KeyFile: certs.Key}
	h := startHub(t, cfg)

	// A client must present a certificate signed by the CA.
	if nc, err := nats.Connect(h.ClientURL(), nats.RootCAs(certs.CA)); err == nil {
		nc.Close()
		t.Fatal("client without a certificate was accepted although verify is on")
	}
	nc := connect(t, h.ClientURL(), nats.RootCAs(certs.CA), nats.ClientCert(certs.Cert, certs.Key))
	if !nc.TLSRequired() {
		t.Fatal("hub does not announce TLS to clients")
	}
	sub, err := nc.SubscribeSync("cmd.>")
	if err != nil {
		t.Fatal(err)
	}
	nc.Flush()

	// A stock leaf node connects over TLS and receives what the hub sends.
	u, _ := url.Parse(strings.Replace(h.LeafNodeURL(), "nats://", "tls://", 1))
	pool := x509.NewCertPool()
	pem, err := os.ReadFile(certs.CA)
	if err != nil {
		t.Fatal(err)
	}
	pool.AppendCertsFromPEM(pem)
	leaf, err := server.NewServer(&server.Options{
		ServerName: "tls-leaf", Host: "127.0.0.1", Port: -1, NoSigs: true, NoLog: true,
		LeafNode: server.LeafNodeOpts{
			ReconnectInterval: 50 * time.Millisecond,
			Remotes: []*server.RemoteLeafOpts{{URLs: []*url.URL{u}, TLS: true,
				TLSConfig: &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}}},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	go leaf.Start()
	t.Cleanup(leaf.Shutdown)
	if !leaf.ReadyForConnections(10 * time.Second) {
		t.Fatal("leaf not ready")
	}
	device := connect(t, leaf.ClientURL())
	wait.For(t, 10*time.Second, func() error {
		device.Publish("cmd.from-leaf", []byte("x"))
		if _, err := sub.NextMsg(200 * time.Millisecond); err != nil {
			return fmt.Errorf("nothing from the TLS leaf: %w", err)
		}
		return nil
	})
	var leafz server.Leafz
	if err := getJSON(h.MonitorURL()+"/leafz", &leafz); err != nil {
		t.Fatal(err)
	}
	if len(leafz.Leafs) != 1 {
		t.Fatalf("/leafz lists %d leafs", len(leafz.Leafs))
	}
}
