package natsd

import (
	"errors"
	"os"
	"time"

	"github.com/canopy-iot/canopy/leaf/natsproto"
)

// maxKeptOut is the largest output buffer kept for reuse. A burst should
// not pin megabytes per client for the connection's life.
const maxKeptOut = 64 << 10

// writeLoop writes what is queued for the client, as one write per wake-up
// however many messages were queued meanwhile.
func (c *client) writeLoop() {
	defer c.srv.wg.Done()
	for {
		select {
		case <-c.flushCh:
			if err := c.writeOut(c.srv.cfg.WriteDeadline.Std()); err != nil {
				c.writeFailed(err)
			}
		case <-c.done:
			if c.graceful.Load() {
				c.writeOut(min(c.srv.cfg.WriteDeadline.Std(), shutdownFlush))
			}
			c.conn.Close()
			return
		}
	}
}

// writeOut takes the queued bytes and writes them within deadline.
func (c *client) writeOut(deadline time.Duration) error {
	c.outMu.Lock()
	buf := c.out
	c.out, c.spare = c.spare[:0], nil
	c.outMu.Unlock()
	if len(buf) == 0 {
		c.keepSpare(buf)
		return nil
	}
	c.conn.SetWriteDeadline(time.Now().Add(deadline))
	_, err := c.conn.Write(buf)
	c.keepSpare(buf)
	return err
}

func (c *client) keepSpare(buf []byte) {
	if cap(buf) > maxKeptOut {
		return
	}
	c.outMu.Lock()
	if c.spare == nil {
		c.spare = buf[:0]
	}
	c.outMu.Unlock()
}

func (c *client) writeFailed(err error) {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		c.slowConsumer("write deadline exceeded")
		return
	}
	c.close(false, "write failed", err)
}

// slowConsumer disconnects a client that does not keep up, so that it
// never delays anyone else: what is queued for it is dropped, and it is
// told why if it still reads.
func (c *client) slowConsumer(reason string) {
	c.outMu.Lock()
	if c.closed {
		c.outMu.Unlock()
		return
	}
	pending := len(c.out)
	c.out = natsproto.AppendErr(c.out[:0], errSlowConsumer)
	c.outMu.Unlock()
	c.srv.log.Warn("slow consumer disconnected", "client_id", c.id, "remote", c.remote, "reason", reason, "bytes", pending)
	// A write already blocked on this client must not hold the writer for
	// the rest of its deadline.
	c.conn.SetWriteDeadline(time.Now())
	c.close(true, "slow consumer", nil)
}
