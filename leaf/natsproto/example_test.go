package natsproto_test

import (
	"fmt"

	"github.com/canopy-iot/canopy/leaf/natsproto"
)

// conn shows the shape of a server's read side: embed NopHandler, handle
// the operations of the mode, and queue replies for the write side.
type conn struct {
	natsproto.NopHandler
	out []byte
}

func (c *conn) OnPing() error {
	c.out = append(c.out, natsproto.PongLine...)
	return nil
}

func (c *conn) OnSub(subject, queue, sid []byte) error {
	fmt.Printf("sub %s sid %s\n", subject, sid)
	return nil
}

func (c *conn) OnPub(subject, reply, payload []byte) error {
	// Echo to the subscription with sid 1, as a server delivering it would.
	c.out = natsproto.AppendMsg(c.out, subject, []byte("1"), reply, payload)
	return nil
}

func ExampleParser() {
	c := &conn{}
	p := natsproto.NewParser(c, natsproto.Config{Mode: natsproto.ModeServer})

	// Reads may cut the stream anywhere.
	for _, read := range []string{"SUB foo 1\r\nPUB foo 5\r\nhel", "lo\r\nPI", "NG\r\n"} {
		if err := p.Parse([]byte(read)); err != nil {
			if text, ok := natsproto.WireText(err); ok {
				c.out = natsproto.AppendErr(c.out, text)
			}
			break
		}
	}
	fmt.Printf("%q\n", c.out)
	// Output:
	// sub foo sid 1
	// "MSG foo 1 5\r\nhello\r\nPONG\r\n"
}
