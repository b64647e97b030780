package dial

import (
	"bufio"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestParseTarget(t *testing.T) {
	tests := []struct {
		url              string
		addr, host, path string
		ws, wss          bool
	}{
		{url: "nats-leaf://hub.example.com", addr: "hub.example.com:7422", host: "hub.example.com"},
		{url: "nats://u:p@10.0.0.1:4000", addr: "10.0.0.1:4000", host: "10.0.0.1"},
		{url: "tcp://hub", addr: "hub:7422", host: "hub"},
		{url: "tls://hub:7443", addr: "hub:7443", host: "hub"},
		{url: "NATS-LEAF://hub", addr: "hub:7422", host: "hub"},
		{url: "nats-leaf://[::1]", addr: "[::1]:7422", host: "::1"},
		{url: "ws://hub", addr: "hub:80", host: "hub", path: "/leafnode", ws: true},
		{url: "ws://hub:8080/", addr: "hub:8080", host: "hub", path: "/leafnode", ws: true},
		{url: "wss://hub", addr: "hub:443", host: "hub", path: "/leafnode", ws: true, wss: true},
		{url: "wss://hub/nats", addr: "hub:443", host: "hub", path: "/nats/leafnode", ws: true, wss: true},
		{url: "wss://hub/edge/leafnode", addr: "hub:443", host: "hub", path: "/edge/leafnode", ws: true, wss: true},
		{url: "ws://hub/a%20b/?x=1", addr: "hub:80", host: "hub", path: "/a%20b/leafnode?x=1", ws: true},
	}
	for _, tt := range tests {
		got, err := parseTarget(tt.url)
		if err != nil {
			t.Errorf("%s: %v", tt.url, err)
			continue
		}
		if got.addr != tt.addr || got.host != tt.host || got.wsPath != tt.path || got.ws != tt.ws || got.wss != tt.wss {
			t.Errorf("%s: addr %q host %q path %q ws %v wss %v", tt.url, got.addr, got.host, got.wsPath, got.ws, got.wss)
		}
		if strings.Contains(got.redacted, ":p@") {
			t.Errorf("%s: redacted form %q holds the password", tt.url, got.redacted)
		}
	}
}

func TestDialRejectsURLs(t *testing.T) {
	tests := []struct {
		url, proxy string
		want       string
	}{
		{url: "http://hub:7422", want: "scheme must be"},
		{url: "hub:7422", want: "scheme must be"},
		{url: "nats-leaf://", want: "no host"},
		{url: "nats-leaf://:7422", want: "no host"},
		{url: "nats-leaf://tok:s3cr3t@hub:bad", want: "invalid port"},
		{url: "ftp://user:s3cr3t@hub", want: "ftp://user:xxxxx@hub"},
		{url: "nats-leaf://hub", proxy: "https://user:s3cr3t@proxy:3128", want: "proxy https://user:xxxxx@proxy:3128"},
		{url: "nats-leaf://hub", proxy: "socks5://proxy:1080", want: "want http://"},
		{url: "nats-leaf://hub", proxy: "http://", want: "want http://"},
		{url: "nats-leaf://hub", proxy: "http://user:s3cr3t@proxy:3128/path", want: "want http://"},
		{url: "nats-leaf://hub", proxy: "http://user:s3cr3t@proxy:99999999999", want: "want http://"},
		{url: "nats-leaf://hub:0", want: "invalid port \"0\""},
		{url: "ws://hub:65536", want: "invalid port"},
	}
	for _, tt := range tests {
		_, err := Dial(context.Background(), tt.url, Options{Proxy: tt.proxy})
		if !errors.Is(err, ErrURL) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Dial(%q, proxy %q): %v; want ErrURL mentioning %q", tt.url, tt.proxy, err, tt.want)
		}
		if err != nil && strings.Contains(err.Error(), "s3cr3t") {
			t.Errorf("Dial(%q, proxy %q): error shows the password: %v", tt.url, tt.proxy, err)
		}
	}
}

func TestDialRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0") // take a port, then free it
	if err != nil {
		t.Fatal(err)
	}
	free := ln.Addr().String()
	ln.Close()
	_, err = Dial(context.Background(), "nats-leaf://dev:s3cr3t@"+free, Options{})
	if err == nil {
		t.Fatal("dial to a closed port succeeded")
	}
	want := "dial nats-leaf://dev:xxxxx@" + free + ": "
	if !strings.HasPrefix(err.Error(), want) || strings.Contains(err.Error(), "s3cr3t") {
		t.Fatalf("error %q, want it to start with %q and hide the password", err, want)
	}
}

