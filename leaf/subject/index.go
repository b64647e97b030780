package subject

import (
	"fmt"
	"sync"
)

// Sub is one subscription in an Index. C is what its owner needs to deliver
// a message, typically the client connection.
//
// The Index keeps the pointer, and the pointer is the subscription's
// identity. The fields must not change while the Sub is in an Index:
// matches hand the same pointer to other goroutines without a lock. To
// change a weight, insert a new Sub with Replace.
type Sub[C any] struct {
	Client C
	// SID is the client's subscription id, echoed back in MSG.
	SID string
	// Subject is the filter; it may hold wildcards.
	Subject string
	// Queue is the queue group; "" means a plain subscription.
	Queue string
	// Weight is how many members a remote queue subscription stands for,
	// the weight of an LS+. Values below 1 count as 1 and values above
	// MaxWeight as MaxWeight, as in nats-server, so local subscriptions
	// leave it 0.
	Weight int
}

func (s *Sub[C]) weight() uint64 {
	switch {
	case s.Weight < 1:
		return 1
	case s.Weight > MaxWeight:
		return MaxWeight
	}
	return uint64(s.Weight)
}

// Index maps subjects to the subscriptions that receive them: a trie of
// tokens with separate "*" and ">" children, fronted by a bounded cache of
// recent match results.
//
// The zero value is an empty index ready to use. An Index is safe for
// concurrent use and must not be copied after first use.
type Index[C any] struct {
	mu    sync.RWMutex
	root  level[C]
	count int
	// gen counts changes. A match computed under the read lock is cached
	// only if gen has not moved by the time the write lock is held, so a
	// result that misses a concurrent Insert or Remove is never cached.
	gen   uint64
	cache map[string]Result[C]
}

// level is one token position: literal children by token, plus at most
// one "*" and one ">" child.
type level[C any] struct {
	nodes    map[string]*node[C]
	pwc, fwc *node[C]
}

// node holds the subscriptions whose filter ends here and the level for
// longer filters.
type node[C any] struct {
	next   *level[C]
	plain  map[*Sub[C]]struct{}
	queues map[string]map[*Sub[C]]struct{}
}

