package config

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

type sample struct {
	Version int               `yaml:"version"`
	Name    string            `yaml:"name"`
	Wait    Duration          `yaml:"wait"`
	Limit   Size              `yaml:"limit"`
	On      *bool             `yaml:"on"`
	Tags    []string          `yaml:"tags"`
	Nested  nested            `yaml:"nested"`
	Ptr     *nested           `yaml:"ptr"`
	Groups  map[string][]int  `yaml:"groups"`
	Names   map[string]nested `yaml:"names"`
}

type nested struct {
	Addr  string `yaml:"addr"`
	Count int    `yaml:"count"`
}

func TestParseSize(t *testing.T) {
	cases := map[string]Size{
		"0": 0, "512": 512, "1K": 1024, "1KiB": 1024, "1KB": 1000, "2MB": 2_000_000, "2MiB": 2 << 20,
		"3G": 3 << 30, "1GiB": 1 << 30, "1TB": 1_000_000_000_000, "1 GiB": 1 << 30, "10B": 10,
	}
	for in, want := range cases {
		if got, err := ParseSize(in); err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "lots", "-1", "1.5GB", "GB", "9999999999999T", "1XB"} {
		if _, err := ParseSize(bad); err == nil {
			t.Errorf("ParseSize(%q) succeeded", bad)
		}
	}
}

func TestDecodeValues(t *testing.T) {
	doc := `version: 1
name: hub
wait: 1m30s
limit: 64MiB
on: false
tags: [a, b]
nested: {addr: "x:1", count: 3}
ptr:
  count: 7
groups:
  g1: [1, 2]
names:
  n1: {addr: y}
`
	var s sample
	if _, err := Decode("s.yaml", []byte(doc), nil, &s); err != nil {
		t.Fatal(err)
	}
	off := false
	want := sample{
		Version: 1, Name: "hub", Wait: Duration(90 * time.Second), Limit: 64 << 20, On: &off,
		Tags: []string{"a", "b"}, Nested: nested{Addr: "x:1", Count: 3}, Ptr: &nested{Count: 7},
		Groups: map[string][]int{"g1": {1, 2}}, Names: map[string]nested{"n1": {Addr: "y"}},
	}
	if !reflect.DeepEqual(s, want) {
		t.Fatalf("decoded %+v\nwant %+v", s, want)
	}
}

func TestDecodeErrors(t *testing.T) {
	cases := []struct {
		doc  string
		want []string
	}{
		{"version: 1\nwait: 5\n", []string{`s.yaml:2: wait: invalid duration "5" (use a unit, e.g. "30s" or "5m")`}},
		{"version: 1\nwait: -5s\n", []string{`s.yaml:2: wait: negative duration "-5s"`}},
		{"version: 1\nnested:\n  count: many\n  adr: x\n", []string{
			`s.yaml:3: nested.count: want an integer, got "many"`,
			`s.yaml:4: nested.adr: unknown key (did you mean "addr"?)`,
		}},
		{"version: 1\ntags: a\n", []string{`s.yaml:2: tags: want a list, got a scalar`}},
		{"version: 1\nname: [x]\n", []string{`s.yaml:2: name: want a single value, got a list`}},
		{"version: 1\ngroups:\n  g: [1, x]\n", []string{`s.yaml:3: groups.g[1]: want an integer, got "x"`}},
		{"version: 1\nzzzzzz: 1\n", []string{`s.yaml:2: zzzzzz: unknown key`}},
		{"- a\n- b\n", []string{`s.yaml:1: want a mapping of settings at the top level, got a list`}},
		{"", []string{`s.yaml: version: missing (the file must start with "version: 1")`}},
		{"version: one\n", []string{`s.yaml:1: version: unsupported version "one" (this release reads version 1)`, `s.yaml:1: version: want an integer, got "one"`}},
	}
	for _, c := range cases {
		var s sample
		_, err := Decode("s.yaml", []byte(c.doc), nil, &s)
		var got []string
		for _, e := range Flatten(err) {
			got = append(got, e.Error())
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("%q:\n got %q\nwant %q", c.doc, got, c.want)
		}
	}
}

func TestOverrides(t *testing.T) {
	var s sample
	src, err := Decode("s.yaml", []byte("version: 1\nname: file\nnested: {count: 1}\n"), []Override{
		{Flag: "--name", Path: "name", Values: []string{"flag"}},
		{Flag: "--nested-addr", Path: "nested.addr", Values: []string{"h:1"}},
		{Flag: "--ptr-count", Path: "ptr.count", Values: []string{"9"}},
		{Flag: "--tags", Path: "tags", Values: []string{"x", "y"}, List: true},
	}, &s)
	if err != nil {
		t.Fatal(err)
	}
	if s.Name != "flag" || s.Nested != (nested{Addr: "h:1", Count: 1}) || s.Ptr.Count != 9 || !reflect.DeepEqual(s.Tags, []string{"x", "y"}) {
		t.Fatalf("overrides not applied: %+v", s)
	}
	for path, want := range map[string]string{"name": "flag --name", "nested.count": "s.yaml:3", "nested.addr": "flag --nested-addr", "tags[1]": "flag --tags", "missing": "s.yaml"} {
		if got := src.Locate(path); got != want {
			t.Errorf("Locate(%q) = %q, want %q", path, got, want)
		}
	}

	// Without a file, overrides alone are decoded and no version is needed.
	var z sample
	if _, err := Decode("", nil, []Override{{Flag: "--limit", Path: "limit", Values: []string{"huge"}}}, &z); err == nil ||
		!strings.HasPrefix(err.Error(), `flag --limit: limit: invalid size "huge"`) {
		t.Fatalf("flag error = %v", err)
	}
}

func TestPlaceAndMerge(t *testing.T) {
	var s sample
	src, decodeErr := Decode("s.yaml", []byte("version: 1\nname: a\nnested:\n  count: x\n"), nil, &s)
	var v List
	v.Addf("nested.count", "must be positive") // hidden: it failed to decode
	v.Addf("nested.addr", "required")
	v.Addf("name", "too short")
	v.Addf("tags", "empty")
	err := src.Place(Merge(decodeErr, v.Err()))
	var got []string
	for _, e := range Flatten(err) {
		got = append(got, e.Error())
	}
	want := []string{`s.yaml:2: name: too short`, `s.yaml:3: nested.addr: required`, `s.yaml:4: nested.count: want an integer, got "x"`, `s.yaml: tags: empty`}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %q\nwant %q", got, want)
	}
}
