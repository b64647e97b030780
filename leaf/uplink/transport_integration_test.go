package uplink_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/canopy-iot/canopy/leaf/uplink"
)

// connectProxy is a minimal HTTP CONNECT proxy, as a corporate network
// has, that counts the tunnels it opened.
type connectProxy struct {
	ln      net.Listener
	tunnels atomic.Int64
}

func newConnectProxy(t testing.TB) *connectProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &connectProxy{ln: ln}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.serve(c)
		}
	}()
	return p
}

func (p *connectProxy) url() string { return "http://" + p.ln.Addr().String() }

func (p *connectProxy) serve(c net.Conn) {
	defer c.Close()
	br := bufio.NewReader(c)
	req, err := http.ReadRequest(br)
	if err != nil || req.Method != http.MethodConnect {
		fmt.Fprint(c, "HTTP/1.1 405 Method Not Allowed\r\n\r\n")
		return
	}
	up, err := net.Dial("tcp", req.Host)
	if err != nil {
		fmt.Fprint(c, "HTTP/1.1 502 Bad Gateway\r\n\r\n")
		return
	}
	defer up.Close()
	p.tunnels.Add(1)
	fmt.Fprint(c, "HTTP/1.1 200 Connection established\r\n\r\n")
	go io.Copy(up, br)
	io.Copy(c, up)
}

// The leafnode link over WebSocket and through an HTTP CONNECT proxy, the
// way out of a network that only lets HTTP(S) through.
func TestIntegrationWebSocketAndProxy(t *testing.T) {
	dev := newDevice(t)
	o := hubOpts(t, dev, nil)
	o.Websocket.Host, o.Websocket.Port, o.Websocket.NoTLS = "127.0.0.1", -1, true
	o.LeafNode.NoAdvertise = true
	hub := startHub(t, o)
	hubClient := connect(t, hub.ClientURL(), nats.UserInfo("app", "pw"))
	sub, _ := hubClient.SubscribeSync("telemetry.>")
	hubClient.Flush()
	varz, err := hub.Varz(nil)
	if err != nil {
		t.Fatal(err)
	}
	ws := fmt.Sprintf("ws://127.0.0.1:%d", varz.Websocket.Port)

	cases := map[string]uplink.Config{
		"websocket":           {URLs: []string{ws}},
		"proxy":               {URLs: []string{leafURL(hub)}},
		"websocket via proxy": {URLs: []string{ws}},
	}
	for name, cfg := range cases {
		t.Run(name, func(t *testing.T) {
			var proxy *connectProxy
			if strings.Contains(name, "proxy") {
				proxy = newConnectProxy(t)
				cfg.Proxy = proxy.url()
			}
			cfg.NKeySeedFile = dev.seedFile
			cfg.Name = strings.ReplaceAll(name, " ", "-")
			leaf := startLeaf(t, cfg)
			leaf.waitConnected(t)
			local := connect(t, leaf.srv.ClientURL())
			drain(sub)
			m := deliverEventually(t, func() error { return local.Publish("telemetry."+cfg.Name, []byte(name)) }, sub)
			if string(m.Data) != name {
				t.Fatalf("got %q", m.Data)
			}
			down, _ := local.SubscribeSync("cmd.>")
			local.Flush()
			deliverEventually(t, func() error { return hubClient.Publish("cmd.x", nil) }, down)
			if proxy != nil && proxy.tunnels.Load() == 0 {
				t.Fatal("the link did not go through the proxy")
			}
		})
	}
}
