package subject

import (
	"errors"
	"slices"
	"testing"
)

func TestIndexMatch(t *testing.T) {
	var x Index[string]
	for _, s := range []*Sub[string]{
		sub("01", "foo", ""),
		sub("02", "foo.bar", ""),
		sub("03", "foo.*", ""),
		sub("04", "foo.>", ""),
		sub("05", ">", ""),
		sub("06", "*.bar", ""),
		sub("07", "foo.bar", "q1"),
		sub("08", "foo.*", "q1"),
		sub("09", "foo.>", "q2"),
		sub("10", "foo.bar.baz", ""),
		sub("11", "*.*.baz", ""),
		sub("12", "foo*", ""),
		sub("13", "*", ""),
		sub("14", "foo.bar", ""), // a second plain sub on one subject
		sub("15", "foo.bar", "q1"),
		sub("16", "*bar.baz", ""),
	} {
		if err := x.Insert(s); err != nil {
			t.Fatalf("Insert(%q): %v", s.Subject, err)
		}
	}
	tests := []struct {
		subject string
		want    string
	}{
		{"foo", "plain=[01 05 13]"},
		{"foo.bar", "plain=[02 03 04 05 06 14] q1=[07 08 15] q2=[09]"},
		{"foo.baz", "plain=[03 04 05] q1=[08] q2=[09]"},
		{"foo.bar.baz", "plain=[04 05 10 11] q2=[09]"},
		{"x.y.baz", "plain=[05 11]"},
		{"bar", "plain=[05 13]"},
		{"x.bar", "plain=[05 06]"},
		{"foo*", "plain=[05 12 13]"},
		{"foox", "plain=[05 13]"},
		{"*bar.baz", "plain=[05 16]"},
		{"xbar.baz", "plain=[05]"},
		// A published wildcard token reaches only wildcard filters.
		{"foo.*", "plain=[03 04 05] q1=[08] q2=[09]"},
		{"*", "plain=[05 13]"},
		{"foo.>", "plain=[03 04 05] q1=[08] q2=[09]"},
		// Empty tokens reach no one, not even ">".
		{"", "plain=[]"},
		{".", "plain=[]"},
		{"foo.", "plain=[]"},
		{".foo", "plain=[]"},
		{"foo..bar", "plain=[]"},
	}
	for _, tt := range tests {
		// Twice: the second answer comes from the cache.
		for _, pass := range []string{"computed", "cached"} {
			if got := summary(x.Match(tt.subject)); got != tt.want {
				t.Errorf("%s Match(%q) = %s, want %s", pass, tt.subject, got, tt.want)
			}
			if got := summary(x.MatchBytes([]byte(tt.subject))); got != tt.want {
				t.Errorf("%s MatchBytes(%q) = %s, want %s", pass, tt.subject, got, tt.want)
			}
			if got, want := x.HasInterest(tt.subject), tt.want != "plain=[]"; got != want {
				t.Errorf("%s HasInterest(%q) = %v, want %v", pass, tt.subject, got, want)
			}
		}
	}
	if got := x.Count(); got != 16 {
		t.Errorf("Count() = %d, want 16", got)
	}
}

func TestIndexInsertErrors(t *testing.T) {
	tests := []struct {
		subject, queue string
		want           error
	}{
		{"", "", ErrInvalidSubject},
		{"foo..bar", "", ErrInvalidSubject},
		{".foo", "", ErrInvalidSubject},
		{"foo.", "", ErrInvalidSubject},
		{"foo.>.bar", "", ErrInvalidSubject},
		{">.foo", "", ErrInvalidSubject},
		{"foo bar", "", ErrInvalidSubject},
		{"foo\tbar", "q", ErrInvalidSubject},
		{"foo", "a b", ErrInvalidQueue},
		{"foo", "a\nb", ErrInvalidQueue},
		{"foo", " ", ErrInvalidQueue},
		{"foo", "q", nil},
		{"foo.>", "a.b", nil},
		{"foo*bar.>>", "", nil},
	}
	for _, tt := range tests {
		var x Index[string]
		err := x.Insert(sub("1", tt.subject, tt.queue))
		if !errors.Is(err, tt.want) || (err == nil) != (tt.want == nil) {
			t.Errorf("Insert(%q, %q) = %v, want %v", tt.subject, tt.queue, err, tt.want)
		}
		wantCount := 0
		if tt.want == nil {
			wantCount = 1
		}
		if n := x.Count(); n != wantCount {
			t.Errorf("Insert(%q, %q): Count() = %d, want %d", tt.subject, tt.queue, n, wantCount)
		}
	}
}

func TestIndexDuplicateInsert(t *testing.T) {
	var x Index[string]
	s := sub("1", "foo", "q")
	for range 3 {
		if err := x.Insert(s); err != nil {
			t.Fatal(err)
		}
	}
	if n := x.Count(); n != 1 {
		t.Errorf("Count() = %d after inserting one Sub three times, want 1", n)
	}
	if got := summary(x.Match("foo")); got != "plain=[] q=[1]" {
		t.Errorf("Match = %s", got)
	}
	if err := x.Remove(s); err != nil {
		t.Fatal(err)
	}
	if !x.root.empty() {
		t.Error("trie not empty")
	}
}

