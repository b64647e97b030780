package subject

import "strings"

// Match reports whether a subscription on filter receives a message
// published on subject, with the semantics of Index.Match. It is false when
// filter is not a valid filter or subject has an empty token.
func Match(filter, subject string) bool {
	return ValidSubscribe(filter) && matchValid(filter, subject)
}

// matchValid is Match for a filter already known to be valid; the cache
// calls it for every cached subject when a wildcard subscription changes.
func matchValid(filter, subject string) bool {
	f, s := tokens{s: filter}, tokens{s: subject}
	for {
		ft, fok := f.next()
		st, sok := s.next()
		if !fok {
			return !sok
		}
		if !sok || st == "" {
			return false
		}
		switch ft {
		case FullWildcard:
			return s.restNonEmpty()
		case PartialWildcard:
		default:
			if ft != st {
				return false
			}
		}
	}
}

// SubsetOf reports whether every subject that filter a matches is also
// matched by filter b, as nats-server's SubjectIsSubsetMatch does for
// permissions and stream filters: "foo.*" is a subset of "foo.>", "*.*" and
// "foo.*", but not of "foo.bar". It is false when either filter is invalid.
// For a literal a it equals Match(b, a).
//
// Unlike nats-server, a token of b is a wildcard only when it is exactly
// "*": nats-server's version lets a literal token such as "*x" in b match
// any token, which no subscription on b would do.
func SubsetOf(a, b string) bool {
	if !ValidSubscribe(a) || !ValidSubscribe(b) {
		return false
	}
	at, bt := tokens{s: a}, tokens{s: b}
	for {
		x, aok := at.next()
		y, bok := bt.next()
		switch {
		case !bok:
			return !aok
		case !aok:
			return false
		case y == FullWildcard:
			return true
		case x == FullWildcard:
			// a's ">" covers any number of tokens; only a ">" in b does.
			return false
		case y == PartialWildcard:
			// Covers one token, literal or "*".
		case x == PartialWildcard || x != y:
			return false
		}
	}
}

// tokens walks the tokens of a subject without allocating. Like
// strings.Split, an empty subject has one empty token.
type tokens struct {
	s    string
	pos  int
	done bool
}

func (t *tokens) next() (string, bool) {
	if t.done {
		return "", false
	}
	rest := t.s[t.pos:]
	i := strings.IndexByte(rest, '.')
	if i < 0 {
		t.done = true
		return rest, true
	}
	t.pos += i + 1
	return rest[:i], true
}

// restNonEmpty reports whether every remaining token is non-empty.
func (t *tokens) restNonEmpty() bool {
	for {
		tok, ok := t.next()
		if !ok {
			return true
		}
		if tok == "" {
			return false
		}
	}
}

// split appends the tokens of subject to dst. It reports false, as
// nats-server's match does, when a token is empty: such a subject matches
// nothing.
func split(subject string, dst []string) ([]string, bool) {
	t := tokens{s: subject}
	for {
		tok, ok := t.next()
		if !ok {
			return dst, true
		}
		if tok == "" {
			return dst, false
		}
		dst = append(dst, tok)
	}
}
