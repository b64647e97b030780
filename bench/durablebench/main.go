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
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
)

var errUsage = errors.New("usage")

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	switch {
	case err == nil:
	case errors.Is(err, errUsage):
		os.Exit(2)
	default:
		fmt.Fprintln(os.Stderr, "durablebench:", err)
		os.Exit(1)
	}
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
	if len(args) == 0 || args[0] == "-h" || args[0] == "-help" || args[0] == "--help" {
		usage(stderr)
		return errUsage
	}
	cmd, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "durablebench: unknown command %q\n", args[0])
		usage(stderr)
		return errUsage
	}
	return cmd.run(ctx, args[1:], stdout, stderr)
}

func usage(w io.Writer) {
	names := make([]string, 0, len(commands))
	for name := range commands {
		names = append(names, name)
	}
	sort.Strings(names)
	var b strings.Builder
	b.WriteString("usage: durablebench COMMAND [flags]   (durablebench COMMAND -h for its flags)\n\ncommands:\n")
	for _, name := range names {
		fmt.Fprintf(&b, "  %-8s %s\n", name, commands[name].summary)
	}
	io.WriteString(w, b.String())
}

func newFlagSet(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

// parse parses a subcommand's flags and rejects positional arguments.
func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(fs.Output(), "durablebench %s: unexpected arguments %q\n", fs.Name(), fs.Args())
		return errUsage
	}
	return nil
}

// usageErrorf reports a bad flag value: on the command's output, and exit
// status 2.
func usageErrorf(fs *flag.FlagSet, format string, args ...any) error {
	fmt.Fprintf(fs.Output(), "durablebench %s: %s\n", fs.Name(), fmt.Sprintf(format, args...))
	return errUsage
}
