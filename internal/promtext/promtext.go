// Package promtext writes metrics in the Prometheus text exposition
// format, version 0.0.4: counters and gauges with labels, with HELP and
// TYPE lines, escaped label values and a deterministic order (families
// by name, samples by labels), so that two scrapes of the same state are
// byte for byte the same.
//
// It is written by hand instead of using prometheus/client_golang because
// that library adds about 2.1 MiB to the linux/arm canopy-leaf binary,
// which has only some 320 KiB left under the 10 MiB budget that
// TestIntegrationLeafBinarySizeBudget in cmd/canopy-leaf enforces. A leaf
// gathers its few dozen values on each scrape; it needs no registry,
// collectors or histograms.
package promtext

import (
	"bufio"
	"cmp"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
)

// ContentType is the Content-Type of the format.
const ContentType = "text/plain; version=0.0.4; charset=utf-8"

// Type is a metric family's type.
type Type string

// The types a Set writes.
const (
	Counter Type = "counter"
	Gauge   Type = "gauge"
)

// Set is the metrics of one scrape. Its zero value is empty and ready.
// It is not safe for concurrent use: build one per scrape.
type Set struct {
	families map[string]*Family
	err      error // the first misuse, reported by WriteTo
}

// Family is a metric name with its help, type and samples.
type Family struct {
	name, help string
	typ        Type
	samples    []sample
	set        *Set
}

type sample struct {
	labels string // rendered: `a="x",b="y"`, "" without labels
	value  float64
}

// Counter returns the counter family name, adding it on first use.
func (s *Set) Counter(name, help string) *Family { return s.family(name, help, Counter) }

// Gauge returns the gauge family name, adding it on first use.
func (s *Set) Gauge(name, help string) *Family { return s.family(name, help, Gauge) }

func (s *Set) family(name, help string, typ Type) *Family {
	if s.families == nil {
		s.families = map[string]*Family{}
	}
	if f, ok := s.families[name]; ok {
		if f.typ != typ {
			s.fail(fmt.Errorf("metric %s: declared as %s and as %s", name, f.typ, typ))
		}
		return f
	}
	if !validName(name, true) {
		s.fail(fmt.Errorf("metric name %q is not valid", name))
	}
	f := &Family{name: name, help: help, typ: typ, set: s}
	s.families[name] = f
	return f
}

func (s *Set) fail(err error) {
	if s.err == nil {
		s.err = err
	}
}

// Add adds a sample of value with labels given as name, value pairs:
// Add(3, "protocol", "mqtt").
func (f *Family) Add(value float64, labels ...string) *Family {
	if len(labels)%2 != 0 {
		f.set.fail(fmt.Errorf("metric %s: labels %q are not name, value pairs", f.name, labels))
		return f
	}
	var b strings.Builder
	for i := 0; i < len(labels); i += 2 {
		name := labels[i]
		if !validName(name, false) || strings.HasPrefix(name, "__") {
			f.set.fail(fmt.Errorf("metric %s: label name %q is not valid", f.name, name))
			return f
		}
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(name)
		b.WriteString(`="`)
		escape(&b, labels[i+1], true)
		b.WriteByte('"')
	}
	f.samples = append(f.samples, sample{labels: b.String(), value: value})
	return f
}

// Uint adds a sample of an integer value; see Add.
func (f *Family) Uint(value uint64, labels ...string) *Family {
	return f.Add(float64(value), labels...)
}

// Int adds a sample of an integer value; see Add.
func (f *Family) Int(value int64, labels ...string) *Family {
	return f.Add(float64(value), labels...)
}

// Bool adds a sample of 1 for true and 0 for false; see Add.
func (f *Family) Bool(value bool, labels ...string) *Family {
	v := 0.0
	if value {
		v = 1
	}
	return f.Add(v, labels...)
}

// WriteTo writes every family that has samples, sorted by name, each
// sample sorted by its labels. It returns the first misuse of the set
// (a bad name, a family declared with two types, two samples with the
// same labels) without writing anything, so a scrape never gets a
// half-valid page.
func (s *Set) WriteTo(w io.Writer) (int64, error) {
	if s.err != nil {
		return 0, s.err
	}
	names := make([]string, 0, len(s.families))
	for name, f := range s.families {
		if len(f.samples) > 0 {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	sorted := make(map[string][]sample, len(names))
	for _, name := range names {
		samples := slices.Clone(s.families[name].samples)
		slices.SortStableFunc(samples, func(a, b sample) int { return cmp.Compare(a.labels, b.labels) })
		for i := 1; i < len(samples); i++ {
			if samples[i-1].labels == samples[i].labels {
				return 0, fmt.Errorf("metric %s{%s}: two samples", name, samples[i].labels)
			}
		}
		sorted[name] = samples
	}
	cw := &countingWriter{w: w}
	bw := bufio.NewWriter(cw)
	var num []byte
	for _, name := range names {
		f := s.families[name]
		if f.help != "" {
			bw.WriteString("# HELP " + name + " ")
			var b strings.Builder
			escape(&b, f.help, false)
			bw.WriteString(b.String())
			bw.WriteByte('\n')
		}
		bw.WriteString("# TYPE " + name + " " + string(f.typ) + "\n")
		for _, smp := range sorted[name] {
			bw.WriteString(name)
			if smp.labels != "" {
				bw.WriteString("{" + smp.labels + "}")
			}
			bw.WriteByte(' ')
			num = appendValue(num[:0], smp.value)
			bw.Write(num)
			bw.WriteByte('\n')
		}
	}
	if err := bw.Flush(); err != nil {
		return cw.n, fmt.Errorf("write metrics: %w", err)
	}
	return cw.n, nil
}

// appendValue formats a value as Go's ParseFloat reads it back, with
// the format's spellings of the special values.
func appendValue(b []byte, v float64) []byte {
	switch {
	case math.IsNaN(v):
		return append(b, "NaN"...)
	case math.IsInf(v, 1):
		return append(b, "+Inf"...)
	case math.IsInf(v, -1):
		return append(b, "-Inf"...)
	}
	return strconv.AppendFloat(b, v, 'g', -1, 64)
}

// escape writes s escaped: backslash and line feed always, the double
// quote in label values too (HELP text keeps it).
func escape(b *strings.Builder, s string, quote bool) {
	for _, r := range s {
		switch {
		case r == '\\':
			b.WriteString(`\\`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '"' && quote:
			b.WriteString(`\"`)
		default:
			b.WriteRune(r)
		}
	}
}

// validName checks a metric name ([a-zA-Z_:][a-zA-Z0-9_:]*) or, without
// colons, a label name.
func validName(s string, colon bool) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		ok := r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || colon && r == ':' || i > 0 && r >= '0' && r <= '9'
		if !ok {
			return false
		}
	}
	return true
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
