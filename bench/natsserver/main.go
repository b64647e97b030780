// Command natsserver runs the nats-server version in go.mod (the one
// canopy-hub embeds) as a plain process for the benchmarks in bench/: the
// server's default options, only the client host and port set, logging off
// and signals handled here rather than by the server.
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
	"os"
	"os/signal"
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
	host := fs.String("host", "127.0.0.1", "client listen host")
	// nats-server treats port 0 as its default 4222; -1 asks the kernel.
	port := fs.Int("port", server.DEFAULT_PORT, "client listen port (-1: any free port)")
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

	s, err := server.NewServer(&server.Options{
		Host:   *host,
		Port:   *port,
		NoLog:  true,
		NoSigs: true,
	})
	if err != nil {
		return fmt.Errorf("create server: %w", err)
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

	<-sigs
	return nil
}
