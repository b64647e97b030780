package subject

// Result is the set of subscriptions that receive a message. Index.Match
// shares it with its cache: read it, never modify it.
type Result[C any] struct {
	// Plain holds every matching plain subscription; each one gets the
	// message.
	Plain []*Sub[C]
	// Groups holds one entry per matching queue name; exactly one member of
	// each group gets the message.
	Groups []Group[C]
}

// Group is the matching members of one queue group. Members of a queue
// name subscribed under different filters (say "foo.*" and "foo.bar") form
// one group, as in nats-server.
type Group[C any] struct {
	Queue   string
	Members []*Sub[C]
	// total is the sum of the members' weights.
	total uint64
}

// Empty reports whether nothing matched.
func (r Result[C]) Empty() bool { return len(r.Plain) == 0 && len(r.Groups) == 0 }

// Pick returns the member selected by r, a uniformly random number such as
// rand.Uint64(), with each member's chance proportional to its weight. It
// returns nil for a group without members. Callers that prefer local
// members over the uplink (as a nats-server spoke does) filter first and
// pick themselves.
func (g Group[C]) Pick(r uint64) *Sub[C] {
	n := uint64(len(g.Members))
	if n == 0 {
		return nil
	}
	if g.total <= n {
		// Every weight is 1: the common local case.
		return g.Members[r%n]
	}
	x := r % g.total
	for _, s := range g.Members {
		w := s.weight()
		if x < w {
			return s
		}
		x -= w
	}
	return g.Members[n-1]
}

// add appends the subscriptions of n.
func (r *Result[C]) add(n *node[C]) {
	for s := range n.plain {
		r.Plain = append(r.Plain, s)
	}
	for q, members := range n.queues {
		g := r.group(q)
		for s := range members {
			g.Members = append(g.Members, s)
			g.total += s.weight()
		}
	}
}

// group returns the group for queue, adding it. A linear scan beats a map:
// a subject rarely has more than a few queue groups.
func (r *Result[C]) group(queue string) *Group[C] {
	for i := range r.Groups {
		if r.Groups[i].Queue == queue {
			return &r.Groups[i]
		}
	}
	r.Groups = append(r.Groups, Group[C]{Queue: queue})
	return &r.Groups[len(r.Groups)-1]
}
