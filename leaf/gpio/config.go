package gpio

import (
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/canopy-iot/canopy/internal/config"
)

// Config is the `gpio:` section of leaf.yaml. With no pins (the default)
// the bridge does nothing and touches no hardware.
type Config struct {
	// Inputs publish their level on hw.gpio.<pin>.
	Inputs []Input `yaml:"inputs"`
	// Outputs are set by messages on hw.gpio.<pin>.set.
	Outputs []Output `yaml:"outputs"`
}

// Input is one input pin.
type Input struct {
	// Pin is the pin's name in periph's registry, which for the GPIO
	// character device is the kernel's line name: GPIO17 on a Raspberry
	// Pi. Required.
	Pin string `yaml:"pin"`
	// Pull is the pin's bias: up, down or none. Default none.
	Pull string `yaml:"pull"`
	// Edge selects the changes published: both, rising (to high) or
	// falling (to low). Default both.
	Edge string `yaml:"edge"`
	// Debounce is how long the level must hold before a change counts.
	// Default 20ms; 0s publishes every change the hardware reports.
	Debounce *config.Duration `yaml:"debounce"`
}

// Output is one output pin.
type Output struct {
	// Pin is the pin's name, as for inputs. Required.
	Pin string `yaml:"pin"`
	// Initial is the level set at start: low or high. Default low.
	Initial string `yaml:"initial"`
}

// Defaults.
const (
	DefaultPull     = "none"
	DefaultEdge     = "both"
	DefaultDebounce = 20 * time.Millisecond
	DefaultInitial  = levelLow
	// MaxDebounce bounds debounce: a longer one is surely a typo.
	MaxDebounce = 10 * time.Second
)

// On reports whether any pin is configured.
func (c Config) On() bool { return len(c.Inputs)+len(c.Outputs) > 0 }

// WithDefaults returns a copy of c with every unset field at its default.
func (c Config) WithDefaults() Config {
	ins := make([]Input, len(c.Inputs))
	for i, in := range c.Inputs {
		if in.Pull == "" {
			in.Pull = DefaultPull
		}
		if in.Edge == "" {
			in.Edge = DefaultEdge
		}
		if in.Debounce == nil {
			d := config.Duration(DefaultDebounce)
			in.Debounce = &d
		}
		ins[i] = in
	}
	outs := make([]Output, len(c.Outputs))
	for i, out := range c.Outputs {
		if out.Initial == "" {
			out.Initial = DefaultInitial
		}
		outs[i] = out
	}
	if len(ins) == 0 {
		ins = nil
	}
	if len(outs) == 0 {
		outs = nil
	}
	c.Inputs, c.Outputs = ins, outs
	return c
}

// Validate reports every problem at once, with paths relative to the gpio
// section. Whether the pins exist is checked at start, on the device:
// check-config runs anywhere.
func (c Config) Validate() error {
	var errs config.List
	seen := map[string]bool{}
	for i, in := range c.Inputs {
		p := "inputs[" + strconv.Itoa(i) + "]"
		checkPin(&errs, seen, p, in.Pin)
		oneOf(&errs, p+".pull", in.Pull, "up", "down", "none")
		oneOf(&errs, p+".edge", in.Edge, "both", "rising", "falling")
		if in.Debounce != nil && in.Debounce.Std() > MaxDebounce {
			errs.Addf(p+".debounce", "must be at most 10s")
		}
	}
	for i, out := range c.Outputs {
		p := "outputs[" + strconv.Itoa(i) + "]"
		checkPin(&errs, seen, p, out.Pin)
		oneOf(&errs, p+".initial", out.Initial, levelLow, levelHigh)
	}
	return errs.Err()
}

// oneOf checks that the setting at path is one of the allowed values.
func oneOf(errs *config.List, path, value string, allowed ...string) {
	if !slices.Contains(allowed, value) {
		errs.Addf(path, "%q: want one of %s", value, strings.Join(allowed, ", "))
	}
}

// checkPin checks the pin of the entry at path: a valid name, used once.
func checkPin(errs *config.List, seen map[string]bool, path, pin string) {
	switch {
	case !validPinName(pin):
		errs.Addf(path+".pin", "%q: want a pin name such as GPIO17 (letters, digits, '-' and '_')", pin)
	case seen[pin]:
		errs.Addf(path+".pin", "%s is configured twice", pin)
	}
	seen[pin] = true
}

// validPinName accepts names that are one subject token and one MQTT
// topic level as they are: periph's names (GPIO17, P1_11) and the line
// names of GPIO chips.
func validPinName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	return !strings.ContainsFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_')
	})
}
