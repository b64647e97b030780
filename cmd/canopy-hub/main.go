// Command canopy-hub runs Canopy's datacenter node: an embedded nats-server
// with clustering, gateways, JetStream and a leafnode listener for devices.
//
// It only parses the command line and handles signals; the work is in
// appliance and hub. Exit status: 0 after a clean shutdown, 1 on a runtime
// failure, 2 on a bad configuration or command line.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/canopy-iot/canopy/appliance"
	"github.com/canopy-iot/canopy/hub"
	"github.com/canopy-iot/canopy/internal/version"
)

const program = "canopy-hub"

// Exit statuses.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}

// usageError is a command line the program cannot act on.
type usageError struct{ error }

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var configPath string
	started := false // set once cobra has parsed a valid command line
	root := &cobra.Command{
		Use:              program + " [run|check-config|version] [flags]",
		Short:            "Canopy's datacenter hub: NATS, JetStream and the leafnode listener for devices",
		Args:             cobra.NoArgs,
		SilenceUsage:     true,
		SilenceErrors:    true,
		PersistentPreRun: func(*cobra.Command, []string) { started = true },
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetArgs(args)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	flags := root.PersistentFlags()
	flags.StringVarP(&configPath, "config", "c", "", "configuration file (default "+appliance.DefaultHubConfig+", if it exists)")
	overrides := appliance.ConfigFlags(flags, appliance.HubSettings)
	load := func() (hub.Config, error) {
		if configPath != "" {
			return appliance.LoadHub(configPath, true, overrides())
		}
		return appliance.LoadHub(appliance.DefaultHubConfig, false, overrides())
	}

	serve := func(*cobra.Command, []string) error { return serveHub(ctx, stderr, load) }
	root.RunE = serve
	root.AddCommand(
		&cobra.Command{
			Use:   "run",
			Short: "Run the hub (the default)",
			Args:  cobra.NoArgs,
			RunE:  serve,
		},
		&cobra.Command{
			Use:   "check-config",
			Short: "Check the configuration and exit: 0 when valid, 2 otherwise",
			Args:  cobra.NoArgs,
			RunE: func(*cobra.Command, []string) error {
				cfg, err := load()
				if err != nil {
					return err
				}
				// hub.New also runs nats-server's own checks, without binding ports.
				if _, err := hub.New(cfg, slog.New(slog.DiscardHandler)); err != nil {
					return &appliance.ConfigError{Err: err}
				}
				fmt.Fprintln(stdout, "configuration OK")
				return nil
			},
		},
		&cobra.Command{
			Use:   "version",
			Short: "Print the version",
			Args:  cobra.NoArgs,
			Run: func(*cobra.Command, []string) {
				fmt.Fprintln(stdout, version.String(program))
			},
		},
	)

	err := root.Execute()
	var cfgErr *appliance.ConfigError
	var usage usageError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &cfgErr):
		problems := cfgErr.Problems()
		fmt.Fprintf(stderr, "%s: invalid configuration (%d problem%s):\n", program, len(problems), plural(len(problems)))
		for _, p := range problems {
			fmt.Fprintf(stderr, "  %v\n", p)
		}
		return exitUsage
	case errors.As(err, &usage) || !started:
		fmt.Fprintf(stderr, "%s: %v\nRun '%s --help' for usage.\n", program, err, program)
		return exitUsage
	default:
		fmt.Fprintf(stderr, "%s: %v\n", program, err)
		return exitFailure
	}
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// serveHub runs the hub until SIGINT or SIGTERM; SIGHUP reloads the
// configuration.
func serveHub(ctx context.Context, stderr io.Writer, load func() (hub.Config, error)) error {
	cfg, err := load()
	if err != nil {
		return err
	}
	level := new(slog.LevelVar)
	if l, err := hub.ParseLevel(cfg.LogLevel); err == nil {
		level.Set(l)
	}
	log := appliance.NewLogger(stderr, level)
	log.Info("starting", "version", version.String(program))

	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	reload := make(chan struct{})
	go func() {
		for {
			select {
			case <-hup:
				log.Info("SIGHUP received, reloading configuration")
				select {
				case reload <- struct{}{}:
				case <-ctx.Done():
					return
				}
			case <-ctx.Done():
				return
			}
		}
	}()

	err = appliance.RunHub(ctx, cfg, log, level, reload, load)
	if err == nil {
		log.Info("stopped")
	}
	return err
}
