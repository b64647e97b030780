package appliance

import (
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/canopy-iot/canopy/internal/config"
)

// ConfigError is a problem with the configuration or the command line
// (exit status 2), as opposed to a failure at run time (exit status 1).
type ConfigError struct{ Err error }

func (e *ConfigError) Error() string { return e.Err.Error() }
func (e *ConfigError) Unwrap() error { return e.Err }

func configError(err error) error { return &ConfigError{Err: err} }

// Validator is a configuration that can check itself after defaults are
// applied, reporting problems as *config.Error values.
type Validator interface{ Validate() error }

// loadFile reads the configuration at path into dst, applying overrides.
// When path is the binary's default path and the file does not exist, the
// binary runs on defaults (zero configuration); a path given explicitly
// must exist. It returns where each setting came from.
func loadFile(path string, explicit bool, overrides []config.Override, dst any) (config.Sources, error) {
	var data []byte
	name := ""
	if path != "" {
		b, err := os.ReadFile(path)
		switch {
		case err == nil:
			data, name = b, path
		case errors.Is(err, fs.ErrNotExist) && !explicit:
			// zero configuration
		default:
			return config.Sources{}, configError(fmt.Errorf("read config: %w", err))
		}
	}
	src, err := config.Decode(name, data, overrides, dst)
	if err != nil {
		return src, configError(err)
	}
	return src, nil
}

// check validates cfg and places each problem at the line or flag that set
// the setting.
func check(src config.Sources, cfg Validator) error {
	if err := cfg.Validate(); err != nil {
		return configError(src.Place(err))
	}
	return nil
}
