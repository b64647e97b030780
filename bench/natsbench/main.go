// Command natsbench is the load generator of Canopy's benchmarks. It speaks
// to any NATS server through nats.go, with the same settings for every
// server, and prints one result line of key=value pairs on stdout.
//
//	natsbench pubsub  [-subs N] [-size B] [-msgs N]    1 publisher → N subscribers
//	natsbench queue   [-members N] [-size B] [-msgs N] 1 publisher → one queue group
//	natsbench reqrep  [-size B] [-requests N]          sequential request/reply latency
//	natsbench idle    -pid P [-clients K]              server RSS with K idle clients
//	natsbench restore -listen A -upstream H -pub-url U leafnode link cut and restored
//	natsbench free-port                                print a free TCP port on 127.0.0.1
//	natsbench wait-listen -port N [-pid P]             wait until the port is listening
//
// Every connection uses nats.go's defaults with one exception: receivers
// have no pending limits, so a receiver that falls behind the server queues
// messages in the client instead of dropping them as a client-side slow
// consumer. Drops would distort the count (and the rate) in a way that
// depends on the client, not on the server under test.
//
// Every message carries its sequence number in its first 8 bytes, and every
// receiver accounts for every sequence number: a message lost, duplicated,
// delivered twice within a queue group or of the wrong size fails the run
// with exit status 1, and so does a connection the server closes. Exit
// status 2 is a bad command line.
//
// The publisher and the receivers may be on different servers joined by a
// leafnode link (pubsub and queue -pub-url, reqrep -responder-url). The
// receivers' interest then reaches the publisher's server asynchronously,
// so the run first sends probes, empty messages that no receiver counts,
// until one has arrived; everything published afterwards is delivered in
// order behind it. restore measures the link itself: see runRestore.
package main

import (
	"context"
	"flag"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/canopy-iot/canopy/bench/internal/benchcli"
)

// errUsage is a bad command line (exit status 2).
var errUsage = benchcli.ErrUsage

const prog = "natsbench"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	benchcli.Exit(prog, err)
}

// command is one subcommand: it parses its own flags from args and prints
// its result line on stdout.
type command struct {
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

var commands = map[string]command{
	"pubsub":      {"1 publisher → N subscribers: throughput as received", runPubSub},
	"queue":       {"1 publisher → a queue group: throughput, exactly-once delivery", runQueue},
	"reqrep":      {"sequential request/reply latency percentiles", runReqRep},
	"idle":        {"server RSS with K idle clients, each with one subscription", runIdle},
	"restore":     {"leafnode link through a proxy cut and restored: time to the first message upstream", runRestore},
	"free-port":   {"print a free TCP port on 127.0.0.1", runFreePort},
	"wait-listen": {"wait until a TCP port is listening, without connecting to it", runWaitListen},
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cmd, err := benchcli.Pick(prog, commands, func(c command) string { return c.summary }, args, stderr)
	if err != nil {
		return err
	}
	return cmd.run(ctx, args[1:], stdout, stderr)
}

// common are the flags every load command has.
type common struct {
	url     string
	timeout time.Duration
}

func (c *common) flags(fs *flag.FlagSet) {
	fs.StringVar(&c.url, "url", "nats://127.0.0.1:4222", "server URL")
	fs.DurationVar(&c.timeout, "timeout", 5*time.Minute, "fail if the whole run takes longer")
}

// parse parses a subcommand's flags and rejects positional arguments.
func parse(fs *flag.FlagSet, args []string) error { return benchcli.Parse(prog, fs, args) }

// usageErrorf reports a bad flag value: on the command's output, and
// exit status 2.
func usageErrorf(fs *flag.FlagSet, format string, args ...any) error {
	return benchcli.UsageErrorf(prog, fs, format, args...)
}

func newFlagSet(name string, stderr io.Writer) *flag.FlagSet {
	return benchcli.NewFlagSet(name, stderr)
}
