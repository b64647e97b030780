package health

import (
	"strings"
	"time"

	"github.com/canopy-iot/canopy/internal/config"
	"github.com/canopy-iot/canopy/leaf/subject"
)

// Config is the `health:` section of leaf.yaml.
type Config struct {
	// Enabled turns the health publisher on. Default true.
	Enabled *bool `yaml:"enabled"`
	// Interval is the time between two documents; the first is published
	// at start. Default 30s, at least 1s.
	Interval config.Duration `yaml:"interval"`
	// Subject is the local subject of the document; "{device}" stands for
	// the device's name (server_name). Default "health".
	Subject string `yaml:"subject"`
	// Root is the directory under which proc/ and sys/ are read. Default
	// "/".
	Root string `yaml:"root"`
}

// Defaults and limits.
const (
	DefaultInterval = 30 * time.Second
	DefaultRoot     = "/"
	MinInterval     = time.Second
)

// On reports whether the publisher runs.
func (c Config) On() bool { return c.Enabled == nil || *c.Enabled }

// WithDefaults returns a copy of c with every unset field at its default.
func (c Config) WithDefaults() Config {
	if c.Interval == 0 {
		c.Interval = config.Duration(DefaultInterval)
	}
	if c.Subject == "" {
		c.Subject = DefaultSubject
	}
	if c.Root == "" {
		c.Root = DefaultRoot
	}
	return c
}

// SubjectFor returns the subject with the device's name filled in.
func (c Config) SubjectFor(device string) string {
	return strings.ReplaceAll(c.Subject, "{device}", device)
}

// Validate reports every problem at once, with paths relative to the
// health section.
func (c Config) Validate() error {
	var errs config.List
	if c.Interval.Std() < MinInterval {
		errs.Addf("interval", "must be at least 1s")
	}
	if !subject.ValidPublish(c.SubjectFor("device")) {
		errs.Addf("subject", "invalid subject %q", c.Subject)
	}
	return errs.Err()
}
