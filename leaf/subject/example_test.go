package subject_test

import (
	"fmt"
	"math/rand/v2"

	"github.com/canopy-iot/canopy/leaf/subject"
)

type conn struct{ name string }

func Example() {
	var idx subject.Index[*conn]
	app, worker1, worker2 := &conn{"app"}, &conn{"worker1"}, &conn{"worker2"}
	for _, s := range []*subject.Sub[*conn]{
		{Client: app, SID: "1", Subject: "jobs.>"},
		{Client: worker1, SID: "7", Subject: "jobs.*", Queue: "workers"},
		{Client: worker2, SID: "3", Subject: "jobs.*", Queue: "workers"},
	} {
		if err := idx.Insert(s); err != nil {
			fmt.Println(err)
		}
	}

	r := idx.MatchBytes([]byte("jobs.resize"))
	for _, s := range r.Plain {
		fmt.Printf("MSG to %s sid %s\n", s.Client.name, s.SID)
	}
	for _, g := range r.Groups {
		s := g.Pick(rand.Uint64())
		fmt.Printf("one of %d %q members\n", len(g.Members), g.Queue)
		_ = s
	}
	// Output:
	// MSG to app sid 1
	// one of 2 "workers" members
}

func ExampleInterest() {
	var in subject.Interest
	// add and remove show what the uplink sends for each local SUB and
	// UNSUB; it holds one lock across the count and the write.
	add := func(subj, queue string) {
		switch n := in.Add(subj, queue); {
		case queue != "":
			fmt.Printf("LS+ %s %s %d\n", subj, queue, n)
		case n == 1:
			fmt.Printf("LS+ %s\n", subj)
		}
	}
	remove := func(subj, queue string) {
		n, err := in.Remove(subj, queue)
		switch {
		case err != nil:
			fmt.Println(err)
		case queue != "" && n > 0:
			fmt.Printf("LS+ %s %s %d\n", subj, queue, n)
		case queue != "":
			fmt.Printf("LS- %s %s\n", subj, queue)
		case n == 0:
			fmt.Printf("LS- %s\n", subj)
		}
	}
	add("foo", "")
	add("foo", "") // a second local subscription: nothing to send
	add("foo", "q")
	add("foo", "q")
	remove("foo", "q")
	remove("foo", "")
	remove("foo", "q")
	remove("foo", "")
	// Output:
	// LS+ foo
	// LS+ foo q 1
	// LS+ foo q 2
	// LS+ foo q 1
	// LS- foo q
	// LS- foo
}

func ExampleSubsetOf() {
	fmt.Println(subject.SubsetOf("$JS.API.STREAM.INFO.*", "$JS.API.>"))
	fmt.Println(subject.SubsetOf("$JS.API.>", "$JS.API.STREAM.>"))
	// Output:
	// true
	// false
}
