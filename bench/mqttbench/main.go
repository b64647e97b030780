// Command mqttbench is the MQTT load generator of Canopy's benchmarks
// (bench/mqtt.sh). It speaks MQTT 3.1.1 to any broker through the Eclipse
// Paho Go client, with the same settings for every broker, and prints
// key=value result lines on stdout.
//
//	mqttbench pubsub  [-pubs P] [-subs S] [-qos Q] [-size B] [-duration D | -msgs N]
//	mqttbench latency [-rate R] [-qos Q] [-size B] [-duration D | -msgs N]
//	mqttbench idle    [-conns N]
//
// pubsub: P publishers, each on its own connection, publish to one topic
// (bench/pubsub, shared by all of them) that S subscribers, each on its
// own connection, have subscribed to; every subscriber receives every
// message. latency is the same with one publisher and one subscriber and
// the publisher held to a fixed rate. idle opens N connections and holds
// them until it is told to stop, so that the broker's memory can be read.
//
// Every payload starts with a 24-byte header: the publisher's index, a
// sequence number that counts up from 0 per publisher, and the time it
// was published. Every subscriber accounts for every sequence number of
// every publisher. "sent" is what the publishers had acknowledged by the
// broker (PUBACK at QoS 1, PUBCOMP at QoS 2) or, at QoS 0, written to the
// socket. Once a publisher is done it publishes an end marker behind its
// last message; since the broker keeps each publisher's messages in order,
// a subscriber that has every marker has everything it will get. The run
// drains until every subscriber has every marker, or until nothing has
// arrived for -drain. Then lost = expected − received, per subscriber and
// in all. A run in which a message was lost, duplicated, delivered out of
// its publisher's order or not as it was sent prints its counts without
// any rate and exits with status 1; so does a run in which the broker
// closed a connection. Exit status 2 is a bad command line.
//
// Paho settings, identical for every broker: MQTT 3.1.1, clean sessions,
// unique client IDs, no automatic reconnect (a reconnect during a run
// would invalidate it: the run fails instead), keepalive 60 s.
//
// Publishers keep at most -inflight messages unacknowledged, 20 by
// default. Paho itself has no limit (and runs out of its 65,535 packet
// IDs); 20 is the default of Paho's Python client and Mosquitto's
// max_inflight_messages, and Mosquitto 2.0 closes the connection of a
// 3.1.1 client that has more QoS 2 messages than that unacknowledged.
// Paho keeps the payload slice it is given until the packet is written
// (or acknowledged), so every message gets its own.
//
// Subscribers handle messages on Paho's own goroutine (OrderMatters true):
// the handler only counts, and with OrderMatters false Paho starts a
// goroutine per message, which reorders what it delivers and would make
// the order check meaningless. Publishers receive nothing, so
// OrderMatters is false there. Paho reads every packet with
// three or more read system calls (one for the first byte, one per length
// byte, one for the rest); the connection it is given reads through a
// -read-buffer byte buffer instead, so that a subscriber is not limited by
// system calls. Paho writes every packet with its own write system call;
// that, its channels and its allocations make it a slow client, the same
// for every broker.
package main

import (
	"context"
	"flag"
	"io"
	"log"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/canopy-iot/canopy/bench/internal/benchcli"
)

// errUsage is a bad command line (exit status 2).
var errUsage = benchcli.ErrUsage

const prog = "mqttbench"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// Paho's critical errors help explain a failed run; they go to
	// stderr, which the runner keeps. (Its ERROR log also reports every
	// connection closed by a DISCONNECT, so it stays off.)
	mqtt.CRITICAL = log.New(os.Stderr, "paho: ", 0)
	err := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	benchcli.Exit(prog, err)
}

// command is one subcommand: it parses its own flags from args and prints
// its result on stdout.
type command struct {
	summary string
	run     func(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error
}

var commands = map[string]command{
	"pubsub":  {"P publishers → S subscribers on one topic: throughput as received, every message accounted for", runPubSub},
	"latency": {"1 publisher → 1 subscriber at a fixed rate: latency percentiles", runLatency},
	"idle":    {"hold N idle connections until SIGINT/SIGTERM (or stdin closes, with -stdin)", runIdle},
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	cmd, err := benchcli.Pick(prog, commands, func(c command) string { return c.summary }, args, stderr)
	if err != nil {
		return err
	}
	return cmd.run(ctx, args[1:], stdin, stdout, stderr)
}

// common are the flags every command has.
type common struct {
	url        string
	timeout    time.Duration
	keepalive  time.Duration
	readBuffer int
}

func (c *common) flags(fs *flag.FlagSet) {
	fs.StringVar(&c.url, "url", "tcp://127.0.0.1:1883", "broker URL (tcp://host:port)")
	fs.DurationVar(&c.timeout, "timeout", 5*time.Minute, "fail if the whole run takes longer")
	fs.DurationVar(&c.keepalive, "keepalive", 60*time.Second, "MQTT keepalive of every connection (whole seconds)")
	fs.IntVar(&c.readBuffer, "read-buffer", 32<<10, "bytes each connection reads at once (0: Paho's unbuffered reads, several system calls per packet)")
}

func (c *common) check(fs *flag.FlagSet) error {
	switch {
	case !strings.HasPrefix(c.url, "tcp://"):
		return usageErrorf(fs, "-url %q: want tcp://host:port", c.url)
	case c.timeout <= 0:
		return usageErrorf(fs, "-timeout %v: must be positive", c.timeout)
	case c.keepalive < time.Second || c.keepalive%time.Second != 0:
		return usageErrorf(fs, "-keepalive %v: must be a whole number of seconds, at least 1s", c.keepalive)
	case c.readBuffer < 0:
		return usageErrorf(fs, "-read-buffer %d: must not be negative", c.readBuffer)
	}
	return nil
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
