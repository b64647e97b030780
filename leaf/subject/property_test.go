package subject

import (
	"math/rand/v2"
	"strings"
	"testing"
)

// A small alphabet makes overlaps between random filters and subjects
// common, so every branch of the trie is exercised.
var (
	filterTokens  = []string{"a", "b", "c", "*", "*", ">", "a*", ">b"}
	subjectTokens = []string{"a", "b", "c", "a*", ">b", "*", ">", "d"}
	queues        = []string{"", "", "", "q1", "q2"}
)

func randSubject(r *rand.Rand, alphabet []string) string {
	toks := make([]string, 1+r.IntN(4))
	for i := range toks {
		toks[i] = alphabet[r.IntN(len(alphabet))]
	}
	return strings.Join(toks, ".")
}

// randFilter returns a random valid filter: ">" only last.
func randFilter(r *rand.Rand) string {
	for {
		if f := randSubject(r, filterTokens); refValid(f) {
			return f
		}
	}
}

// TestIndexMatchProperty interleaves random inserts, removes and matches
// and compares every match, cached or not, with a brute-force scan.
func TestIndexMatchProperty(t *testing.T) {
	for seed := range uint64(10) {
		r := rand.New(rand.NewPCG(seed, 42))
		var x Index[string]
		var live []*Sub[string]
		nextSID := 0
		for step := range 2000 {
			switch op := r.IntN(10); {
			case op < 3 || len(live) == 0:
				nextSID++
				s := &Sub[string]{SID: string(rune('A' + nextSID%26)), Subject: randFilter(r), Queue: queues[r.IntN(len(queues))]}
				s.SID += strings.Repeat("'", nextSID/26)
				if err := x.Insert(s); err != nil {
					t.Fatalf("seed %d step %d: Insert(%q): %v", seed, step, s.Subject, err)
				}
				live = append(live, s)
			case op < 5:
				i := r.IntN(len(live))
				if err := x.Remove(live[i]); err != nil {
					t.Fatalf("seed %d step %d: Remove(%q): %v", seed, step, live[i].Subject, err)
				}
				live[i] = live[len(live)-1]
				live = live[:len(live)-1]
			default:
				subj := randSubject(r, subjectTokens)
				if r.IntN(20) == 0 {
					subj += "." // an empty token now and then
				}
				want := summary(bruteForce(live, subj))
				if got := summary(x.Match(subj)); got != want {
					t.Fatalf("seed %d step %d: Match(%q) = %s, want %s", seed, step, subj, got, want)
				}
				if got := summary(x.MatchBytes([]byte(subj))); got != want {
					t.Fatalf("seed %d step %d: MatchBytes(%q) = %s, want %s", seed, step, subj, got, want)
				}
				if got := x.HasInterest(subj); got != (want != "plain=[]") {
					t.Fatalf("seed %d step %d: HasInterest(%q) = %v, want %v", seed, step, subj, got, !got)
				}
			}
			if x.Count() != len(live) {
				t.Fatalf("seed %d step %d: Count() = %d, want %d", seed, step, x.Count(), len(live))
			}
		}
	}
}

// TestMatchProperty compares Match with refMatch, and checks SubsetOf
// against its definition on random subjects.
func TestMatchProperty(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 7))
	for range 20000 {
		f, s := randSubject(r, filterTokens), randSubject(r, subjectTokens)
		if got, want := Match(f, s), refMatch(f, s); got != want {
			t.Fatalf("Match(%q, %q) = %v, want %v", f, s, got, want)
		}
		a, b := randFilter(r), randFilter(r)
		sub := SubsetOf(a, b)
		// For a literal a, being a subset is matching.
		if refLiteral(a) && sub != refMatch(b, a) {
			t.Fatalf("SubsetOf(%q, %q) = %v, but Match(%q, %q) = %v", a, b, sub, b, a, refMatch(b, a))
		}
		// A subset never has a subject that b misses.
		if sub && refMatch(a, s) && !refMatch(b, s) {
			t.Fatalf("SubsetOf(%q, %q) is true, but %q matches only the first", a, b, s)
		}
	}
}
