// Command natsserver runs the nats-server version in go.mod (the one
// canopy-hub embeds) as a plain process for the benchmarks in bench/: the
// server's default options, only the listeners named on the command line
// set, logging off (unless -log) and signals handled here rather than by
// the server.
//
// By default it is a plain server with a client port, as run.sh measures
// it. For uplink.sh it can also be a hub (a leafnode listener, no
// authentication) or a leaf of such a hub (one leafnode remote):
//
//	natsserver -port 4222 -leafnodes-port 7422                    # hub
//	natsserver -port 4223 -leaf-remote nats-leaf://127.0.0.1:7422 # leaf
//
// For mqtt.sh it also listens for MQTT clients (-mqtt-port). nats-server's
// MQTT needs JetStream, which it uses for sessions and QoS 1 and 2
// messages, and a server name: with -mqtt-port, JetStream is enabled with
// its default limits, storing in -js-dir or else in a temporary directory
// removed on exit, and the server is named "natsserver". Without
// -mqtt-port, JetStream stays off unless -js-dir is given.
//
// It deliberately does not go through hub: the hub's defaults (JetStream,
// leafnode and monitoring listeners) are not what the benchmarks compare.
// Its only difference from nats-server's own main is that it reads no
// configuration file and no other flags.
//
// Exit status: 0 after SIGINT or SIGTERM, 1 if the server cannot start, 2 on
// a bad command line.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// readyTimeout bounds how long the server may take to accept clients.
const readyTimeout = 10 * time.Second

var errUsage = errors.New("usage")

func main() {
	err := run(os.Args[1:], os.Stdout, os.Stderr)
	switch {
	case err == nil:
	case errors.Is(err, errUsage):
		os.Exit(2)
	default:
		fmt.Fprintln(os.Stderr, "natsserver:", err)
		os.Exit(1)
	}
}

func run(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("natsserver", flag.ContinueOnError)
	fs.SetOutput(stderr)
	host := fs.String("host", "127.0.0.1", "client (and leafnode) listen host")
	// nats-server treats port 0 as its default 4222; -1 asks the kernel.
	port := fs.Int("port", server.DEFAULT_PORT, "client listen port (-1: any free port)")
	leafPort := fs.Int("leafnodes-port", 0, "leafnode listen port, without authentication (0: none; -1: any free port)")
	noAdvertise := fs.Bool("leafnodes-no-advertise", false, "do not advertise the leafnode listener's address to leaf nodes "+
		"(as behind a load balancer: leaf nodes keep using the URL they were given)")
	remote := fs.String("leaf-remote", "", "run as a leaf node of the hub at this leafnode URL (nats-leaf://host:port)")
	reconnect := fs.Duration("leaf-reconnect", 0, "wait before reconnecting a leafnode remote (0: nats-server's default, 1s)")
	compression := fs.String("leaf-compression", "", "compression of the leafnode remote: off, s2_auto, s2_fast, … (empty: nats-server's default, s2_auto)")
	mqttPort := fs.Int("mqtt-port", 0, "MQTT listen port, on -host, without authentication; enables JetStream (0: none; -1: any free port)")
	jsDir := fs.String("js-dir", "", "enable JetStream, storing in this directory (default with -mqtt-port: a temporary directory, removed on exit)")
	logOn := fs.Bool("log", false, "log nats-server's notices and errors (slow consumers, for one) on stderr")
	showVersion := fs.Bool("version", false, "print the nats-server version and exit")
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "natsserver: unexpected arguments %q\n", fs.Args())
		return errUsage
	}
	if *showVersion {
		fmt.Fprintln(stdout, server.VERSION)
		return nil
	}
	if *reconnect < 0 {
		fmt.Fprintf(stderr, "natsserver: -leaf-reconnect %v: must not be negative\n", *reconnect)
		return errUsage
	}
	if *remote == "" && (*reconnect != 0 || *compression != "") {
		fmt.Fprintln(stderr, "natsserver: -leaf-reconnect and -leaf-compression need -leaf-remote")
		return errUsage
	}

	opts := &server.Options{
		Host:   *host,
		Port:   *port,
		NoLog:  !*logOn,
		NoSigs: true,
	}
	if *leafPort != 0 {
		opts.LeafNode.Host = *host
		opts.LeafNode.Port = *leafPort
		opts.LeafNode.NoAdvertise = *noAdvertise
	}
	if *remote != "" {
		u, err := url.Parse(*remote)
		if err != nil || u.Host == "" {
			fmt.Fprintf(stderr, "natsserver: -leaf-remote %q: want nats-leaf://host:port\n", *remote)
			return errUsage
		}
		opts.LeafNode.ReconnectInterval = *reconnect
		opts.LeafNode.Remotes = []*server.RemoteLeafOpts{{
			URLs:        []*url.URL{u},
			Compression: server.CompressionOpts{Mode: *compression},
		}}
	}
	if *mqttPort != 0 {
		opts.MQTT.Host = *host
		opts.MQTT.Port = *mqttPort
		opts.ServerName = "natsserver" // MQTT requires an explicit name
		if *jsDir == "" {
			dir, err := os.MkdirTemp("", "natsserver-js-")
			if err != nil {
				return fmt.Errorf("JetStream store: %w", err)
			}
			defer os.RemoveAll(dir)
			*jsDir = dir
		}
	}
	if *jsDir != "" {
		opts.JetStream = true
		opts.StoreDir = *jsDir
	}
	s, err := server.NewServer(opts)
	if err != nil {
		return fmt.Errorf("create server: %w", err)
	}
	if *logOn {
		s.ConfigureLogger()
	}
	// Subscribe before starting so a signal sent as soon as the port opens
	// is not lost.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)

	s.Start()
	defer s.Shutdown()
	if !s.ReadyForConnections(readyTimeout) {
		return fmt.Errorf("server not ready for connections within %v", readyTimeout)
	}
	fmt.Fprintf(stderr, "natsserver: nats-server %s listening on %s\n", server.VERSION, s.Addr())
	if *mqttPort != 0 {
		fmt.Fprintf(stderr, "natsserver: MQTT on %s, JetStream in %s\n", net.JoinHostPort(*host, strconv.Itoa(opts.MQTT.Port)), *jsDir)
	}

	<-sigs
	return nil
}
