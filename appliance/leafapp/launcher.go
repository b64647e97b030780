package leafapp

import (
	"context"
	"log/slog"
	"os"
	"slices"

	"github.com/canopy-iot/canopy/firmware/agent"
	"github.com/canopy-iot/canopy/leaf"
)

// launcher returns canopy-leaf's Program.BeforeRun: when self-updates are
// configured (selfUpdate returns the self installer, nil when none is)
// and a self-updated binary is installed, the packaged binary runs it in
// its place, with the same arguments and environment, before starting
// anything of its own.
//
// Self-updates cannot replace /usr/bin/canopy-leaf (ProtectSystem=strict
// keeps /usr read-only to the service), so they install under the data
// directory, and the unit's ExecStart stays the packaged binary: that
// binary is the one that always starts, so it is the one that judges a
// new binary that crashes before it can judge itself (see
// agent.SelfInstaller.Launch).
func launcher(selfUpdate func(leaf.Config) *agent.SelfInstaller) func(leaf.Config, *slog.Logger) error {
	return func(cfg leaf.Config, log *slog.Logger) error {
		return launch(cfg, log, selfUpdate, os.Args, os.Environ(), execBinary)
	}
}

// launch is the launcher's work on the process's argv and environment;
// exec replaces the process, returning only on failure.
func launch(cfg leaf.Config, log *slog.Logger, selfUpdate func(leaf.Config) *agent.SelfInstaller,
	argv, env []string, exec func(path string, argv, env []string) error) error {
	if slices.Contains(env, agent.EnvLaunched+"=1") {
		return nil // this is the launched binary
	}
	s := selfUpdate(cfg)
	if s == nil {
		return nil
	}
	s.Log = log
	bin, err := s.Launch(context.Background(), checkConfigArgs(argv[1:]))
	if err != nil {
		// The device must stay up: the packaged binary serves. A new
		// binary on trial is judged not running, and rolled back, by
		// this process's firmware agent.
		log.Error("launcher failed; running the packaged binary", "err", err)
		return nil
	}
	if bin == "" {
		return nil
	}
	err = exec(bin, append([]string{bin}, argv[1:]...), append(slices.Clone(env), agent.EnvLaunched+"=1"))
	log.Error("cannot run the self-updated binary; running the packaged binary", "binary", bin, "err", err)
	return nil
}

// checkConfigArgs turns the arguments of `run` into those of
// `check-config` with the same configuration and flags, nil when it
// cannot tell which argument is the command.
func checkConfigArgs(args []string) []string {
	switch {
	case len(args) > 0 && args[0] == "run":
		return append([]string{"check-config"}, args[1:]...)
	case slices.Contains(args, "run"):
		return nil // after flags, or a flag's value: not worth guessing
	default: // run is the default command
		return append([]string{"check-config"}, args...)
	}
}