func TestIndexRemove(t *testing.T) {
	var x Index[string]
	subs := []*Sub[string]{
		sub("1", "foo.bar", ""),
		sub("2", "foo.*", ""),
		sub("3", "foo.>", ""),
		sub("4", "foo.bar", "q"),
		sub("5", "foo.bar", "q"),
		sub("6", "foo.bar.baz", ""),
		sub("7", ">", "q"),
	}
	for _, s := range subs {
		if err := x.Insert(s); err != nil {
			t.Fatal(err)
		}
	}
	steps := []struct {
		remove *Sub[string]
		want   string // Match("foo.bar") afterwards
	}{
		{subs[0], "plain=[2 3] q=[4 5 7]"},
		{subs[3], "plain=[2 3] q=[5 7]"},
		{subs[1], "plain=[3] q=[5 7]"},
		{subs[6], "plain=[3] q=[5]"},
		{subs[4], "plain=[3]"},
		{subs[2], "plain=[]"},
		{subs[5], "plain=[]"},
	}
	for i, st := range steps {
		x.Match("foo.bar") // keep a cached entry that each removal must drop
		if err := x.Remove(st.remove); err != nil {
			t.Fatalf("step %d: Remove(%q): %v", i, st.remove.Subject, err)
		}
		if got := summary(x.Match("foo.bar")); got != st.want {
			t.Errorf("step %d: after Remove(%s %q) Match = %s, want %s", i, st.remove.SID, st.remove.Subject, got, st.want)
		}
		if err := x.Remove(st.remove); !errors.Is(err, ErrNotFound) {
			t.Errorf("step %d: second Remove = %v, want ErrNotFound", i, err)
		}
		if got, want := x.Count(), len(subs)-i-1; got != want {
			t.Errorf("step %d: Count() = %d, want %d", i, got, want)
		}
	}
	if !x.root.empty() {
		t.Errorf("trie not pruned: %+v", x.root)
	}
}

func TestIndexRemoveNotFound(t *testing.T) {
	var x Index[string]
	in := sub("1", "foo.bar", "q")
	if err := x.Insert(in); err != nil {
		t.Fatal(err)
	}
	for _, s := range []*Sub[string]{
		sub("1", "foo.bar", "q"), // same fields, different identity
		sub("2", "foo.bar", ""),
		sub("3", "foo.bar", "other"),
		sub("4", "foo", ""),
		sub("5", "foo.bar.baz", ""),
		sub("6", "foo.*", ""),
		sub("7", "", ""),
		sub("8", "foo..bar", ""),
	} {
		if err := x.Remove(s); !errors.Is(err, ErrNotFound) {
			t.Errorf("Remove(%q, %q) = %v, want ErrNotFound", s.Subject, s.Queue, err)
		}
	}
	if got := summary(x.Match("foo.bar")); got != "plain=[] q=[1]" {
		t.Errorf("Match = %s", got)
	}
}

func TestIndexPrune(t *testing.T) {
	var x Index[string]
	keep := sub("k", "a.b", "")
	if err := x.Insert(keep); err != nil {
		t.Fatal(err)
	}
	// Reply inboxes: many unique, deep subjects inserted and removed.
	for i := range 100 {
		s := sub("x", "a.b.c."+string(rune('a'+i%26))+".d.>", "")
		if err := x.Insert(s); err != nil {
			t.Fatal(err)
		}
		if err := x.Remove(s); err != nil {
			t.Fatal(err)
		}
	}
	n := x.root.nodes["a"].next.nodes["b"]
	if n.next != nil {
		t.Errorf("level below a.b not pruned: %+v", n.next)
	}
	if err := x.Remove(keep); err != nil {
		t.Fatal(err)
	}
	if !x.root.empty() {
		t.Errorf("trie not empty: %+v", x.root)
	}
}

func TestIndexRemoveBatch(t *testing.T) {
	for _, n := range []int{3, batchFlush, 100} {
		var x Index[string]
		var subs []*Sub[string]
		for i := range n {
			s := sub(string(rune('A'+i%26))+string(rune('a'+i/26)), "foo.*", "")
			if i%3 == 0 {
				s.Subject = "foo.bar"
			}
			subs = append(subs, s)
			if err := x.Insert(s); err != nil {
				t.Fatal(err)
			}
		}
		stay := sub("stay", "foo.>", "")
		if err := x.Insert(stay); err != nil {
			t.Fatal(err)
		}
		x.Match("foo.bar")
		x.Match("foo.baz")
		missing := sub("missing", "foo.bar", "")
		err := x.RemoveBatch(append(slices.Clone(subs), missing))
		if !errors.Is(err, ErrNotFound) {
			t.Errorf("n=%d: RemoveBatch with a missing sub = %v, want ErrNotFound", n, err)
		}
		for _, subj := range []string{"foo.bar", "foo.baz"} {
			if got := summary(x.Match(subj)); got != "plain=[stay]" {
				t.Errorf("n=%d: Match(%q) = %s, want plain=[stay]", n, subj, got)
			}
		}
		if c := x.Count(); c != 1 {
			t.Errorf("n=%d: Count() = %d, want 1", n, c)
		}
		if err := x.RemoveBatch([]*Sub[string]{stay}); err != nil {
			t.Errorf("n=%d: RemoveBatch: %v", n, err)
		}
	}
}