// Insert adds s. It fails with ErrInvalidSubject or ErrInvalidQueue when
// s.Subject or s.Queue is invalid. Inserting a Sub that is already present
// does nothing.
func (x *Index[C]) Insert(s *Sub[C]) error {
	if err := check(s); err != nil {
		return err
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.insert(s) {
		x.invalidate(s.Subject)
	}
	return nil
}

// Remove removes s, or fails with ErrNotFound.
func (x *Index[C]) Remove(s *Sub[C]) error {
	x.mu.Lock()
	defer x.mu.Unlock()
	if !x.remove(s) {
		return fmt.Errorf("remove %q: %w", s.Subject, ErrNotFound)
	}
	x.invalidate(s.Subject)
	return nil
}

// batchFlush is the batch size from which RemoveBatch empties the cache
// rather than scanning it once per wildcard subscription.
const batchFlush = 16

// RemoveBatch removes subs under one lock, for a client that goes away with
// many subscriptions. It removes every Sub it finds and fails with
// ErrNotFound if some were missing.
func (x *Index[C]) RemoveBatch(subs []*Sub[C]) error {
	x.mu.Lock()
	defer x.mu.Unlock()
	flush := len(subs) >= batchFlush
	missing := 0
	for _, s := range subs {
		switch {
		case !x.remove(s):
			missing++
		case !flush:
			x.invalidate(s.Subject)
		}
	}
	if flush && missing < len(subs) {
		x.gen++
		clear(x.cache)
	}
	if missing > 0 {
		return fmt.Errorf("remove %d of %d subscriptions: %w", missing, len(subs), ErrNotFound)
	}
	return nil
}

// Replace swaps from for to in one step, so no match in between sees
// neither. The uplink uses it when an LS+ changes a queue weight. It fails
// like Insert if to is invalid and with ErrNotFound if from is absent; in
// both cases the index is unchanged.
func (x *Index[C]) Replace(from, to *Sub[C]) error {
	if err := check(to); err != nil {
		return err
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	if !x.remove(from) {
		return fmt.Errorf("replace %q: %w", from.Subject, ErrNotFound)
	}
	x.invalidate(from.Subject)
	if x.insert(to) {
		x.invalidate(to.Subject)
	}
	return nil
}

// Count returns the number of subscriptions.
func (x *Index[C]) Count() int {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return x.count
}

// Subs returns every subscription, in no particular order. The uplink uses
// it to announce interest again after a reconnect. The slice is the
// caller's.
func (x *Index[C]) Subs() []*Sub[C] {
	x.mu.RLock()
	defer x.mu.RUnlock()
	out := make([]*Sub[C], 0, x.count)
	return x.root.appendSubs(out)
}

func check[C any](s *Sub[C]) error {
	if !ValidSubscribe(s.Subject) {
		return fmt.Errorf("subject %q: %w", s.Subject, ErrInvalidSubject)
	}
	if s.Queue != "" && !ValidQueue(s.Queue) {
		return fmt.Errorf("queue %q: %w", s.Queue, ErrInvalidQueue)
	}
	return nil
}

// insert adds a validated s and reports whether it was new. x.mu is held.
func (x *Index[C]) insert(s *Sub[C]) bool {
	l := &x.root
	t := tokens{s: s.Subject}
	tok, _ := t.next()
	for {
		n := l.child(tok)
		next, more := t.next()
		if !more {
			if !n.add(s) {
				return false
			}
			x.count++
			return true
		}
		if n.next == nil {
			n.next = &level[C]{}
		}
		l, tok = n.next, next
	}
}

// step is one token of the path that remove walked, kept for pruning.
type step[C any] struct {
	l   *level[C]
	tok string
	n   *node[C]
}

// remove removes s, prunes nodes left empty and reports whether s was
// present. x.mu is held.
func (x *Index[C]) remove(s *Sub[C]) bool {
	var buf [16]step[C]
	path := buf[:0]
	l := &x.root
	t := tokens{s: s.Subject}
	for tok, ok := t.next(); ok; tok, ok = t.next() {
		if l == nil {
			return false
		}
		n := l.lookup(tok)
		if n == nil {
			return false
		}
		path = append(path, step[C]{l, tok, n})
		l = n.next
	}
	if len(path) == 0 || !path[len(path)-1].n.remove(s) {
		return false
	}
	x.count--
	// Prune bottom-up so that churn on unique subjects (reply inboxes)
	// does not grow the trie forever.
	for i := len(path) - 1; i >= 0; i-- {
		st := path[i]
		if !st.n.empty() {
			break
		}
		st.l.drop(st.tok)
		if i > 0 && st.l.empty() {
			path[i-1].n.next = nil
		}
	}
	return true
}

// child returns the child for tok, creating it.
func (l *level[C]) child(tok string) *node[C] {
	switch tok {
	case PartialWildcard:
		if l.pwc == nil {
			l.pwc = &node[C]{}
		}
		return l.pwc
	case FullWildcard:
		if l.fwc == nil {
			l.fwc = &node[C]{}
		}
		return l.fwc
	}
	n := l.nodes[tok]
	if n == nil {
		if l.nodes == nil {
			l.nodes = make(map[string]*node[C])
		}
		n = &node[C]{}
		l.nodes[tok] = n
	}
	return n
}

// lookup returns the child for tok of a filter, or nil.
func (l *level[C]) lookup(tok string) *node[C] {
	switch tok {
	case PartialWildcard:
		return l.pwc
	case FullWildcard:
		return l.fwc
	}
	return l.nodes[tok]
}

func (l *level[C]) drop(tok string) {
	switch tok {
	case PartialWildcard:
		l.pwc = nil
	case FullWildcard:
		l.fwc = nil
	default:
		delete(l.nodes, tok)
	}
}

func (l *level[C]) empty() bool {
	return l == nil || len(l.nodes) == 0 && l.pwc == nil && l.fwc == nil
}

func (l *level[C]) appendSubs(out []*Sub[C]) []*Sub[C] {
	for _, n := range l.nodes {
		out = n.appendSubs(out)
	}
	if l.pwc != nil {
		out = l.pwc.appendSubs(out)
	}
	if l.fwc != nil {
		out = l.fwc.appendSubs(out)
	}
	return out
}

func (n *node[C]) add(s *Sub[C]) bool {
	if s.Queue == "" {
		if _, ok := n.plain[s]; ok {
			return false
		}
		if n.plain == nil {
			n.plain = make(map[*Sub[C]]struct{})
		}
		n.plain[s] = struct{}{}
		return true
	}
	members := n.queues[s.Queue]
	if _, ok := members[s]; ok {
		return false
	}
	if members == nil {
		if n.queues == nil {
			n.queues = make(map[string]map[*Sub[C]]struct{})
		}
		members = make(map[*Sub[C]]struct{})
		n.queues[s.Queue] = members
	}
	members[s] = struct{}{}
	return true
}

func (n *node[C]) remove(s *Sub[C]) bool {
	if s.Queue == "" {
		if _, ok := n.plain[s]; !ok {
			return false
		}
		delete(n.plain, s)
		return true
	}
	members := n.queues[s.Queue]
	if _, ok := members[s]; !ok {
		return false
	}
	delete(members, s)
	if len(members) == 0 {
		delete(n.queues, s.Queue)
	}
	return true
}

func (n *node[C]) hasSubs() bool { return len(n.plain) > 0 || len(n.queues) > 0 }

func (n *node[C]) empty() bool { return !n.hasSubs() && n.next.empty() }

func (n *node[C]) appendSubs(out []*Sub[C]) []*Sub[C] {
	for s := range n.plain {
		out = append(out, s)
	}
	for _, members := range n.queues {
		for s := range members {
			out = append(out, s)
		}
	}
	if n.next != nil {
		out = n.next.appendSubs(out)
	}
	return out
}
