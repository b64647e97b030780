package auth

import (
	"fmt"
	"strings"

	"github.com/canopy-iot/canopy/leaf/subject"
)

// permissions are one configured user's compiled permissions, shared by
// all its connections and never changed after New.
type permissions struct {
	pubAllow, pubDeny []string
	// pubOpen: publishing anything is allowed unless denied. False when an
	// allow list exists, and when responses are on without one (nats-server:
	// validateResponsePermissions turns the blanket allow off).
	pubOpen bool
	// pubChecked: publishing needs a check at all.
	pubChecked bool
	subAllow   []subFilter
	subDeny    []subFilter
	responses  bool
}

// subFilter is a subscribe permission entry: a subject filter and, for an
// entry that governs queue subscriptions only, a queue pattern.
type subFilter struct {
	subject, queue string
}

// parseSubFilter parses "subject" or "subject queue", as nats-server's
// splitSubjectQueue does. The queue may hold wildcards, so it must be a
// valid filter too.
func parseSubFilter(s string) (subFilter, error) {
	f := strings.Fields(s)
	switch {
	case len(f) == 0 || len(f) > 2:
		return subFilter{}, fmt.Errorf("invalid entry %q (want \"subject\" or \"subject queue\")", s)
	case !subject.ValidSubscribe(f[0]):
		return subFilter{}, fmt.Errorf("invalid subject %q", f[0])
	case len(f) == 2 && !subject.ValidSubscribe(f[1]):
		return subFilter{}, fmt.Errorf("invalid queue group %q", f[1])
	}
	sf := subFilter{subject: f[0]}
	if len(f) == 2 {
		sf.queue = f[1]
	}
	return sf, nil
}

// compilePermissions returns nil when p allows everything, so that the
// permission checks of such users cost one nil test. p has been validated.
func compilePermissions(p Permissions) *permissions {
	c := &permissions{
		pubAllow:  p.Publish.Allow,
		pubDeny:   p.Publish.Deny,
		responses: p.AllowResponses,
	}
	c.pubOpen = len(c.pubAllow) == 0 && !c.responses
	c.pubChecked = !c.pubOpen || len(c.pubDeny) > 0
	for _, s := range p.Subscribe.Allow {
		f, _ := parseSubFilter(s)
		c.subAllow = append(c.subAllow, f)
	}
	for _, s := range p.Subscribe.Deny {
		f, _ := parseSubFilter(s)
		c.subDeny = append(c.subDeny, f)
	}
	if !c.pubChecked && len(c.subAllow) == 0 && len(c.subDeny) == 0 {
		return nil
	}
	return c
}

// pubAllowed is the static publish decision, without responses: the
// subject must match an allow entry (when there are any) and no deny entry.
// It is nats-server's pubAllowedFullCheck, whose sublists match a published
// subject as subject.Match does.
func (p *permissions) pubAllowed(subj string) bool {
	allowed := p.pubOpen
	for _, f := range p.pubAllow {
		if subject.Match(f, subj) {
			allowed = true
			break
		}
	}
	if !allowed {
		return false
	}
	for _, f := range p.pubDeny {
		if subject.Match(f, subj) {
			return false
		}
	}
	return true
}

// subAllowed is nats-server's canSubscribeInternal. Allow: a plain entry
// matching the subject allows it, except that for a queue subscription
// matching queue entries decide instead, by queue. Deny: a plain entry
// matching the subject refuses it; for a queue subscription, so does a
// matching queue entry whose queue pattern covers the queue.
//
// The subject of a subscription may hold wildcards. Like nats-server's
// Sublist.Match, subject.Match takes them as literal tokens: an entry
// "foo.*" matches "foo.>" and "foo.*", "foo.bar" matches neither. So a deny
// entry narrower than a wildcard subscription does not refuse it; those
// subjects are filtered at delivery instead (deliveryDenied).
func (p *permissions) subAllowed(subj, queue string) bool {
	if len(p.subAllow) > 0 {
		plain, queued, queueOK := scan(p.subAllow, subj, queue)
		allowed := plain
		if queue != "" && queued {
			allowed = queueOK
		}
		if !allowed {
			return false
		}
	}
	return !p.deliveryDenied(subj, queue)
}

// deliveryDenied is nats-server's checkDenySub: whether deny entries forbid
// a message on subj to a subscription in queue ("" for none).
func (p *permissions) deliveryDenied(subj, queue string) bool {
	plain, _, queueOK := scan(p.subDeny, subj, queue)
	return plain || (queue != "" && queueOK)
}

// scan matches subj against filters and reports whether a plain entry
// matched, whether a queue entry matched, and whether a matching queue
// entry's pattern covers queue.
func scan(filters []subFilter, subj, queue string) (plain, queued, queueOK bool) {
	for _, f := range filters {
		if !subject.Match(f.subject, subj) {
			continue
		}
		if f.queue == "" {
			plain = true
			continue
		}
		queued = true
		if queue != "" && queueMatches(queue, f.queue) {
			queueOK = true
		}
	}
	return plain, queued, queueOK
}

// queueMatches is nats-server's: the queue names the pattern literally
// ("v1.*" matches "v1.*"), or the pattern has wildcards that cover it.
func queueMatches(queue, pattern string) bool {
	return queue == pattern || (subject.HasWildcard(pattern) && subject.SubsetOf(queue, pattern))
}

// overlapsDeny reports whether some subject could be delivered to a
// subscription on filter and also be matched by a deny entry: the case in
// which deliveries must be filtered.
func (p *permissions) overlapsDeny(filter string) bool {
	for _, f := range p.subDeny {
		if collide(f.subject, filter) {
			return true
		}
	}
	return false
}

// collide reports whether some literal subject matches both filters, as
// nats-server's SubjectsCollide.
func collide(a, b string) bool {
	for {
		x, restA, moreA := strings.Cut(a, subject.Separator)
		y, restB, moreB := strings.Cut(b, subject.Separator)
		if x == subject.FullWildcard || y == subject.FullWildcard {
			return true // both have a token here, and ">" takes the rest
		}
		if x != y && x != subject.PartialWildcard && y != subject.PartialWildcard {
			return false
		}
		if !moreA || !moreB {
			return moreA == moreB
		}
		a, b = restA, restB
	}
}
