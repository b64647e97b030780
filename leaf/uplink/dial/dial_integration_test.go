package dial

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/canopy-iot/canopy/internal/testcert"
	"github.com/canopy-iot/canopy/internal/wait"
)

// startHub runs a nats-server v2.15 hub on 127.0.0.1 with a leafnode
// listener and whatever mut adds.
func startHub(t *testing.T, mut func(*server.Options)) *server.Server {
	t.Helper()
	o := &server.Options{
		ServerName: "hub1", Host: "127.0.0.1", Port: -1,
		NoLog: true, NoSigs: true,
	}
	o.LeafNode.Host, o.LeafNode.Port = "127.0.0.1", -1
	if mut != nil {
		mut(o)
	}
	s, err := server.NewServer(o)
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	t.Cleanup(s.Shutdown)
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("hub not ready")
	}
	return s
}

// hubAddrs returns the hub's leafnode and websocket host:port.
func hubAddrs(t *testing.T, s *server.Server) (leaf, ws string) {
	t.Helper()
	v, err := s.Varz(nil)
	if err != nil {
		t.Fatal(err)
	}
	if v.LeafNode.Port != 0 {
		leaf = net.JoinHostPort("127.0.0.1", strconv.Itoa(v.LeafNode.Port))
	}
	if v.Websocket.Port != 0 {
		ws = net.JoinHostPort("127.0.0.1", strconv.Itoa(v.Websocket.Port))
	}
	return leaf, ws
}

func withWebsocket(tlsCfg *tls.Config) func(*server.Options) {
	return func(o *server.Options) {
		o.Websocket.Host, o.Websocket.Port = "127.0.0.1", -1
		o.Websocket.NoTLS = tlsCfg == nil
		o.Websocket.TLSConfig = tlsCfg
		// The hub would compress if asked; Dial must not ask.
		o.Websocket.Compression = true
	}
}

func serverTLS(t *testing.T, certs testcert.Files) *tls.Config {
	t.Helper()
	cfg, err := server.GenTLSConfig(&server.TLSConfigOpts{CertFile: certs.Cert, KeyFile: certs.Key})
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func clientTLSConfig(t *testing.T, caFile string) *tls.Config {
	t.Helper()
	pem, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatal("no CA certificate in " + caFile)
	}
	return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
}

// readHubINFO reads the hub's first line and checks it is a leafnode INFO.
func readHubINFO(t *testing.T, br *bufio.Reader, c net.Conn) string {
	t.Helper()
	line := readLineFrom(t, br, c)
	if !strings.HasPrefix(line, "INFO {") || !strings.Contains(line, `"info_on_connect":true`) {
		t.Fatalf("first line is not a leafnode INFO: %.200q", line)
	}
	return line
}

// completeLeafHandshake sends a minimal leafnode CONNECT and waits for the
// hub's connect-info INFO and its registration of the leaf: bytes flow
// both ways, and the hub parsed what was written.
func completeLeafHandshake(t *testing.T, hub *server.Server, br *bufio.Reader, c net.Conn, name string) {
	t.Helper()
	connect := fmt.Sprintf(`CONNECT {"name":%q,"headers":true,"protocol":1,"compress_mode":"off","version":"2.15.2","remote_account":"$G"}`+"\r\n", name)
	if _, err := io.WriteString(c, connect); err != nil {
		t.Fatal(err)
	}
	for {
		line := readLineFrom(t, br, c)
		if strings.HasPrefix(line, "-ERR") {
			t.Fatalf("hub answered CONNECT with %q", line)
		}
		if strings.HasPrefix(line, "INFO ") && strings.Contains(line, `"connect_info":true`) {
			break
		}
	}
	wait.For(t, 5*time.Second, func() error {
		lz, err := hub.Leafz(nil)
		if err != nil {
			return err
		}
		for _, l := range lz.Leafs {
			if l.Name == name {
				return nil
			}
		}
		return fmt.Errorf("hub lists no leaf %q among %d", name, len(lz.Leafs))
	})
}

