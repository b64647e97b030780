package appliance

import (
	"strings"

	"github.com/spf13/pflag"

	"github.com/canopy-iot/canopy/internal/config"
)

// Override is a configuration value given on the command line.
type Override = config.Override

// Setting is a configuration setting that is also a command-line flag. The
// flag's name is the setting's YAML path with dots and underscores written
// as dashes: "cluster.listen" is --cluster-listen.
type Setting struct {
	Path  string
	Usage string
	List  bool // a list of values: the flag may repeat or take a comma-separated list
}

// FlagName returns the command-line flag for a YAML path.
func FlagName(path string) string {
	return strings.NewReplacer(".", "-", "_", "-").Replace(path)
}

// ConfigFlags registers one flag per setting on fs and returns a function
// that, after parsing, lists the values given on the command line as
// overrides of the configuration file.
func ConfigFlags(fs *pflag.FlagSet, settings []Setting) func() []config.Override {
	values := make([]any, len(settings))
	for i, s := range settings {
		if s.List {
			values[i] = fs.StringSlice(FlagName(s.Path), nil, s.Usage)
		} else {
			values[i] = fs.String(FlagName(s.Path), "", s.Usage)
		}
	}
	return func() []config.Override {
		var out []config.Override
		for i, s := range settings {
			name := FlagName(s.Path)
			if !fs.Changed(name) {
				continue
			}
			o := config.Override{Flag: "--" + name, Path: s.Path, List: s.List}
			switch v := values[i].(type) {
			case *[]string:
				o.Values = *v
			case *string:
				o.Values = []string{*v}
			}
			out = append(out, o)
		}
		return out
	}
}
