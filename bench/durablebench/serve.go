package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// runServe runs nats-server from a configuration file, as nats-server -c
// would, in this process: the benchmark's anchors and its hub are the
// nats-server version canopy-hub embeds, configured in nats-server's own
// syntax (jetstream { sync_interval: always }, leafnodes remotes, domains).
// Signals end it through ctx.
func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("serve", stderr)
	file := fs.String("config", "", "nats-server configuration file (required)")
	logOn := fs.Bool("log", false, "log nats-server's notices and errors on stderr")
	version := fs.Bool("version", false, "print the nats-server version and exit")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *version {
		fmt.Fprintln(stdout, server.VERSION)
		return nil
	}
	if *file == "" {
		return usageErrorf(fs, "-config is required")
	}
	opts, err := server.ProcessConfigFile(*file)
	if err != nil {
		return fmt.Errorf("read %s: %w", *file, err)
	}
	opts.NoSigs = true
	opts.NoLog = !*logOn
	s, err := server.NewServer(opts)
	if err != nil {
		return fmt.Errorf("create server: %w", err)
	}
	if *logOn {
		s.ConfigureLogger()
	}
	s.Start()
	defer s.Shutdown()
	if !s.ReadyForConnections(30 * time.Second) {
		return fmt.Errorf("server not ready for connections within 30s")
	}
	fmt.Fprintf(stderr, "durablebench: nats-server %s listening on %s\n", server.VERSION, s.Addr())
	<-ctx.Done()
	return nil
}
