// Command durablebench is the load generator of Canopy's store-and-forward
// benchmark (bench/durable.sh). It talks JetStream through nats.go's
// jetstream package, with the same settings for canopy-leaf and for
// nats-server, and prints one result line of key=value pairs on stdout.
//
//	durablebench serve  -config FILE                 nats-server (go.mod's version) from a configuration file
//	durablebench ingest -url U -subject S -msgs N    acknowledged publishes, a window in flight
//	durablebench drain  -leaf-url U -hub-url H -listen A -upstream B
//	                                                 a backlog built with the link down, then the link opened
//
// ingest counts every acknowledgement: a publish refused, unanswered or
// answered twice, or a sequence acknowledged twice, fails the run with
// exit status 1. Given -pid, it also reads the server's /proc/PID/io
// before and after and reports the bytes it wrote to disk per message,
// and its memory from /proc/PID/status. drain fails unless the hub stream
// ends up holding exactly the backlog. Exit status 2 is a bad command
// line.
package main

import (
	"context"
	"flag"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/canopy-iot/canopy/bench/internal/benchcli"
)

// errUsage is a bad command line (exit status 2).
var errUsage = benchcli.ErrUsage

const prog = "durablebench"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	benchcli.Exit(prog, err)
}

type command struct {
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

var commands = map[string]command{
	"serve":  {"run nats-server (the version in go.mod) from a configuration file until SIGTERM", runServe},
	"ingest": {"acknowledged JetStream publishes with a window in flight: msgs/s, disk bytes per message", runIngest},
	"drain":  {"a backlog stored on a leaf with its link down, then the link opened: time until the hub holds it", runDrain},
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cmd, err := benchcli.Pick(prog, commands, func(c command) string { return c.summary }, args, stderr)
	if err != nil {
		return err
	}
	return cmd.run(ctx, args[1:], stdout, stderr)
}

func newFlagSet(name string, stderr io.Writer) *flag.FlagSet {
	return benchcli.NewFlagSet(name, stderr)
}

// parse parses a subcommand's flags and rejects positional arguments.
func parse(fs *flag.FlagSet, args []string) error { return benchcli.Parse(prog, fs, args) }

// usageErrorf reports a bad flag value: on the command's output, and
// exit status 2.
func usageErrorf(fs *flag.FlagSet, format string, args ...any) error {
	return benchcli.UsageErrorf(prog, fs, format, args...)
}
