package subject

import (
	"errors"
	"maps"
	"testing"
)

func TestInterest(t *testing.T) {
	var in Interest
	type op struct {
		add            bool
		subject, queue string
		want           int
	}
	// What the uplink would send is in the comments.
	steps := []op{
		{true, "foo", "", 1},     // LS+ foo
		{true, "foo", "", 2},     // nothing
		{true, "foo", "q", 1},    // LS+ foo q 1
		{true, "foo", "q", 2},    // LS+ foo q 2
		{false, "foo", "", 1},    // nothing
		{false, "foo", "q", 1},   // LS+ foo q 1
		{true, "foo.*", "", 1},   // LS+ foo.*
		{false, "foo", "", 0},    // LS- foo
		{false, "foo", "q", 0},   // LS- foo q
		{false, "foo.*", "", 0},  // LS- foo.*
		{true, "foo", "", 1},     // LS+ foo again
		{true, "foo", "bar", 1},  // a queue key is separate from the plain one
		{false, "foo", "bar", 0}, // LS- foo bar
	}
	for i, st := range steps {
		var got int
		if st.add {
			got = in.Add(st.subject, st.queue)
		} else {
			var err error
			if got, err = in.Remove(st.subject, st.queue); err != nil {
				t.Fatalf("step %d: Remove(%q, %q): %v", i, st.subject, st.queue, err)
			}
		}
		if got != st.want || in.Count(st.subject, st.queue) != st.want {
			t.Fatalf("step %d: count of (%q, %q) = %d, want %d", i, st.subject, st.queue, got, st.want)
		}
	}
	if got := maps.Collect(in.All()); len(got) != 1 || got[Key{"foo", ""}] != 1 || in.Len() != 1 {
		t.Errorf("All() = %v, want only foo:1", got)
	}
}

func TestInterestRemoveUnknown(t *testing.T) {
	var in Interest
	if _, err := in.Remove("foo", ""); !errors.Is(err, ErrNotFound) {
		t.Errorf("Remove on the zero value = %v, want ErrNotFound", err)
	}
	in.Add("foo", "q")
	if _, err := in.Remove("foo", ""); !errors.Is(err, ErrNotFound) {
		t.Errorf("Remove of the plain key when only a queue key exists = %v, want ErrNotFound", err)
	}
	if n, err := in.Remove("foo", "q"); n != 0 || err != nil {
		t.Errorf("Remove = %d, %v", n, err)
	}
	if _, err := in.Remove("foo", "q"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Remove below zero = %v, want ErrNotFound", err)
	}
	if in.Len() != 0 {
		t.Errorf("Len() = %d, want 0", in.Len())
	}
}

func TestInterestAllStops(t *testing.T) {
	var in Interest
	for _, s := range []string{"a", "b", "c"} {
		in.Add(s, "")
	}
	n := 0
	for range in.All() {
		n++
		break
	}
	if n != 1 {
		t.Errorf("All() yielded %d after break", n)
	}
}
