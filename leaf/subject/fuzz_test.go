package subject

import (
	"errors"
	"strings"
	"testing"
)

// FuzzSubjectValid cross-checks the validators with a plain reference and
// with the index: a valid filter inserts, matches itself and removes
// cleanly; an invalid one is refused.
func FuzzSubjectValid(f *testing.F) {
	for _, s := range []string{
		"foo", "foo.bar", "*", ">", "foo.*", "foo.>", "foo.*.>", "*.*",
		"", ".", "..", ".foo", "foo.", "a..b", "foo.>.bar", ">.>",
		"foo*", "*bar", "foo>", ">bar", "foo bar", "foo\tbar", "a\fb",
		"a\rb", "a\nb", "\x00", "\xff", "$JS.API.>", "_INBOX.x.*",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		valid := ValidSubscribe(s)
		if want := refValid(s); valid != want {
			t.Fatalf("ValidSubscribe(%q) = %v, want %v", s, valid, want)
		}
		if ValidSubscribe([]byte(s)) != valid {
			t.Fatalf("ValidSubscribe disagrees on bytes for %q", s)
		}
		wild := HasWildcard(s)
		if want := !refLiteral(s); wild != want {
			t.Fatalf("HasWildcard(%q) = %v, want %v", s, wild, want)
		}
		if got, want := ValidPublish(s), valid && !wild; got != want {
			t.Fatalf("ValidPublish(%q) = %v, want %v", s, got, want)
		}
		if got, want := ValidQueue(s), s != "" && !strings.ContainsAny(s, " \t\r\n"); got != want {
			t.Fatalf("ValidQueue(%q) = %v, want %v", s, got, want)
		}

		var x Index[string]
		sb := &Sub[string]{SID: "1", Subject: s}
		err := x.Insert(sb)
		if !valid {
			if !errors.Is(err, ErrInvalidSubject) {
				t.Fatalf("Insert(%q) = %v, want ErrInvalidSubject", s, err)
			}
			if x.Count() != 0 || !x.Match(s).Empty() || x.HasInterest(s) || Match(s, s) || SubsetOf(s, s) {
				t.Fatalf("refused filter %q left a trace", s)
			}
			if err := x.Remove(sb); !errors.Is(err, ErrNotFound) {
				t.Fatalf("Remove(%q) of a refused sub = %v", s, err)
			}
			return
		}
		if err != nil {
			t.Fatalf("Insert(%q): %v", s, err)
		}
		// Published as is, a filter reaches its own subscription: its
		// wildcard tokens land on the wildcard nodes.
		if r := x.Match(s); len(r.Plain) != 1 || r.Plain[0] != sb {
			t.Fatalf("Match(%q) = %s, want the sub on %q", s, summary(r), s)
		}
		if !x.HasInterest(s) || !Match(s, s) || !SubsetOf(s, s) || !SubsetOf(s, ">") {
			t.Fatalf("filter %q does not cover itself", s)
		}
		if err := x.Remove(sb); err != nil {
			t.Fatalf("Remove(%q): %v", s, err)
		}
		if !x.root.empty() || x.HasInterest(s) || !x.Match(s).Empty() {
			t.Fatalf("Remove(%q) left a trace", s)
		}
	})
}