func TestDialDirectAndThroughProxy(t *testing.T) {
	const banner = "INFO {\"server_id\":\"fake\",\"info_on_connect\":true}\r\n"
	hub := startBanner(t, banner)
	tests := []struct {
		name  string
		proxy *testProxy
		creds string // user:password@ in the proxy URL
	}{
		{name: "direct"},
		{name: "proxy", proxy: &testProxy{}},
		{name: "proxy sending the INFO behind its response", proxy: &testProxy{Coalesce: true}},
		{name: "proxy with basic auth", proxy: &testProxy{User: "edge", Pass: "pa:ss w0rd", Coalesce: true}, creds: "edge:pa%3Ass%20w0rd@"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var o Options
			if tt.proxy != nil {
				o.Proxy = strings.Replace(startProxy(t, tt.proxy), "http://", "http://"+tt.creds, 1)
			}
			c, err := Dial(context.Background(), "nats-leaf://token@"+hub, o)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			br := bufio.NewReader(c)
			if line := readLineFrom(t, br, c); line != banner {
				t.Fatalf("first line %q, want %q", line, banner)
			}
			if _, err := io.WriteString(c, "PING\r\n"); err != nil {
				t.Fatal(err)
			}
			if line := readLineFrom(t, br, c); line != "PING\r\n" {
				t.Fatalf("echo %q", line)
			}
			if tt.proxy != nil {
				if seen := tt.proxy.seen(); len(seen) != 1 || seen[0] != hub {
					t.Fatalf("proxy tunnelled to %q, want %q", seen, hub)
				}
			}
		})
	}
}

func TestDialProxyRefuses(t *testing.T) {
	hub := startBanner(t, "INFO {}\r\n")
	dead := func() string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		return ln.Addr().String()
	}()
	tests := []struct {
		name   string
		creds  string
		target string
		status string
	}{
		{name: "wrong password", creds: "edge:wrong-s3cr3t@", target: hub, status: "407 Proxy Authentication Required"},
		{name: "no credentials", target: hub, status: "407 Proxy Authentication Required"},
		{name: "unreachable hub", creds: "edge:right-s3cr3t@", target: dead, status: "502 Bad Gateway"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := &testProxy{User: "edge", Pass: "right-s3cr3t"}
			proxyURL := startProxy(t, p)
			_, err := Dial(context.Background(), "nats-leaf://"+tt.target, Options{Proxy: strings.Replace(proxyURL, "http://", "http://"+tt.creds, 1)})
			if !errors.Is(err, ErrProxy) {
				t.Fatalf("error %v, want ErrProxy", err)
			}
			msg := err.Error()
			if !strings.Contains(msg, tt.status) || !strings.Contains(msg, p.addr) || !strings.Contains(msg, tt.target) {
				t.Errorf("error %q should name the proxy %s, the hub %s and the status %q", msg, p.addr, tt.target, tt.status)
			}
			if strings.Contains(msg, "s3cr3t") {
				t.Errorf("error shows a password: %q", msg)
			}
			if tt.creds != "" && !strings.Contains(msg, "via proxy http://edge:xxxxx@") {
				t.Errorf("error %q should show the proxy user with the password redacted", msg)
			}
		})
	}
}

func TestDialTimeoutAndCancel(t *testing.T) {
	silent := startSilent(t)
	t.Run("proxy never answers", func(t *testing.T) {
		start := time.Now()
		_, err := Dial(context.Background(), "nats-leaf://hub:7422", Options{Proxy: "http://" + silent, Timeout: 200 * time.Millisecond})
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("error %v, want context.DeadlineExceeded", err)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Fatalf("Dial took %v with a 200ms timeout", d)
		}
	})
	t.Run("websocket upgrade never answered", func(t *testing.T) {
		_, err := Dial(context.Background(), "ws://"+silent, Options{Timeout: 200 * time.Millisecond})
		if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, ErrHandshake) {
			t.Fatalf("error %v, want ErrHandshake and context.DeadlineExceeded", err)
		}
	})
	t.Run("TLS first never answered", func(t *testing.T) {
		_, err := Dial(context.Background(), "tls://"+silent, Options{TLSFirst: true, Timeout: 200 * time.Millisecond})
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("error %v, want context.DeadlineExceeded", err)
		}
	})
	t.Run("context canceled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(100*time.Millisecond, cancel)
		_, err := Dial(ctx, "ws://"+silent, Options{Timeout: time.Minute})
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("error %v, want context.Canceled", err)
		}
	})
	t.Run("UpgradeTLS never answered", func(t *testing.T) {
		c, err := Dial(context.Background(), "tls://"+silent, Options{})
		if err != nil {
			t.Fatal(err)
		}
		_, err = UpgradeTLS(context.Background(), c, tlsConfig(nil, "127.0.0.1"), 200*time.Millisecond)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("error %v, want context.DeadlineExceeded", err)
		}
		if _, err := c.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
			t.Fatalf("conn still open after a failed upgrade: %v", err)
		}
	})
}

