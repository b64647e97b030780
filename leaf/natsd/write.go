package natsd

import (
	"errors"
	"os"
	"time"

	"github.com/canopy-iot/canopy/leaf/natsproto"
)

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

// writeOut takes the queued blocks and writes them, with one writev,
// within deadline.
func (c *client) writeOut(deadline time.Duration) error {
	c.outMu.Lock()
	chunks := c.out.Take(c.spare)
	c.spare = nil
	c.outMu.Unlock()
	var err error
	if len(chunks) > 0 {
		c.conn.SetWriteDeadline(time.Now().Add(deadline))
		_, chunks, err = c.writer.WriteTo(c.conn, chunks)
	}
	c.outMu.Lock()
	if c.spare == nil {
		c.spare = chunks[:0]
	}
	if c.drained != nil && c.out.Len() <= c.stallMark() {
		close(c.drained)
		c.drained = nil
	}
	c.outMu.Unlock()
	return err
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
	pending := c.out.Len()
	c.out.Drop()
	c.out.Write(natsproto.AppendErr(nil, errSlowConsumer))
	c.outMu.Unlock()
	c.srv.log.Warn("slow consumer disconnected", "client_id", c.id, "remote", c.remote, "reason", reason, "bytes", pending)
	// A write already blocked on this client must not hold the writer for
	// the rest of its deadline.
	c.conn.SetWriteDeadline(time.Now())
	c.close(true, "slow consumer", nil)
}
