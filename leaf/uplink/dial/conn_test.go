package dial

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/canopy-iot/canopy/internal/wait"
)

func TestProxyConnectKeepsBytesBehindResponse(t *testing.T) {
	const info = "INFO {\"info_on_connect\":true}\r\n"
	for _, schedule := range [][]byte{nil, {200}, {5, 9, 31}} {
		sc := newScriptConn([]byte("HTTP/1.1 200 Connection established\r\nVia: 1.1 squid\r\n\r\n"+info), schedule)
		proxy, _ := parseProxy("http://edge:pw@proxy:3128")
		c, err := proxyConnect(sc, proxy, "hub:7422")
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(c)
		if err != nil || string(got) != info {
			t.Fatalf("schedule %v: read %q, %v; want the INFO", schedule, got, err)
		}
		want := "CONNECT hub:7422 HTTP/1.1\r\nHost: hub:7422\r\nProxy-Authorization: Basic ZWRnZTpwdw==\r\n\r\n"
		if w := string(sc.written()); w != want {
			t.Fatalf("request %q, want %q", w, want)
		}
	}
}

func TestProxyConnectResponses(t *testing.T) {
	tests := []struct {
		resp string
		want string // in the error, "" for success
	}{
		{"HTTP/1.0 200 OK\r\n\r\n", ""},
		{"HTTP/1.1 204 No Content\n\n", ""},
		{"HTTP/1.1 403 Forbidden\r\nContent-Length: 5\r\n\r\nnope!", `"HTTP/1.1 403 Forbidden"`},
		{"HTTP/1.1 301 Moved\r\nLocation: x\r\n\r\n", `"HTTP/1.1 301 Moved"`},
		{"SSH-2.0-OpenSSH_9.6\r\n", "malformed HTTP response"},
		{"HTTP/1.1 200 OK\r\n", "unexpected EOF"},
		{"HTTP/1.1 200 OK\r\n bad header\r\n\r\n", "malformed HTTP response"},
		{"HTTP/1.1 200 OK\r\nX: " + strings.Repeat("y", 5000) + "\r\n\r\n", "longer than"},
		{"HTTP/1.1 200 OK\r\n" + strings.Repeat("X: y\r\n", 200) + "\r\n", "more than 100 header lines"},
	}
	for _, tt := range tests {
		proxy, _ := parseProxy("http://proxy")
		_, err := proxyConnect(newScriptConn([]byte(tt.resp), nil), proxy, "hub:7422")
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("%.30q: %v", tt.resp, err)
		case tt.want != "" && (!errors.Is(err, ErrProxy) || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("%.30q: error %v, want ErrProxy mentioning %q", tt.resp, err, tt.want)
		}
	}
}

// TestConcurrentReadWrite runs Read (answering pings) and Write at the
// same time over a synchronous pipe; the race detector watches.
func TestConcurrentReadWrite(t *testing.T) {
	client, server := net.Pipe()
	c := newWSConn(client, bufio.NewReaderSize(client, readBufferSize))
	const n = 200

	var fromClient bytes.Buffer
	writeErr := make(chan error, 1)
	writesDone := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { // the server reads everything the client writes
		defer wg.Done()
		io.Copy(&fromClient, server)
	}()
	go func() { // and sends pings between data frames, then a close
		defer wg.Done()
		for i := range n {
			server.Write(srv(opPing, true, "p"))
			server.Write(srv(opBinary, i%2 == 0, "d"))
			if i%2 == 0 {
				continue
			}
			server.Write(srv(opContinuation, true, ""))
		}
		<-writesDone // a close now would end the client's writing
		server.Write(srv(opClose, true, "\x03\xe8"))
	}()
	go func() {
		defer close(writesDone)
		for range n {
			if _, err := c.Write([]byte("PUB x 0\r\n\r\n")); err != nil {
				writeErr <- err
				return
			}
		}
		writeErr <- nil
	}()
	got, err := readAll(c, []byte{1, 3})
	if err != io.EOF || string(got) != strings.Repeat("d", n) {
		t.Fatalf("read %q, %v", got, err)
	}
	if err := <-writeErr; err != nil {
		t.Fatal(err)
	}
	c.Close()
	server.Close()
	wg.Wait()

	var pongs, data, closes int
	for _, f := range decodeClientFrames(t, fromClient.Bytes()) {
		switch f.op {
		case opPong:
			pongs++
		case opBinary:
			data++
		case opClose:
			closes++
		}
	}
	if pongs != n || data != n || closes != 1 {
		t.Fatalf("client sent %d pongs, %d data frames, %d closes; want %d, %d, 1", pongs, data, closes, n, n)
	}
}

func TestCloseDoesNotWaitForBlockedWrite(t *testing.T) {
	client, server := net.Pipe() // nobody reads server: writes block
	defer server.Close()
	c := newWSConn(client, bufio.NewReaderSize(client, readBufferSize))
	started := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		close(started)
		_, err := c.Write([]byte("blocked"))
		done <- err
	}()
	<-started
	wait.For(t, 3*time.Second, func() error {
		if c.wmu.TryLock() {
			c.wmu.Unlock()
			return errors.New("Write has not taken the write lock yet")
		}
		return nil
	})
	closed := make(chan struct{})
	go func() {
		c.Close()
		close(closed)
	}()
	select {
	case <-closed:
	case <-time.After(3 * time.Second):
		t.Fatal("Close blocked")
	}
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("blocked Write succeeded after Close")
		}
	case <-time.After(3 * time.Second):
		t.Fatal("Write still blocked after Close")
	}
}

func TestDeadlinesPassThrough(t *testing.T) {
	client, server := net.Pipe()
	c := newWSConn(client, bufio.NewReaderSize(client, readBufferSize))
	defer func() {
		server.Close() // first, so the close frame fails at once
		c.Close()
	}()
	c.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	if _, err := c.Read(make([]byte, 1)); !isTimeout(err) {
		t.Fatalf("Read: %v, want a timeout", err)
	}
	c.SetWriteDeadline(time.Now().Add(20 * time.Millisecond))
	if _, err := c.Write([]byte("x")); !isTimeout(err) {
		t.Fatalf("Write: %v, want a timeout", err)
	}
	// A timed-out Read is not fatal.
	c.SetDeadline(time.Time{})
	go server.Write(srv(opBinary, true, "ok"))
	buf := make([]byte, 2)
	if n, err := io.ReadFull(c, buf); n != 2 || err != nil || string(buf) != "ok" {
		t.Fatalf("Read after the timeout: %q, %v", buf[:n], err)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
