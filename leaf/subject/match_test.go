package subject

import "testing"

func TestMatch(t *testing.T) {
	tests := []struct {
		filter  string
		subject string
		want    bool
	}{
		// nats-server's TestSublistMatchLiterals, arguments swapped.
		{"foo", "foo", true},
		{"bar", "foo", false},
		{"*", "foo", true},
		{">", "foo", true},
		{">", "foo.bar", true},
		{"foo.>", "foo.bar", true},
		{"bar.>", "foo.bar", false},
		{"stats.>", "stats.test.22", true},
		{"stats.*.*", "stats.test.22", true},
		{"foo", "foo.bar", false},
		{"stats.test.foos", "stats.test.foos", true},
		{"stats.test.foo", "stats.test.foos", false},
		{"stats.test.*", "stats.test", false},
		{"stats.*", "stats.test.foos", false},
		{"stats.*.*.foos", "stats.test.foos", false},
		{"*bar", "*bar", true},
		{"foo*", "foo*", true},
		{"foo*bar", "foo*bar", true},
		{"foo.***.bar", "foo.***.bar", true},
		{">bar", ">bar", true},
		{"foo>", "foo>", true},
		{"foo>bar", "foo>bar", true},
		{"foo.>>>.bar", "foo.>>>.bar", true},

		// ">" needs at least one token.
		{"foo.>", "foo", false},
		{"foo.>", "foo.bar.baz", true},
		{"foo.*.>", "foo.bar", false},
		{"foo.*.>", "foo.bar.baz", true},
		{"*.>", "foo", false},
		{"*", "foo.bar", false},
		{"*.*", "foo.bar", true},
		{"*.bar", "foo.bar", true},
		{"*.bar", "foo.baz", false},

		// Wildcard-looking literal tokens only match themselves.
		{"foo*", "foo", false},
		{"foo*", "foobar", false},
		{"*bar", "foobar", false},
		{"foo.*bar", "foo.bar", false},
		{"foo>", "foo.bar", false},

		// Published wildcard tokens are literal bytes: they reach only
		// wildcard filters (reference A.11).
		{"foo.*", "foo.*", true},
		{"foo.>", "foo.*", true},
		{"foo.bar", "foo.*", false},
		{"foo.>", "foo.>", true},
		{"foo.*", "foo.>", true},
		{"foo.bar", "foo.>", false},
		{">", "*", true},

		// Subjects with empty tokens match nothing.
		{">", "", false},
		{"*", "", false},
		{">", "foo..bar", false},
		{"foo.>", "foo.", false},
		{"foo.>", "foo.bar.", false},
		{"foo.>", "foo..bar", false},
		{"*.*", ".foo", false},
		{"*", ".", false},

		// Invalid filters match nothing.
		{"", "", false},
		{"", "foo", false},
		{"foo..bar", "foo..bar", false},
		{"foo.>.bar", "foo.x.bar", false},
		{">.bar", "foo.bar", false},
		{"foo bar", "foo bar", false},
		{"foo.\t", "foo.\t", false},

		// Subjects are bytes; whitespace in a published subject is not
		// checked (the trie does not look).
		{"foo.*", "foo.a\fb", true},
		{"Foo", "foo", false},
	}
	for _, tt := range tests {
		if got := Match(tt.filter, tt.subject); got != tt.want {
			t.Errorf("Match(%q, %q) = %v, want %v", tt.filter, tt.subject, got, tt.want)
		}
	}
}

func TestSubsetOf(t *testing.T) {
	tests := []struct {
		a, b string
		want bool
	}{
		// nats-server's TestIsSubsetMatch.
		{"foo.bar", "foo.bar", true},
		{"foo.*", ">", true},
		{"foo.*", "*.*", true},
		{"foo.*", "foo.*", true},
		{"foo.*", "foo.bar", false},
		{"foo.>", ">", true},
		{"foo.>", "*.>", true},
		{"foo.>", "foo.>", true},
		{"foo.>", "foo.bar", false},
		{"foo..bar", "foo.*", false},
		{"foo.*", "foo..bar", false},

		{"foo.bar", "foo.*", true},
		{"foo.bar", "foo.>", true},
		{"foo.bar", ">", true},
		{"foo.bar", "*.bar", true},
		{"foo.bar", "foo", false},
		{"foo", "foo.>", false},
		{"foo.bar.baz", "foo.*", false},
		{"foo.*.baz", "foo.>", true},
		{"foo.*.baz", "*.*.*", true},
		{"foo.*.baz", "foo.bar.baz", false},
		{">", ">", true},
		{">", "*", false},
		{">", "*.>", false},
		{"*.>", ">", true},
		{"*", ">", true},
		{"*", "*", true},
		{"*", "foo", false},
		{"foo.>", "foo.*", false},
		{"foo.>", "foo.*.>", false},
		{"foo.*.>", "foo.>", true},
		{"$JS.API.STREAM.INFO.*", "$JS.API.>", true},

		// Literal tokens that look like wildcards (here nats-server
		// differs: it treats "*x" in b as a wildcard).
		{"foo.bar", "foo.*bar", false},
		{"foo.*bar", "foo.*bar", true},
		{"foo.*bar", "foo.*", true},
		{"foo.*", "foo.*bar", false},
		{"foo>", ">", true},
		{"foo.bar", "foo>", false},

		// Invalid filters.
		{"", ">", false},
		{">", "", false},
		{"foo.>.bar", ">", false},
		{"foo bar", ">", false},
	}
	for _, tt := range tests {
		if got := SubsetOf(tt.a, tt.b); got != tt.want {
			t.Errorf("SubsetOf(%q, %q) = %v, want %v", tt.a, tt.b, got, tt.want)
		}
	}
}

func TestMatchNoAlloc(t *testing.T) {
	allocs := testing.AllocsPerRun(100, func() {
		if !Match("devices.*.telemetry.>", "devices.abc.telemetry.temp.c") || !SubsetOf("a.*.c", "a.>") {
			t.Fatal("unexpected result")
		}
	})
	if allocs != 0 {
		t.Errorf("Match: %v allocs, want 0", allocs)
	}
}
