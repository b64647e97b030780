// Package benchcli is the command line the load generators in bench/
// share: a program of subcommands, each parsing its own flags, with exit
// status 1 for a failed run and 2 for a bad command line.
package benchcli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
)

// ErrUsage is a bad command line; the command has said what is wrong.
var ErrUsage = errors.New("usage")

// Exit ends program prog with err's exit status: 0 for nil, 2 for
// ErrUsage, 1 (after printing err) otherwise.
func Exit(prog string, err error) {
	switch {
	case err == nil:
		os.Exit(0)
	case errors.Is(err, ErrUsage):
		os.Exit(2)
	default:
		fmt.Fprintf(os.Stderr, "%s: %v\n", prog, err)
		os.Exit(1)
	}
}

// Pick returns the command args[0] names. Without one, or for an unknown
// one, it prints the usage (every command with its summary) on stderr and
// returns ErrUsage.
func Pick[C any](prog string, commands map[string]C, summary func(C) string, args []string, stderr io.Writer) (C, error) {
	var none C
	if len(args) == 0 || args[0] == "-h" || args[0] == "-help" || args[0] == "--help" {
		usage(prog, commands, summary, stderr)
		return none, ErrUsage
	}
	cmd, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "%s: unknown command %q\n", prog, args[0])
		usage(prog, commands, summary, stderr)
		return none, ErrUsage
	}
	return cmd, nil
}

func usage[C any](prog string, commands map[string]C, summary func(C) string, w io.Writer) {
	names := make([]string, 0, len(commands))
	width := 0
	for name := range commands {
		names = append(names, name)
		width = max(width, len(name))
	}
	sort.Strings(names)
	var b strings.Builder
	fmt.Fprintf(&b, "usage: %s COMMAND [flags]   (%s COMMAND -h for its flags)\n\ncommands:\n", prog, prog)
	for _, name := range names {
		fmt.Fprintf(&b, "  %-*s %s\n", width, name, summary(commands[name]))
	}
	io.WriteString(w, b.String())
}

// NewFlagSet is a command's flag set, reporting its errors on stderr.
func NewFlagSet(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

// Parse parses a command's flags and refuses positional arguments.
func Parse(prog string, fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		return ErrUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(fs.Output(), "%s %s: unexpected arguments %q\n", prog, fs.Name(), fs.Args())
		return ErrUsage
	}
	return nil
}

// UsageErrorf reports a bad flag value on the command's output and
// returns ErrUsage.
func UsageErrorf(prog string, fs *flag.FlagSet, format string, args ...any) error {
	fmt.Fprintf(fs.Output(), "%s %s: %s\n", prog, fs.Name(), fmt.Sprintf(format, args...))
	return ErrUsage
}

// ParseResult reads a load generator's result line, the one line a
// command prints on success: its command word, then key=value pairs with
// numeric values.
func ParseResult(line string) (string, map[string]float64, error) {
	words := strings.Fields(line)
	if len(words) < 2 || strings.Count(line, "\n") != 1 {
		return "", nil, fmt.Errorf("want one result line, got %q", line)
	}
	kv := map[string]float64{}
	for _, w := range words[1:] {
		k, v, ok := strings.Cut(w, "=")
		if !ok {
			return "", nil, fmt.Errorf("%q in %q is not key=value", w, line)
		}
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return "", nil, fmt.Errorf("%s in %q: %w", k, line, err)
		}
		kv[k] = f
	}
	return words[0], kv, nil
}
