package auth

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

// TestIntegrationNATSGoConnect connects a real nats.go client to a minimal
// server on 127.0.0.1 that speaks only the handshake: INFO, then CONNECT
// checked with Authenticate, then PONG or -ERR. It proves that what
// nats.go sends, nonce signatures included, is what Authenticate expects.
func TestIntegrationNATSGoConnect(t *testing.T) {
	nk, other := newNKeyUser(t), newNKeyUser(t)
	signer := func(nonce []byte) ([]byte, error) { return nk.kp.Sign(nonce) }
	tokenCfg := Config{Token: hash(t, "s3cret")}
	usersCfg := Config{Users: []UserConfig{
		{User: "alice", Password: "alice-pw"},
		{User: "bob", Password: hash(t, "bob-pw")},
		{NKey: nk.pub},
	}}

	tests := []struct {
		name   string
		cfg    Config
		url    func(addr string) string
		opts   []nats.Option
		ok     bool
		line   string // the expected CONNECT, when it is deterministic
		reason string
	}{
		{name: "no auth", cfg: Config{}, ok: true, line: connectLine("")},
		{name: "nats.Token", cfg: tokenCfg, opts: []nats.Option{nats.Token("s3cret")}, ok: true, line: connectLine(`"auth_token":"s3cret",`)},
		{name: "URL token", cfg: tokenCfg, url: func(a string) string { return "nats://s3cret@" + a }, ok: true, line: connectLine(`"auth_token":"s3cret",`)},
		{name: "wrong token", cfg: tokenCfg, opts: []nats.Option{nats.Token("guess")}, reason: "wrong token"},
		{name: "nats.UserInfo", cfg: usersCfg, opts: []nats.Option{nats.UserInfo("alice", "alice-pw")}, ok: true, line: connectLine(`"user":"alice","pass":"alice-pw",`)},
		{name: "URL user and password", cfg: usersCfg, url: func(a string) string { return "nats://bob:bob-pw@" + a }, ok: true, line: connectLine(`"user":"bob","pass":"bob-pw",`)},
		{name: "wrong password", cfg: usersCfg, opts: []nats.Option{nats.UserInfo("bob", "alice-pw")}, reason: "wrong password"},
		{name: "URL user without password", cfg: usersCfg, url: func(a string) string { return "nats://alice@" + a },
			line:   connectLine(`"auth_token":"alice",`),
			reason: "token sent, but users are configured (a URL user without password is sent as a token)"},
		{name: "no credentials", cfg: usersCfg, reason: "no credentials", line: connectLine("")},
		{name: "nats.Nkey", cfg: usersCfg, opts: []nats.Option{nats.Nkey(nk.pub, signer)}, ok: true},
		{name: "nats.Nkey with another key", cfg: usersCfg, opts: []nats.Option{nats.Nkey(nk.pub, other.kp.Sign)}, reason: "signature does not verify"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := startHandshakeServer(t, mustNew(t, tt.cfg))
			url := "nats://" + srv.addr
			if tt.url != nil {
				url = tt.url(srv.addr)
			}
			opts := append([]nats.Option{nats.NoReconnect(), nats.Timeout(5 * time.Second)}, tt.opts...)
			nc, err := nats.Connect(url, opts...)
			if nc != nil {
				nc.Close()
			}
			got := srv.result()
			if tt.line != "" && got.line != tt.line {
				t.Errorf("CONNECT\n got %q\nwant %q", got.line, tt.line)
			}
			if tt.ok {
				if err != nil || got.err != nil {
					t.Fatalf("Connect: %v; Authenticate: %v (%s)", err, got.err, Reason(got.err))
				}
				return
			}
			if !errors.Is(err, nats.ErrAuthorization) {
				t.Errorf("Connect error %v, want nats.ErrAuthorization", err)
			}
			if Reason(got.err) != tt.reason {
				t.Errorf("reason %q, want %q", Reason(got.err), tt.reason)
			}
		})
	}
}

type handshake struct {
	line string // the CONNECT line
	err  error  // from Authenticate
}

type handshakeServer struct {
	addr string
	done chan handshake
}

func (s *handshakeServer) result() handshake {
	select {
	case h := <-s.done:
		return h
	case <-time.After(10 * time.Second):
		return handshake{err: errors.New("no CONNECT received")}
	}
}

// startHandshakeServer serves one connection.
func startHandshakeServer(t *testing.T, a *Authenticator) *handshakeServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &handshakeServer{addr: ln.Addr().String(), done: make(chan handshake, 1)}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	wg.Go(func() {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		s.done <- serveHandshake(conn, a)
	})
	return s
}

func serveHandshake(conn net.Conn, a *Authenticator) handshake {
	info := map[string]any{
		"server_id": "NTEST", "version": "2.15.2", "proto": 1, "headers": true,
		"max_payload": 1 << 20, "client_id": 1, "auth_required": a.AuthRequired(),
	}
	var nonce string
	if a.NonceRequired() {
		nonce = a.NewNonce()
		info["nonce"] = nonce
	}
	b, _ := json.Marshal(info)
	fmt.Fprintf(conn, "INFO %s\r\n", b)

	r := bufio.NewReader(conn)
	line, err := r.ReadString('\n')
	if err != nil {
		return handshake{err: err}
	}
	var c Credentials
	arg := strings.TrimSuffix(strings.TrimPrefix(line, "CONNECT "), "\r\n")
	if err := json.Unmarshal([]byte(arg), &c); err != nil {
		return handshake{line: line, err: err}
	}
	if _, err := a.Authenticate(c, nonce); err != nil {
		fmt.Fprintf(conn, "-ERR '%s'\r\n", err.Error())
		return handshake{line: line, err: err}
	}
	// Answer PINGs until the client goes away.
	for {
		l, err := r.ReadString('\n')
		if err != nil {
			return handshake{line: line}
		}
		if l == "PING\r\n" {
			conn.Write([]byte("PONG\r\n"))
		}
	}
}
