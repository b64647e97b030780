package stream

import (
	"fmt"
	"strings"

	"github.com/canopy-iot/canopy/internal/config"
	"github.com/canopy-iot/canopy/leaf/subject"
)

// Config is one leaf stream, an entry of `streams:` in leaf.yaml.
type Config struct {
	// Name identifies the stream on the device (letters, digits, - and _).
	Name string `yaml:"name"`
	// Subjects are the local subject filters whose messages the stream
	// keeps. Required.
	Subjects []string `yaml:"subjects"`
	// Upstream is where the stream's messages go on the hub.
	Upstream Upstream `yaml:"upstream"`
	// MaxMsgs, MaxBytes and MaxAge bound what the device keeps while the
	// hub is unreachable. Default: unlimited (the disk is the limit).
	MaxMsgs  int64           `yaml:"max_msgs"`
	MaxBytes config.Size     `yaml:"max_bytes"`
	MaxAge   config.Duration `yaml:"max_age"`
	// Discard is what happens at a limit: "old" drops the oldest messages
	// (the default), "new" refuses new ones (publishers asking for an
	// acknowledgement get an error).
	Discard string `yaml:"discard"`
	// Window is how many messages may await the hub's acknowledgement at
	// once. Default 1024: a backlog drains 1.35 times as fast as with 256
	// (bench/durable.sh), and a link failure costs at most that many
	// resends, which the hub recognizes as duplicates.
	Window int `yaml:"window"`
}

// Upstream maps a leaf stream to the hub.
type Upstream struct {
	// Subject is the prefix put before each local subject on the hub;
	// "{device}" stands for the device's name. Default
	// "telemetry.{device}", so sensors.temp on device pi-001 is stored at
	// the hub as telemetry.pi-001.sensors.temp.
	Subject string `yaml:"subject"`
	// Stream is the hub's JetStream stream that stores these subjects.
	// After a link failure the leaf asks it for the last message this
	// stream stored there, so that nothing is stored twice even after an
	// outage longer than the hub stream's duplicate window. Default
	// "TELEMETRY"; "" turns the check off (the duplicate window alone then
	// protects against duplicates).
	Stream *string `yaml:"stream"`
	// Domain is the JetStream domain the leaf addresses the hub's
	// JetStream by: nats-server answers JetStream API requests from leaf
	// nodes only under a domain's prefix. Default "canopy", which every
	// Canopy hub serves in every account; set the hub's own domain for
	// another hub, or "none" for the plain $JS.API prefix.
	Domain string `yaml:"domain"`
	// Rate caps how many messages a second the stream sends to the hub,
	// resends included, so that draining a long backlog cannot take the
	// whole of a thin uplink. Live messages queue behind the backlog in
	// the same order either way. Default 0: no cap.
	Rate int `yaml:"rate"`
}

// Defaults.
const (
	DefaultUpstreamStream  = "TELEMETRY"
	DefaultUpstreamSubject = "telemetry.{device}"
	DefaultWindow          = 1024
	DefaultDomain          = "canopy"
	// NoDomain addresses the hub's JetStream without a domain prefix.
	NoDomain = "none"
)

// APIPrefix is the JetStream API prefix for a configured domain.
func APIPrefix(domain string) string {
	if domain == "" || domain == NoDomain {
		return "$JS.API"
	}
	return "$JS." + domain + ".API"
}

// WithDefaults returns c with every unset field at its default.
func (c Config) WithDefaults() Config {
	if c.Upstream.Subject == "" {
		c.Upstream.Subject = DefaultUpstreamSubject
	}
	if c.Upstream.Stream == nil {
		def := DefaultUpstreamStream
		c.Upstream.Stream = &def
	}
	if c.Upstream.Domain == "" {
		c.Upstream.Domain = DefaultDomain
	}
	if c.Discard == "" {
		c.Discard = "old"
	}
	if c.Window == 0 {
		c.Window = DefaultWindow
	}
	return c
}

// Validate reports every problem of the streams at once, with paths
// relative to the streams list.
func Validate(streams []Config) error {
	var errs config.List
	seen := map[string]bool{}
	for i, c := range streams {
		p := fmt.Sprintf("[%d]", i)
		switch {
		case !validName(c.Name):
			errs.Addf(p+".name", "%q: use letters, digits, '-' and '_'", c.Name)
		case seen[c.Name]:
			errs.Addf(p+".name", "%q is used twice", c.Name)
		}
		seen[c.Name] = true
		if len(c.Subjects) == 0 {
			errs.Addf(p+".subjects", "at least one subject filter is required")
		}
		for j, s := range c.Subjects {
			if !subject.ValidSubscribe(s) {
				errs.Addf(fmt.Sprintf("%s.subjects[%d]", p, j), "invalid subject %q", s)
			}
		}
		if up := strings.ReplaceAll(c.Upstream.Subject, "{device}", "device"); !subject.ValidPublish(up) {
			errs.Addf(p+".upstream.subject", "invalid subject prefix %q", c.Upstream.Subject)
		}
		if c.Upstream.Stream != nil && *c.Upstream.Stream != "" && !validName(*c.Upstream.Stream) {
			errs.Addf(p+".upstream.stream", "%q is not a JetStream stream name", *c.Upstream.Stream)
		}
		if d := c.Upstream.Domain; d != "" && !validName(d) {
			errs.Addf(p+".upstream.domain", "%q is not a JetStream domain", d)
		}
		if c.Upstream.Rate < 0 {
			errs.Addf(p+".upstream.rate", "%d: want messages per second, or 0 for no cap", c.Upstream.Rate)
		}
		if c.Discard != "old" && c.Discard != "new" {
			errs.Addf(p+".discard", "%q: want old or new", c.Discard)
		}
		if c.MaxMsgs < 0 || c.MaxBytes < 0 {
			errs.Addf(p, "limits must not be negative")
		}
		if c.Window < 1 || c.Window > 65536 {
			errs.Addf(p+".window", "must be between 1 and 65536")
		}
	}
	return errs.Err()
}

func validName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return false
		}
	}
	return true
}