func TestIndexReplace(t *testing.T) {
	var x Index[string]
	old := &Sub[string]{Client: "uplink", Subject: "jobs.>", Queue: "workers", Weight: 1}
	if err := x.Insert(old); err != nil {
		t.Fatal(err)
	}
	x.Match("jobs.a")
	heavier := &Sub[string]{Client: "uplink", Subject: "jobs.>", Queue: "workers", Weight: 5}
	if err := x.Replace(old, heavier); err != nil {
		t.Fatal(err)
	}
	r := x.Match("jobs.a")
	if len(r.Groups) != 1 || len(r.Groups[0].Members) != 1 || r.Groups[0].Members[0] != heavier {
		t.Fatalf("after Replace Match = %+v, want only the new sub", r)
	}
	if err := x.Replace(old, heavier); !errors.Is(err, ErrNotFound) {
		t.Errorf("Replace of a removed sub = %v, want ErrNotFound", err)
	}
	bad := &Sub[string]{Subject: "jobs..x"}
	if err := x.Replace(heavier, bad); !errors.Is(err, ErrInvalidSubject) {
		t.Errorf("Replace with an invalid sub = %v, want ErrInvalidSubject", err)
	}
	if x.Count() != 1 || x.Match("jobs.a").Groups[0].Members[0] != heavier {
		t.Error("a failed Replace changed the index")
	}
	// A replacement may move to another subject.
	moved := &Sub[string]{Subject: "other"}
	if err := x.Replace(heavier, moved); err != nil {
		t.Fatal(err)
	}
	if !x.Match("jobs.a").Empty() || len(x.Match("other").Plain) != 1 {
		t.Error("Replace to another subject did not move the sub")
	}
}

func TestIndexSubs(t *testing.T) {
	var x Index[string]
	if got := x.Subs(); len(got) != 0 {
		t.Errorf("empty index: Subs() = %v", got)
	}
	want := []*Sub[string]{
		sub("1", "foo", ""),
		sub("2", "foo.bar", "q"),
		sub("3", "foo.bar", "q"),
		sub("4", "foo.*", "r"),
		sub("5", "foo.>", ""),
		sub("6", ">", ""),
		sub("7", "*.*.*", ""),
	}
	for _, s := range want {
		if err := x.Insert(s); err != nil {
			t.Fatal(err)
		}
	}
	if got := sids(x.Subs()); !slices.Equal(got, sids(want)) {
		t.Errorf("Subs() = %v, want %v", got, sids(want))
	}
}

func TestGroupPick(t *testing.T) {
	var x Index[string]
	local := []*Sub[string]{sub("a", "q.>", "g"), sub("b", "q.>", "g"), sub("c", "q.x", "g")}
	for _, s := range local {
		if err := x.Insert(s); err != nil {
			t.Fatal(err)
		}
	}
	g := x.Match("q.x").Groups[0]
	seen := map[string]int{}
	for r := range uint64(300) {
		seen[g.Pick(r).SID]++
	}
	if len(seen) != 3 || seen["a"] != 100 || seen["b"] != 100 || seen["c"] != 100 {
		t.Errorf("unweighted Pick over 300 values = %v, want 100 each", seen)
	}

	remote := &Sub[string]{SID: "hub", Subject: "q.x", Queue: "g", Weight: 7}
	if err := x.Insert(remote); err != nil {
		t.Fatal(err)
	}
	g = x.Match("q.x").Groups[0]
	clear(seen)
	for r := range uint64(1000) {
		seen[g.Pick(r).SID]++
	}
	if seen["hub"] != 700 || seen["a"] != 100 {
		t.Errorf("weighted Pick over 1000 values = %v, want hub 700 and 100 each for a, b, c", seen)
	}
	if (Group[string]{}).Pick(1) != nil {
		t.Error("Pick on an empty group is not nil")
	}
}

func TestSubWeight(t *testing.T) {
	tests := []struct {
		weight int
		want   uint64
	}{{-5, 1}, {0, 1}, {1, 1}, {42, 42}, {MaxWeight, MaxWeight}, {MaxWeight + 1, MaxWeight}}
	for _, tt := range tests {
		if got := (&Sub[string]{Weight: tt.weight}).weight(); got != tt.want {
			t.Errorf("weight(%d) = %d, want %d", tt.weight, got, tt.want)
		}
	}
}