// wsServer is a hand-made websocket endpoint on 127.0.0.1 that answers
// each upgrade with respond(request) and records the requests.
type wsServer struct {
	addr string
	mu   sync.Mutex
	reqs []*http.Request
}

func startWSServer(t *testing.T, respond func(r *http.Request) string) *wsServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &wsServer{addr: ln.Addr().String()}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				r, err := http.ReadRequest(bufio.NewReader(c))
				if err != nil {
					return
				}
				s.mu.Lock()
				s.reqs = append(s.reqs, r)
				s.mu.Unlock()
				io.WriteString(c, respond(r))
				// Hold the connection until the client closes it.
				io.Copy(io.Discard, c)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	return s
}

func TestWebSocketHandshake(t *testing.T) {
	info := "INFO {\"info_on_connect\":true}\r\n"
	ok := func(r *http.Request) string {
		return "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " +
			acceptKey(r.Header.Get("Sec-WebSocket-Key")) + "\r\n\r\n" + string(srv(opBinary, true, info))
	}
	tests := []struct {
		name    string
		respond func(r *http.Request) string
		want    string // in the error; "" for success
	}{
		{"INFO right behind the 101", ok, ""},
		{"lower-case headers, Connection list", func(r *http.Request) string {
			return "HTTP/1.1 101 Switching Protocols\r\nupgrade: WebSocket\r\nconnection: keep-alive, upgrade\r\nsec-websocket-accept: " +
				acceptKey(r.Header.Get("Sec-WebSocket-Key")) + "\r\n\r\n" + string(srv(opBinary, true, info))
		}, ""},
		{"client port", func(*http.Request) string { return "INFO {\"server_id\":\"x\"}\r\n" }, "malformed HTTP response"},
		{"not found", func(*http.Request) string { return "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n" }, `GET /leafnode answered "HTTP/1.1 404 Not Found"`},
		{"wrong accept", func(*http.Request) string {
			return "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " +
				acceptKey("another key") + "\r\n\r\n"
		}, "Sec-WebSocket-Accept does not match"},
		{"no upgrade header", func(r *http.Request) string {
			return "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " + acceptKey(r.Header.Get("Sec-WebSocket-Key")) + "\r\n\r\n"
		}, "lacks Upgrade: websocket"},
		{"compression not offered", func(r *http.Request) string {
			return "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " +
				acceptKey(r.Header.Get("Sec-WebSocket-Key")) + "\r\nSec-WebSocket-Extensions: permessage-deflate\r\n\r\n"
		}, `extension "permessage-deflate"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := startWSServer(t, tt.respond)
			c, err := Dial(context.Background(), "ws://dev:s3cr3t@"+s.addr, Options{Timeout: 2 * time.Second})
			if tt.want != "" {
				if !errors.Is(err, ErrHandshake) || !strings.Contains(err.Error(), tt.want) {
					t.Fatalf("error %v, want ErrHandshake mentioning %q", err, tt.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if line := readLineFrom(t, bufio.NewReader(c), c); line != info {
				t.Fatalf("first line %q, want %q", line, info)
			}
			s.mu.Lock()
			r := s.reqs[0]
			s.mu.Unlock()
			key, err := base64.StdEncoding.DecodeString(r.Header.Get("Sec-WebSocket-Key"))
			checks := []struct {
				ok   bool
				what string
			}{
				{r.Method == http.MethodGet && r.RequestURI == "/leafnode" && r.ProtoMajor == 1 && r.ProtoMinor == 1, fmt.Sprintf("request line %s %s HTTP/%d.%d", r.Method, r.RequestURI, r.ProtoMajor, r.ProtoMinor)},
				{r.Host == s.addr, "Host " + r.Host},
				{r.Header.Get("Upgrade") == "websocket" && r.Header.Get("Connection") == "Upgrade", "Upgrade/Connection headers"},
				{r.Header.Get("Sec-WebSocket-Version") == "13", "Sec-WebSocket-Version " + r.Header.Get("Sec-WebSocket-Version")},
				{err == nil && len(key) == 16, "Sec-WebSocket-Key " + r.Header.Get("Sec-WebSocket-Key")},
				{r.Header.Get("Sec-WebSocket-Extensions") == "", "offered an extension"},
				{r.Header.Get("Authorization") == "", "sent the URL's credentials"},
			}
			for _, c := range checks {
				if !c.ok {
					t.Errorf("request: %s", c.what)
				}
			}
		})
	}
}
