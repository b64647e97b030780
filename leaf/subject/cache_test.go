package subject

import (
	"fmt"
	"testing"
)

// TestCacheInvalidation checks that a change is seen by the next match
// when the old answer was cached, and that only the affected entries are
// dropped.
func TestCacheInvalidation(t *testing.T) {
	cached := []string{"foo.bar", "foo.baz", "foo.bar.baz", "other", "foo.*", "foo"}
	tests := []struct {
		filter  string
		queue   string
		touched []string // cached subjects the filter matches
	}{
		{"foo.bar", "", []string{"foo.bar"}},
		{"foo.bar", "q", []string{"foo.bar"}},
		{"foo.*", "", []string{"foo.bar", "foo.baz", "foo.*"}},
		{"foo.>", "q", []string{"foo.bar", "foo.baz", "foo.bar.baz", "foo.*"}},
		{">", "", cached},
		{"*", "", []string{"other", "foo"}},
		{"*.bar", "", []string{"foo.bar"}},
		{"nothing", "", nil},
		{"nothing.>", "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.filter+"/"+tt.queue, func(t *testing.T) {
			var x Index[string]
			if err := x.Insert(sub("base", "foo.bar", "")); err != nil {
				t.Fatal(err)
			}
			before := map[string]string{}
			for _, s := range cached {
				before[s] = summary(x.Match(s))
			}
			s := sub("new", tt.filter, tt.queue)
			if err := x.Insert(s); err != nil {
				t.Fatal(err)
			}
			checkCache(t, &x, "after Insert", cached, tt.touched)
			for _, subj := range cached {
				want := Match(tt.filter, subj)
				got := containsSID(x.Match(subj), "new")
				if got != want {
					t.Errorf("after Insert: Match(%q) has new sub = %v, want %v", subj, got, want)
				}
			}
			if err := x.Remove(s); err != nil {
				t.Fatal(err)
			}
			checkCache(t, &x, "after Remove", cached, tt.touched)
			for _, subj := range cached {
				if got := summary(x.Match(subj)); got != before[subj] {
					t.Errorf("after Remove: Match(%q) = %s, want %s", subj, got, before[subj])
				}
			}
		})
	}
}

// checkCache checks that exactly the touched subjects were dropped from
// the cache, then refills it.
func checkCache(t *testing.T, x *Index[string], when string, cached, touched []string) {
	t.Helper()
	for _, s := range cached {
		_, ok := x.cache[s]
		want := true
		for _, d := range touched {
			if s == d {
				want = false
			}
		}
		if ok != want {
			t.Errorf("%s: %q cached = %v, want %v", when, s, ok, want)
		}
	}
}

func containsSID(r Result[string], sid string) bool {
	for _, s := range r.Plain {
		if s.SID == sid {
			return true
		}
	}
	for _, g := range r.Groups {
		for _, s := range g.Members {
			if s.SID == sid {
				return true
			}
		}
	}
	return false
}

func TestCacheNegative(t *testing.T) {
	var x Index[string]
	if !x.Match("a.b").Empty() || x.HasInterest("a.b") {
		t.Fatal("empty index matched")
	}
	if _, ok := x.cache["a.b"]; !ok {
		t.Error("empty result not cached: publishes nobody listens to would walk the trie every time")
	}
	if err := x.Insert(sub("1", "a.*", "")); err != nil {
		t.Fatal(err)
	}
	if !x.HasInterest("a.b") || x.Match("a.b").Empty() {
		t.Error("a cached empty result hid a new subscription")
	}
}

func TestCacheInvalidSubjectsNotCached(t *testing.T) {
	var x Index[string]
	for _, s := range []string{"", ".", "a..b", "a."} {
		x.Match(s)
		x.MatchBytes([]byte(s))
	}
	if len(x.cache) != 0 {
		t.Errorf("cache holds %d entries for invalid subjects", len(x.cache))
	}
}

func TestCacheBounded(t *testing.T) {
	var x Index[string]
	if err := x.Insert(sub("1", "a.>", "")); err != nil {
		t.Fatal(err)
	}
	for i := range 10 * cacheMax {
		subj := fmt.Sprintf("a.%d", i)
		if r := x.Match(subj); len(r.Plain) != 1 {
			t.Fatalf("Match(%q) = %s", subj, summary(r))
		}
		if n := len(x.cache); n > cacheMax {
			t.Fatalf("cache grew to %d entries, bound %d", n, cacheMax)
		}
	}
	if n := len(x.cache); n < cacheKeep {
		t.Errorf("cache has %d entries after many misses, want at least %d", n, cacheKeep)
	}
}

// TestCacheStaleResultNotStored opens the window in which Match has
// computed a result under the read lock but not yet stored it, and changes
// the index inside it.
func TestCacheStaleResultNotStored(t *testing.T) {
	for _, change := range []string{"insert", "remove", "none"} {
		var x Index[string]
		old := sub("old", "a.*", "")
		if err := x.Insert(old); err != nil {
			t.Fatal(err)
		}

		x.mu.RLock()
		var r Result[string]
		var buf [32]string
		toks, _ := split("a.b", buf[:0])
		x.root.collect(toks, &r)
		gen := x.gen
		x.mu.RUnlock()

		want := "plain=[old]"
		switch change {
		case "insert":
			if err := x.Insert(sub("new", "a.b", "")); err != nil {
				t.Fatal(err)
			}
			want = "plain=[new old]"
		case "remove":
			if err := x.Remove(old); err != nil {
				t.Fatal(err)
			}
			want = "plain=[]"
		}
		x.fill("a.b", r, gen)
		if _, cached := x.cache["a.b"]; cached != (change == "none") {
			t.Errorf("%s: result computed before the change cached = %v", change, cached)
		}
		if got := summary(x.Match("a.b")); got != want {
			t.Errorf("%s: Match = %s, want %s", change, got, want)
		}
	}
}

func TestMatchNoAllocOnHit(t *testing.T) {
	var x Index[string]
	for _, s := range []*Sub[string]{sub("1", "a.b.c", ""), sub("2", "a.*.c", "q"), sub("3", "a.>", "")} {
		if err := x.Insert(s); err != nil {
			t.Fatal(err)
		}
	}
	subj := "a.b.c"
	b := []byte(subj)
	x.Match(subj)
	x.Match("nobody.listens")
	checks := []struct {
		name string
		fn   func()
	}{
		{"Match", func() { x.Match(subj) }},
		{"Match empty", func() { x.Match("nobody.listens") }},
		{"MatchBytes", func() { x.MatchBytes(b) }},
		{"HasInterest hit", func() { x.HasInterest(subj) }},
		{"HasInterest miss", func() { x.HasInterest("a.x.c") }},
		{"HasInterest none", func() { x.HasInterest("b.x.c") }},
		{"HasInterest invalid", func() { x.HasInterest("a..c") }},
		{"Match invalid", func() { x.Match("a..c") }},
	}
	for _, c := range checks {
		if n := testing.AllocsPerRun(1000, c.fn); n != 0 {
			t.Errorf("%s: %v allocs per run, want 0", c.name, n)
		}
	}
}
