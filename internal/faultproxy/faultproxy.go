// Package faultproxy is a TCP proxy that cuts its connections on demand,
// after a chosen number of bytes: a flaky field network between a leaf and
// its hub, for tests and for the demo (cmd/canopy-demo).
package faultproxy

import (
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
)

// Proxy forwards every accepted connection to a target address.
type Proxy struct {
	ln      net.Listener
	target  string
	mu      sync.Mutex
	conns   map[net.Conn]bool
	closed  bool           // by Close: no new connections
	wg      sync.WaitGroup // the accept loop and the pipes
	budget  atomic.Int64   // bytes left before the next cut; <0: none armed
	accepts atomic.Int64
	down    atomic.Bool // refuse every connection
}

// SetDown takes the link down (closing every connection and refusing new
// ones) or brings it back up.
func (p *Proxy) SetDown(down bool) {
	p.down.Store(down)
	if down {
		p.CutAll()
	}
}

// New starts a proxy to target on 127.0.0.1, closed when the test ends.
func New(t testing.TB, target string) *Proxy {
	t.Helper()
	p, err := Start(target)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

// Start starts a proxy to target on 127.0.0.1; Close stops it.
func Start(target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("proxy to %s: %w", target, err)
	}
	p := &Proxy{ln: ln, target: target, conns: map[net.Conn]bool{}}
	p.budget.Store(-1)
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Close stops accepting, closes every connection and waits until the
// proxy's goroutines have ended.
func (p *Proxy) Close() {
	p.ln.Close()
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	p.CutAll()
	p.wg.Wait()
}

// Addr is the proxy's host:port.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Accepts counts the connections accepted so far.
func (p *Proxy) Accepts() int64 { return p.accepts.Load() }

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.accepts.Add(1)
		if p.down.Load() {
			c.Close()
			continue
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		if p.closed || p.down.Load() { // closed or cut while dialling
			p.mu.Unlock()
			c.Close()
			up.Close()
			continue
		}
		p.conns[c], p.conns[up] = true, true
		p.wg.Add(2)
		p.mu.Unlock()
		go p.pipe(c, up)
		go p.pipe(up, c)
	}
}

// pipe copies in small chunks so that a cut can land at any byte.
func (p *Proxy) pipe(dst, src net.Conn) {
	defer p.wg.Done()
	buf := make([]byte, 512)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if b := p.budget.Load(); b >= 0 {
				if int64(n) > b {
					dst.Write(buf[:b])
					p.CutAll()
					return
				}
				p.budget.Add(-int64(n))
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				break
			}
		}
		if err != nil {
			break
		}
	}
	src.Close()
	dst.Close()
	p.mu.Lock()
	delete(p.conns, src)
	delete(p.conns, dst)
	p.mu.Unlock()
}

// CutAfter arms a cut of every connection after n more bytes in either
// direction.
func (p *Proxy) CutAfter(n int64) { p.budget.Store(n) }

// CutAll closes every connection now.
func (p *Proxy) CutAll() {
	p.budget.Store(-1)
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		c.Close()
		delete(p.conns, c)
	}
}
