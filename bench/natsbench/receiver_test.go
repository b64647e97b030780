package main

import (
	"strings"
	"testing"
	"time"
)

// TestVerify feeds verify the accounting that a server could leave behind
// and checks that every kind of mistake is reported, and nothing else.
func TestVerify(t *testing.T) {
	const msgs = 100
	// member builds a receiver that saw the sequence numbers in seqs.
	member := func(g *group, seqs ...int) *receiver {
		r := &receiver{name: "receiver", g: g, seen: newBitset(msgs)}
		for _, s := range seqs {
			if r.seen.testAndSet(uint64(s)) {
				r.dups++
			}
			r.count++
			g.total.Add(1)
		}
		return r
	}
	span := func(from, to int) []int { // from…to-1
		var s []int
		for i := from; i < to; i++ {
			s = append(s, i)
		}
		return s
	}

	tests := []struct {
		name    string
		queue   bool
		members [][]int
		want    []string // substrings of the error; none means success
	}{
		{name: "subscribers, all received", members: [][]int{span(0, msgs), span(0, msgs)}},
		{name: "subscriber missing one", members: [][]int{span(0, msgs), span(1, msgs)},
			want: []string{"received 99 messages, want exactly 100"}},
		{name: "subscriber with a duplicate", members: [][]int{append(span(0, msgs), 7)},
			want: []string{"1 duplicate messages", "received 101 messages"}},
		{name: "queue, split", queue: true, members: [][]int{span(0, 40), span(40, 70), span(70, msgs)}},
		{name: "queue, one message to two members", queue: true, members: [][]int{span(0, 51), span(50, msgs)},
			want: []string{"1 messages delivered to more than one member", "received 101 messages in all"}},
		{name: "queue, one message lost", queue: true, members: [][]int{span(0, 50), span(51, msgs)},
			want: []string{"1 of 100 messages never delivered", "received 99 messages in all"}},
		{name: "queue, lost and duplicated", queue: true, members: [][]int{span(0, 50), span(49, 99)},
			want: []string{"1 messages delivered to more than one member", "1 of 100 messages never delivered"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := &group{msgs: msgs, size: 16, queue: tt.queue}
			for _, seqs := range tt.members {
				g.members = append(g.members, member(g, seqs...))
			}
			err := g.verify()
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("verify: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("verify succeeded, want errors %q", tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("verify error %q does not say %q", err, w)
				}
			}
		})
	}
}

func TestPercentile(t *testing.T) {
	var d []time.Duration
	for i := 1; i <= 1000; i++ {
		d = append(d, time.Duration(i))
	}
	for _, tt := range []struct {
		p    float64
		want time.Duration
	}{{0.5, 500}, {0.99, 990}, {0.999, 999}, {1, 1000}, {0, 1}} {
		if got := percentile(d, tt.p); got != tt.want {
			t.Errorf("percentile(1…1000, %v) = %v, want %v", tt.p, got, tt.want)
		}
	}
	if got := percentile([]time.Duration{42}, 0.999); got != 42 {
		t.Errorf("percentile of one value = %v, want 42", got)
	}
}
