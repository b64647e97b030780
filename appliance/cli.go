package appliance

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/canopy-iot/canopy/internal/logging"
	"github.com/canopy-iot/canopy/internal/version"
	"github.com/canopy-iot/canopy/systemd"
)

// Exit statuses of Canopy's binaries.
const (
	ExitOK      = 0
	ExitFailure = 1 // a runtime failure
	ExitUsage   = 2 // a bad configuration or command line
)

// Program describes one of Canopy's binaries to the command line they
// share: `run` (the default), `check-config` and `version`, a --config flag
// plus one flag per setting, signals, and the exit status.
type Program[T any] struct {
	Name          string // e.g. "canopy-hub"
	Short         string // one line for --help
	DefaultConfig string // read when --config is not given, if it exists
	Settings      []Setting
	// Load reads and checks the configuration (see Loader).
	Load func(path string, explicit bool, overrides []Override) (T, error)
	// LogLevel names the configured log level.
	LogLevel func(T) string
	// New prepares the binary's parts from a loaded configuration without
	// starting anything; check-config runs it too, for the checks only
	// the parts can make.
	New func(cfg T, log *slog.Logger) (Runner[T], error)
	// Check, when set, is what check-config runs instead of New: the
	// same checks, without writing anything. Default: New.
	Check func(cfg T) error
	// BeforeRun, when set, runs in `run` once the configuration is loaded
	// and the logger made, before New; its error ends the run.
	// canopy-leaf's launcher uses it to run a self-updated binary in place
	// of the packaged one. Default: none.
	BeforeRun func(cfg T, log *slog.Logger) error
	// Commands, when set, returns the binary's own subcommands (beside
	// run, check-config, version and the service commands). load reads
	// the configuration the way run does, from --config and the flags.
	Commands func(load func() (T, error), stdout, stderr io.Writer) []*cobra.Command
	// Status, when set, makes `status` ask the running process what it
	// is doing and print that (as JSON with asJSON). When it fails (no
	// process answers where cfg says one listens), status prints the
	// error and then the service manager's view. Default: the service
	// manager's view only.
	Status func(ctx context.Context, cfg T, asJSON bool, stdout io.Writer) error
}

// Runner is a binary's running parts. A Runner that also has
// Ready() <-chan struct{} (see Readier) tells systemd it is ready only once
// that channel is closed; any other is ready as soon as it runs.
type Runner[T any] interface {
	// Run serves until ctx ends; an error means a part failed.
	Run(ctx context.Context) error
	// Reload applies a changed configuration as far as the parts can; on
	// error the running configuration stays.
	Reload(cfg T) error
}

// Readier is a Runner whose Ready channel is closed once every part serves.
type Readier interface{ Ready() <-chan struct{} }

// usageError is a command line the program cannot act on.
type usageError struct{ error }

