// Command canopy-demo runs a whole Canopy system in one process and checks
// that it kept its promises: a hub (operator mode, JetStream), three
// leaves with MQTT sensors publishing readings, a firmware rollout to
// every leaf, and a link cut on one leaf while its sensors keep
// publishing. At the end it reads the hub's telemetry stream and the
// leaves' firmware and prints a verdict: every reading a sensor had
// acknowledged is at the hub exactly once and in order, and the firmware
// is applied everywhere.
//
// Everything listens on 127.0.0.1 on ports the kernel chooses; the state
// lives in a temporary directory removed at exit unless --keep is given.
// Exit status: 0 when the checks pass, 1 when they fail or the system
// could not be started, 2 on a bad command line.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		// The first signal ends the run and starts the checks; a second
		// one kills the process the usual way.
		<-ctx.Done()
		stop()
	}()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// options are the command line's settings.
type options struct {
	duration time.Duration
	keep     bool
	rate     float64 // readings per second per sensor
	leaves   int
}

const usage = `Usage: canopy-demo [flags]

Runs a Canopy hub, three leaves and their MQTT sensors in this process,
rolls out a firmware, cuts one leaf's link to the hub and restores it,
then checks that every reading the sensors had acknowledged reached the
hub exactly once and in order, and that every leaf applied the firmware.
Prints PASS and exits 0, or FAIL and exits 1.

Flags:
`

// parseArgs reads the command line; the error is for the user.
func parseArgs(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("canopy-demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.DurationVar(&o.duration, "duration", 90*time.Second, "how long the sensors publish; 0 runs until Ctrl-C, then checks")
	fs.BoolVar(&o.keep, "keep", false, "keep the state directory (key directory, hub and leaf data, log) and print where it is")
	fs.Float64Var(&o.rate, "sensors-rate", 10, "readings per second of each sensor (two sensors per leaf)")
	fs.Usage = func() {
		fmt.Fprint(stderr, usage)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	switch {
	case fs.NArg() > 0:
		return o, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	case o.duration < 0:
		return o, fmt.Errorf("--duration %v: must not be negative", o.duration)
	case o.duration > 0 && o.duration < 10*time.Second:
		return o, fmt.Errorf("--duration %v: too short for the link cut and the rollout to happen; use at least 10s", o.duration)
	case o.rate <= 0 || o.rate > 1000:
		return o, fmt.Errorf("--sensors-rate %v: want more than 0 and at most 1000 per second", o.rate)
	}
	o.leaves = 3
	return o, nil
}

// run is the command: it returns the exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	o, err := parseArgs(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "canopy-demo: %v\n", err)
		return 2
	}
	ok, err := runDemo(ctx, o, stdout)
	if err != nil {
		fmt.Fprintf(stderr, "canopy-demo: %v\n", err)
		return 1
	}
	if !ok {
		return 1
	}
	return 0
}
