package appliance_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/canopy-iot/canopy/appliance"
)

type toyConfig struct{ Name string }

type toyRunner struct{}

func (toyRunner) Run(context.Context) error { return nil }
func (toyRunner) Reload(toyConfig) error    { return nil }

// BeforeRun sees the loaded configuration and a logger before New; its
// error ends the run with a runtime failure, before anything starts.
func TestBeforeRun(t *testing.T) {
	for _, fail := range []bool{false, true} {
		var calls []string
		p := appliance.Program[toyConfig]{
			Name:     "toy",
			Load:     func(string, bool, []appliance.Override) (toyConfig, error) { return toyConfig{Name: "loaded"}, nil },
			LogLevel: func(toyConfig) string { return "info" },
			BeforeRun: func(cfg toyConfig, log *slog.Logger) error {
				calls = append(calls, "before-run "+cfg.Name)
				if log == nil {
					t.Error("BeforeRun got no logger")
				}
				if fail {
					return errors.New("launcher broke")
				}
				return nil
			},
			New: func(toyConfig, *slog.Logger) (appliance.Runner[toyConfig], error) {
				calls = append(calls, "new")
				return toyRunner{}, nil
			},
		}
		var stderr strings.Builder
		code := appliance.Main(context.Background(), p, []string{"run"}, &strings.Builder{}, &stderr)
		want, wantCalls := appliance.ExitOK, "before-run loaded,new"
		if fail {
			want, wantCalls = appliance.ExitFailure, "before-run loaded"
		}
		if code != want || strings.Join(calls, ",") != wantCalls {
			t.Errorf("fail=%v: exit status %d, calls %q; want %d, %q\n%s", fail, code, calls, want, wantCalls, &stderr)
		}
		// check-config does not run it.
		calls = nil
		appliance.Main(context.Background(), p, []string{"check-config"}, &strings.Builder{}, &strings.Builder{})
		if strings.Join(calls, ",") != "new" {
			t.Errorf("check-config: calls %q, want only New", calls)
		}
	}
}
