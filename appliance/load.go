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

// Problems lists the individual problems, in the order of their lines.
func (e *ConfigError) Problems() []error { return config.Flatten(e.Err) }

// Validator is a configuration that can check itself after defaults are
// applied, reporting problems as *config.Error values.
type Validator interface{ Validate() error }

// Load reads the configuration at path into *dst, applies overrides and
// defaults (withDefaults) and validates the result. When path is the
// binary's default path and the file does not exist, the binary runs on
// defaults (zero configuration); a path given explicitly must exist. All
// problems come back at once in a *ConfigError, each placed at its line or
// flag and sorted by line.
func Load[T Validator](path string, explicit bool, overrides []config.Override, dst *T, withDefaults func(T) T) error {
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
			return &ConfigError{Err: fmt.Errorf("read config: %w", err)}
		}
	}
	src, decodeErr := config.Decode(name, data, overrides, dst)
	*dst = withDefaults(*dst)
	validateErr := (*dst).Validate()
	if decodeErr != nil || validateErr != nil {
		return &ConfigError{Err: src.Place(config.Merge(decodeErr, validateErr))}
	}
	return nil
}

// Loader returns a Program's Load for a configuration type: read the file
// at path (which must exist when explicit), apply the flag overrides and
// withDefaults, validate.
func Loader[T Validator](withDefaults func(T) T) func(path string, explicit bool, overrides []Override) (T, error) {
	return func(path string, explicit bool, overrides []Override) (T, error) {
		var cfg T
		if err := Load(path, explicit, overrides, &cfg, withDefaults); err != nil {
			var zero T
			return zero, err
		}
		return cfg, nil
	}
}

// Problems lists the problems of a configuration error one per string, as
// the binaries print them; nil for nil.
func Problems(err error) []string {
	if err == nil {
		return nil
	}
	var ce *ConfigError
	if !errors.As(err, &ce) {
		return []string{err.Error()}
	}
	var out []string
	for _, e := range ce.Problems() {
		out = append(out, e.Error())
	}
	return out
}