// Main runs the program with args and returns its exit status: only main
// exits.
func Main[T any](ctx context.Context, p Program[T], args []string, stdout, stderr io.Writer) int {
	var configPath string
	started := false // set once cobra has parsed a valid command line
	root := &cobra.Command{
		Use:              p.Name + " [command] [flags]",
		Short:            p.Short,
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
	flags.StringVarP(&configPath, "config", "c", "", "configuration file (default "+p.DefaultConfig+", if it exists)")
	overrides := ConfigFlags(flags, p.Settings)
	load := func() (T, error) {
		if configPath != "" {
			return p.Load(configPath, true, overrides())
		}
		return p.Load(p.DefaultConfig, false, overrides())
	}

	serve := func(*cobra.Command, []string) error {
		return runService(ctx, p.Name, func(ctx context.Context) error { return serveProgram(ctx, p, stderr, load) })
	}
	root.RunE = serve
	root.AddCommand(
		&cobra.Command{Use: "run", Short: "Run (the default)", Args: cobra.NoArgs, RunE: serve},
		&cobra.Command{
			Use:   "check-config",
			Short: "Check the configuration and exit: 0 when valid, 2 otherwise",
			Args:  cobra.NoArgs,
			RunE: func(*cobra.Command, []string) error {
				cfg, err := load()
				if err != nil {
					return err
				}
				check := p.Check
				if check == nil {
					check = func(cfg T) error { _, err := p.New(cfg, nil); return err }
				}
				if err := check(cfg); err != nil {
					return &ConfigError{Err: err}
				}
				fmt.Fprintln(stdout, "configuration OK")
				return nil
			},
		},
		&cobra.Command{
			Use:   "version",
			Short: "Print the version",
			Args:  cobra.NoArgs,
			Run:   func(*cobra.Command, []string) { fmt.Fprintln(stdout, version.String(p.Name)) },
		},
	)
	var live liveStatus
	if p.Status != nil {
		live = func(ctx context.Context, asJSON bool) error {
			cfg, err := load()
			if err != nil {
				return fmt.Errorf("cannot read the configuration to find the running process: %w", err)
			}
			return p.Status(ctx, cfg, asJSON, stdout)
		}
	}
	root.AddCommand(serviceCommands(p.Name, p.DefaultConfig, stdout, stderr, live)...)
	if p.Commands != nil {
		root.AddCommand(p.Commands(load, stdout, stderr)...)
	}

	err := root.Execute()
	var cfgErr *ConfigError
	var usage usageError
	var status exitStatus
	switch {
	case err == nil:
		return ExitOK
	case errors.As(err, &status):
		return int(status)
	case errors.As(err, &cfgErr):
		problems := cfgErr.Problems()
		fmt.Fprintf(stderr, "%s: invalid configuration (%d problem%s):\n", p.Name, len(problems), plural(len(problems)))
		for _, e := range problems {
			fmt.Fprintf(stderr, "  %v\n", e)
		}
		return ExitUsage
	case errors.As(err, &usage) || !started:
		fmt.Fprintf(stderr, "%s: %v\nRun '%s --help' for usage.\n", p.Name, err, p.Name)
		return ExitUsage
	default:
		fmt.Fprintf(stderr, "%s: %v\n", p.Name, err)
		return ExitFailure
	}
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// serveProgram runs p until SIGINT or SIGTERM; SIGHUP reloads the
// configuration. Under systemd it reports READY=1 once the runner is ready,
// RELOADING=1 and READY=1 around a reload and STOPPING=1 on shutdown, and
// keeps the watchdog fed from this loop: while it turns and the runner has
// not failed.
func serveProgram[T any](ctx context.Context, p Program[T], stderr io.Writer, load func() (T, error)) error {
	cfg, err := load()
	if err != nil {
		return err
	}
	level := new(slog.LevelVar)
	if l, err := logging.ParseLevel(p.LogLevel(cfg)); err == nil {
		level.Set(l)
	}
	log := logging.New(stderr, level)
	log.Info("starting", "version", version.String(p.Name))
	if p.BeforeRun != nil {
		if err := p.BeforeRun(cfg, log); err != nil {
			return err
		}
	}

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

	r, err := p.New(cfg, log)
	if err != nil {
		return &ConfigError{Err: err}
	}
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	ready := closedChan
	if rr, ok := r.(Readier); ok {
		ready = rr.Ready()
	}
	var watchdog <-chan time.Time
	if timeout, ok := systemd.WatchdogInterval(); ok {
		t := time.NewTicker(timeout / 2)
		defer t.Stop()
		watchdog = t.C
	}
	notify := notifier(log)
	stopping := ctx.Done()
	isReady := false
	for {
		select {
		case err := <-done:
			if stopping != nil && ctx.Err() != nil {
				// The runner stopped before this loop saw ctx end.
				notify(systemd.Stopping)
			}
			if err == nil {
				log.Info("stopped")
			}
			return err
		case <-ready:
			ready, isReady = nil, true
			if stopping != nil { // not when already shutting down
				notify(systemd.Ready)
			}
		case <-watchdog:
			notify(systemd.Watchdog)
		case <-stopping:
			stopping = nil
			notify(systemd.Stopping)
		case <-reload:
			serving := isReady && stopping != nil
			if serving {
				notify(systemd.Reloading)
			}
			next, err := load()
			if err == nil {
				err = r.Reload(next)
			}
			if err == nil {
				if l, err := logging.ParseLevel(p.LogLevel(next)); err == nil {
					level.Set(l)
				}
			} else {
				log.Error("reload failed, keeping the running configuration", "err", err)
			}
			if serving {
				notify(systemd.Ready)
			}
		}
	}
}

// closedChan is the Ready channel of a Runner without one.
var closedChan = func() <-chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}()

// notifier returns a function that sends an sd_notify message and logs
// its failure, the first one at warn level and any later at debug level
// (the watchdog repeats).
func notifier(log *slog.Logger) func(send func() error) {
	failed := false
	return func(send func() error) {
		err := send()
		switch {
		case err == nil:
		case !failed:
			failed = true
			log.Warn("cannot notify systemd", "err", err)
		default:
			log.Debug("cannot notify systemd", "err", err)
		}
	}
}
