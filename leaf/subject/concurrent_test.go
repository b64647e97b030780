package subject

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
)

// TestIndexConcurrent runs writers and readers together (meant for -race),
// then checks that what the cache kept through the churn is still right.
func TestIndexConcurrent(t *testing.T) {
	var x Index[string]
	subjects := []string{"a.b", "a.c", "a.b.c", "b.b", "a.*", "x"}
	filters := []string{"a.b", "a.*", "a.>", ">", "*.b", "a.b.c", "*.*.c", "x"}

	var wg sync.WaitGroup
	const writers, readers, rounds = 4, 4, 2000
	live := make([][]*Sub[string], writers)
	for w := range writers {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(w), 1))
			var mine []*Sub[string]
			for i := range rounds {
				if len(mine) > 0 && r.IntN(2) == 0 {
					j := r.IntN(len(mine))
					if err := x.Remove(mine[j]); err != nil {
						t.Error(err)
						return
					}
					mine[j] = mine[len(mine)-1]
					mine = mine[:len(mine)-1]
					continue
				}
				s := &Sub[string]{
					SID:     fmt.Sprintf("w%d-%d", w, i),
					Subject: filters[r.IntN(len(filters))],
					Queue:   queues[r.IntN(len(queues))],
				}
				if err := x.Insert(s); err != nil {
					t.Error(err)
					return
				}
				mine = append(mine, s)
			}
			live[w] = mine
		})
	}
	for i := range readers {
		wg.Go(func() {
			for j := range rounds * 4 {
				subj := subjects[(i+j)%len(subjects)]
				switch j % 5 {
				case 0:
					x.MatchBytes([]byte(subj))
				case 1:
					x.HasInterest(subj)
				case 2:
					if j%100 == 2 {
						x.Subs()
						x.Count()
					}
				default:
					res := x.Match(subj)
					for _, g := range res.Groups {
						if g.Pick(uint64(j)) == nil {
							t.Error("empty group in a result")
						}
					}
				}
			}
		})
	}
	wg.Wait()

	var all []*Sub[string]
	for _, m := range live {
		all = append(all, m...)
	}
	if x.Count() != len(all) {
		t.Fatalf("Count() = %d, want %d", x.Count(), len(all))
	}
	for _, subj := range subjects {
		want := summary(bruteForce(all, subj))
		if got := summary(x.Match(subj)); got != want {
			t.Errorf("after churn Match(%q) = %s, want %s", subj, got, want)
		}
	}
	if err := x.RemoveBatch(all); err != nil {
		t.Fatal(err)
	}
	if !x.root.empty() {
		t.Error("trie not empty after removing everything")
	}
}
