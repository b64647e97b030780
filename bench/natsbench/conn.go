package main

import (
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
)

// flushTimeout bounds one flush (a PING/PONG round trip behind everything
// already written). It is longer than nats.go's 10s default because a
// publisher's final flush waits behind up to a socket buffer of messages on
// a server that may be delivering to several slow receivers.
const flushTimeout = time.Minute

// failures collects errors that nats.go reports asynchronously (a server
// closing a connection, a slow consumer): the run waits on it next to its
// own events and fails with the first one.
type failures chan error

func newFailures() failures { return make(failures, 1) }

// report records err unless an earlier failure is already waiting.
func (f failures) report(err error) {
	select {
	case f <- err:
	default:
	}
}

// connect opens a connection with nats.go's default options. The handlers
// only observe: a disconnect or an asynchronous error means the numbers of
// this run are not comparable (a server dropping a slow consumer, say), so
// it is reported as a failure rather than silently reconnected through.
func connect(url, name string, f failures) (*nats.Conn, error) {
	nc, err := nats.Connect(url,
		nats.Name("natsbench "+name),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			// nats.go calls this with a nil error when we close the
			// connection ourselves.
			if err != nil {
				f.report(fmt.Errorf("%s: disconnected: %w", name, err))
			}
		}),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			f.report(fmt.Errorf("%s: %w", name, err))
		}),
	)
	if err != nil {
		return nil, fmt.Errorf("%s: connect %s: %w", name, url, err)
	}
	return nc, nil
}

// closeAll closes connections, ignoring nil entries left by a failed setup.
func closeAll(conns []*nats.Conn) {
	for _, nc := range conns {
		if nc != nil {
			nc.Close()
		}
	}
}