func TestIntegrationTCP(t *testing.T) {
	hub := startHub(t, nil)
	leafAddr, _ := hubAddrs(t, hub)
	for i, scheme := range []string{"nats-leaf", "nats", "tcp"} {
		t.Run(scheme, func(t *testing.T) {
			c, err := Dial(context.Background(), scheme+"://"+leafAddr, Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			br := bufio.NewReader(c)
			readHubINFO(t, br, c)
			completeLeafHandshake(t, hub, br, c, "tcp-"+strconv.Itoa(i))
		})
	}
}

func TestIntegrationTLSUpgrade(t *testing.T) {
	certs := testcert.Write(t, t.TempDir())
	other := testcert.Write(t, t.TempDir()) // another CA
	hub := startHub(t, func(o *server.Options) {
		o.LeafNode.TLSConfig = serverTLS(t, certs)
		o.LeafNode.TLSTimeout = 2
	})
	leafAddr, _ := hubAddrs(t, hub)

	dialINFO := func(t *testing.T) (net.Conn, *bufio.Reader) {
		c, err := Dial(context.Background(), "tls://"+leafAddr, Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		br := bufio.NewReader(c)
		if info := readHubINFO(t, br, c); !strings.Contains(info, `"tls_required":true`) {
			t.Fatalf("INFO does not require TLS: %.200q", info)
		}
		if br.Buffered() != 0 {
			t.Fatalf("%d bytes behind the INFO before TLS", br.Buffered())
		}
		return c, br
	}

	t.Run("right CA", func(t *testing.T) {
		c, _ := dialINFO(t)
		cfg := clientTLSConfig(t, certs.CA)
		cfg.ServerName = "localhost"
		tc, err := UpgradeTLS(context.Background(), c, cfg, 2*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer tc.Close()
		if _, ok := tc.(*tls.Conn); !ok {
			t.Fatalf("UpgradeTLS returned a %T", tc)
		}
		completeLeafHandshake(t, hub, bufio.NewReader(tc), tc, "tls-leaf")
	})
	t.Run("wrong CA", func(t *testing.T) {
		c, _ := dialINFO(t)
		cfg := clientTLSConfig(t, other.CA)
		cfg.ServerName = "localhost"
		_, err := UpgradeTLS(context.Background(), c, cfg, 2*time.Second)
		var unknown x509.UnknownAuthorityError
		if !errors.As(err, &unknown) {
			t.Fatalf("error %v, want x509.UnknownAuthorityError", err)
		}
		if !strings.Contains(err.Error(), "tls upgrade with "+leafAddr) {
			t.Errorf("error %q does not name the hub", err)
		}
	})
	t.Run("wrong name", func(t *testing.T) {
		c, _ := dialINFO(t)
		cfg := clientTLSConfig(t, certs.CA)
		cfg.ServerName = "hub.example.com"
		_, err := UpgradeTLS(context.Background(), c, cfg, 2*time.Second)
		var invalid x509.HostnameError
		if !errors.As(err, &invalid) {
			t.Fatalf("error %v, want x509.HostnameError", err)
		}
	})
}

func TestIntegrationTLSFirst(t *testing.T) {
	certs := testcert.Write(t, t.TempDir())
	hub := startHub(t, func(o *server.Options) {
		o.LeafNode.TLSConfig = serverTLS(t, certs)
		o.LeafNode.TLSHandshakeFirst = true
	})
	leafAddr, _ := hubAddrs(t, hub)
	proxy := startProxy(t, &testProxy{})
	for _, p := range []string{"", proxy} {
		t.Run("proxy="+p, func(t *testing.T) {
			// TLS named by the URL's host (an IP address in the
			// certificate), as Dial fills it in.
			c, err := Dial(context.Background(), "tls://"+leafAddr, Options{TLS: clientTLSConfig(t, certs.CA), TLSFirst: true, Proxy: p})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if _, ok := c.(*tls.Conn); !ok {
				t.Fatalf("Dial returned a %T", c)
			}
			br := bufio.NewReader(c)
			readHubINFO(t, br, c)
			completeLeafHandshake(t, hub, br, c, "tls-first")
		})
	}
	t.Run("without TLSFirst the hub stays silent", func(t *testing.T) {
		c, err := Dial(context.Background(), "tls://"+leafAddr, Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		if n, err := c.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("hub sent %d bytes (%v) before a TLS handshake", n, err)
		}
	})
}

func TestIntegrationProxy(t *testing.T) {
	hub := startHub(t, nil)
	leafAddr, _ := hubAddrs(t, hub)
	tests := []struct {
		name  string
		proxy *testProxy
		creds string
	}{
		{"plain", &testProxy{}, ""},
		{"INFO behind the 200", &testProxy{Coalesce: true}, ""},
		{"basic auth", &testProxy{User: "edge", Pass: "pr0xy-pass"}, "edge:pr0xy-pass@"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			proxyURL := strings.Replace(startProxy(t, tt.proxy), "http://", "http://"+tt.creds, 1)
			c, err := Dial(context.Background(), "nats-leaf://"+leafAddr, Options{Proxy: proxyURL})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			br := bufio.NewReader(c)
			readHubINFO(t, br, c)
			completeLeafHandshake(t, hub, br, c, "proxied-"+strconv.Itoa(i))
			if seen := tt.proxy.seen(); len(seen) != 1 || seen[0] != leafAddr {
				t.Fatalf("proxy tunnelled to %q, want %q", seen, leafAddr)
			}
		})
	}
	t.Run("wrong password", func(t *testing.T) {
		p := &testProxy{User: "edge", Pass: "pr0xy-pass"}
		proxyURL := strings.Replace(startProxy(t, p), "http://", "http://edge:n0t-the-pass@", 1)
		_, err := Dial(context.Background(), "nats-leaf://"+leafAddr, Options{Proxy: proxyURL})
		if !errors.Is(err, ErrProxy) || !strings.Contains(err.Error(), "407") || strings.Contains(err.Error(), "n0t-the-pass") {
			t.Fatalf("error %v: want ErrProxy with 407 and no password", err)
		}
	})
}

func TestIntegrationWebSocket(t *testing.T) {
	hub := startHub(t, withWebsocket(nil))
	_, wsAddr := hubAddrs(t, hub)

	// A stock nats-server leaf over the same listener: the hub side of
	// the test is sound.
	u, _ := url.Parse("ws://" + wsAddr)
	stock, err := server.NewServer(&server.Options{
		ServerName: "stock-leaf", Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true,
		LeafNode: server.LeafNodeOpts{
			ReconnectInterval: 50 * time.Millisecond,
			Remotes:           []*server.RemoteLeafOpts{{URLs: []*url.URL{u}}},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	go stock.Start()
	t.Cleanup(stock.Shutdown)
	wait.For(t, 10*time.Second, func() error {
		if n := hub.NumLeafNodes(); n != 1 {
			return fmt.Errorf("hub has %d leafs, want the stock leaf", n)
		}
		return nil
	})

	proxy := &testProxy{User: "edge", Pass: "pw"}
	proxyURL := strings.Replace(startProxy(t, proxy), "http://", "http://edge:pw@", 1)
	for _, tt := range []struct{ name, url, proxy string }{
		{"direct", "ws://" + wsAddr, ""},
		{"path given", "ws://" + wsAddr + "/leafnode", ""},
		{"through proxy", "ws://" + wsAddr, proxyURL},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Dial(context.Background(), tt.url, Options{Proxy: tt.proxy})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if _, ok := c.(*wsConn); !ok {
				t.Fatalf("Dial returned a %T", c)
			}
			br := bufio.NewReader(c)
			readHubINFO(t, br, c)
			completeLeafHandshake(t, hub, br, c, "ws-"+strings.ReplaceAll(tt.name, " ", "-"))
			// A write larger than one frame reaches the hub intact: it
			// answers the PING that ends it.
			big := strings.Repeat("PING\r\n", 3*maxWriteFrame/6+100)
			if _, err := io.WriteString(c, big); err != nil {
				t.Fatal(err)
			}
			for pongs := 0; pongs < 3*maxWriteFrame/6+100; {
				switch line := readLineFrom(t, br, c); {
				case line == "PONG\r\n":
					pongs++
				case line == "PING\r\n", strings.HasPrefix(line, "LS+ "), strings.HasPrefix(line, "LS- "):
					// the hub's keepalive and interest
				default:
					t.Fatalf("hub answered %q", line)
				}
			}
		})
	}
	if seen := proxy.seen(); len(seen) != 1 || seen[0] != wsAddr {
		t.Fatalf("proxy tunnelled to %q, want %q", seen, wsAddr)
	}
}

func TestIntegrationWebSocketTLS(t *testing.T) {
	certs := testcert.Write(t, t.TempDir())
	hub := startHub(t, withWebsocket(serverTLS(t, certs)))
	_, wsAddr := hubAddrs(t, hub)
	proxyURL := startProxy(t, &testProxy{})
	for _, p := range []string{"", proxyURL} {
		t.Run("proxy="+p, func(t *testing.T) {
			c, err := Dial(context.Background(), "wss://"+wsAddr, Options{TLS: clientTLSConfig(t, certs.CA), Proxy: p})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			br := bufio.NewReader(c)
			readHubINFO(t, br, c)
			completeLeafHandshake(t, hub, br, c, "wss-leaf")
		})
	}
	t.Run("wrong CA", func(t *testing.T) {
		other := testcert.Write(t, t.TempDir())
		_, err := Dial(context.Background(), "wss://"+wsAddr, Options{TLS: clientTLSConfig(t, other.CA)})
		var unknown x509.UnknownAuthorityError
		if !errors.As(err, &unknown) {
			t.Fatalf("error %v, want x509.UnknownAuthorityError", err)
		}
	})
}
