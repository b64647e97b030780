package subject

import "strings"

const (
	// cacheMax bounds the match cache.
	cacheMax = 1024
	// cacheKeep is what a full cache is cut down to: evicting a quarter at
	// a time keeps the eviction cost per miss constant.
	cacheKeep = cacheMax * 3 / 4
)

// Match returns the subscriptions that receive a message published on
// subject. A subject with an empty token matches nothing; wildcard tokens
// in subject are matched as literal bytes, so "foo.*" reaches "foo.*" and
// "foo.>" but not "foo.bar", exactly as in nats-server.
//
// The result is shared with the cache and other callers: read it, never
// modify it. It may still hold a Sub that another goroutine is removing;
// a caller that must not deliver after UNSUB checks its own state.
//
// A cache hit takes the read lock only and does not allocate.
func (x *Index[C]) Match(subject string) Result[C] {
	x.mu.RLock()
	if r, ok := x.cache[subject]; ok {
		x.mu.RUnlock()
		return r
	}
	return x.miss(subject, false)
}

// MatchBytes is Match for a subject still in a read buffer. A cache hit
// does not convert subject to a string (the compiler looks the bytes up in
// place); a miss copies it once, to use as the cache key.
func (x *Index[C]) MatchBytes(subject []byte) Result[C] {
	x.mu.RLock()
	if r, ok := x.cache[string(subject)]; ok {
		x.mu.RUnlock()
		return r
	}
	return x.miss(string(subject), true)
}

// HasInterest reports whether any subscription matches subject. It uses
// the cache but does not fill it, and walks the trie without allocating,
// stopping at the first subscription it finds.
func (x *Index[C]) HasInterest(subject string) bool {
	x.mu.RLock()
	defer x.mu.RUnlock()
	if r, ok := x.cache[subject]; ok {
		return !r.Empty()
	}
	var buf [32]string
	toks, ok := split(subject, buf[:0])
	return ok && x.root.any(toks)
}

// miss computes the result for subject and caches it. It is called with
// the read lock held and releases it. owned says subject is already a
// private copy that may be kept as a cache key.
func (x *Index[C]) miss(subject string, owned bool) Result[C] {
	var buf [32]string
	toks, ok := split(subject, buf[:0])
	if !ok {
		x.mu.RUnlock()
		return Result[C]{}
	}
	var r Result[C]
	x.root.collect(toks, &r)
	gen := x.gen
	x.mu.RUnlock()

	if !owned {
		// The caller's string may be a slice of a large buffer; don't pin
		// it in the cache.
		subject = strings.Clone(subject)
	}
	x.fill(subject, r, gen)
	return r
}

// fill caches r for subject unless the index changed after generation gen,
// when r was computed. Such an r may miss that change: a fine answer for
// the call that raced with it, but not for later ones.
func (x *Index[C]) fill(subject string, r Result[C], gen uint64) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.gen != gen {
		return
	}
	if x.cache == nil {
		x.cache = make(map[string]Result[C])
	}
	if len(x.cache) >= cacheMax {
		// Map iteration starts at a random place, so this drops an
		// arbitrary quarter of the entries.
		for k := range x.cache {
			delete(x.cache, k)
			if len(x.cache) <= cacheKeep {
				break
			}
		}
	}
	x.cache[subject] = r
}

// invalidate drops the cached results that a change to a subscription on
// filter affects: exactly the cached subjects that filter matches. A
// literal filter matches only itself. x.mu is held for writing.
func (x *Index[C]) invalidate(filter string) {
	x.gen++
	if len(x.cache) == 0 {
		return
	}
	if !HasWildcard(filter) {
		delete(x.cache, filter)
		return
	}
	for k := range x.cache {
		if matchValid(filter, k) {
			delete(x.cache, k)
		}
	}
}

// collect adds the subscriptions at or below l that match toks, which is
// not empty.
func (l *level[C]) collect(toks []string, r *Result[C]) {
	if l.fwc != nil {
		r.add(l.fwc)
	}
	if l.pwc != nil {
		l.pwc.collect(toks[1:], r)
	}
	// A published "*" or ">" token finds no literal child: wildcards live
	// in pwc and fwc only.
	if n := l.nodes[toks[0]]; n != nil {
		n.collect(toks[1:], r)
	}
}

func (n *node[C]) collect(rest []string, r *Result[C]) {
	if len(rest) == 0 {
		r.add(n)
		return
	}
	if n.next != nil {
		n.next.collect(rest, r)
	}
}

// any is collect that stops at the first subscription.
func (l *level[C]) any(toks []string) bool {
	if l.fwc != nil && l.fwc.hasSubs() {
		return true
	}
	if l.pwc != nil && l.pwc.any(toks[1:]) {
		return true
	}
	n := l.nodes[toks[0]]
	return n != nil && n.any(toks[1:])
}

func (n *node[C]) any(rest []string) bool {
	if len(rest) == 0 {
		return n.hasSubs()
	}
	return n.next != nil && n.next.any(rest)
}
