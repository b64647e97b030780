package subject

import (
	"fmt"
	"slices"
	"strings"
)

// sub returns a test subscription; the client is a name and the SID
// identifies the subscription in summaries.
func sub(sid, subject, queue string) *Sub[string] {
	return &Sub[string]{Client: "c" + sid, SID: sid, Subject: subject, Queue: queue}
}

// summary renders a result with sorted SIDs, for example
// "plain=[1 2] q1=[3] q2=[4 5]", so results compare as strings.
func summary(r Result[string]) string {
	var b strings.Builder
	fmt.Fprintf(&b, "plain=%v", sids(r.Plain))
	groups := slices.Clone(r.Groups)
	slices.SortFunc(groups, func(x, y Group[string]) int { return strings.Compare(x.Queue, y.Queue) })
	for _, g := range groups {
		fmt.Fprintf(&b, " %s=%v", g.Queue, sids(g.Members))
	}
	return b.String()
}

func sids(subs []*Sub[string]) []string {
	out := make([]string, len(subs))
	for i, s := range subs {
		out[i] = s.SID
	}
	slices.Sort(out)
	return out
}

// bruteForce is the result Index.Match must give, computed by testing
// every subscription with refMatch.
func bruteForce(subs []*Sub[string], subject string) Result[string] {
	var r Result[string]
	for _, s := range subs {
		if !refMatch(s.Subject, subject) {
			continue
		}
		if s.Queue == "" {
			r.Plain = append(r.Plain, s)
			continue
		}
		g := r.group(s.Queue)
		g.Members = append(g.Members, s)
	}
	return r
}

// refMatch is a deliberately plain matcher, independent of Match, written
// from the rules in the package doc.
func refMatch(filter, subject string) bool {
	if !refValid(filter) {
		return false
	}
	f, s := strings.Split(filter, "."), strings.Split(subject, ".")
	if slices.Contains(s, "") {
		return false
	}
	for i, ft := range f {
		if ft == ">" {
			return len(s) > i
		}
		if i >= len(s) || ft != "*" && ft != s[i] {
			return false
		}
	}
	return len(f) == len(s)
}

// refValid is nats-server's IsValidSubject written the obvious way.
func refValid(subject string) bool {
	if subject == "" || strings.ContainsAny(subject, " \t\n\r\f") {
		return false
	}
	toks := strings.Split(subject, ".")
	for i, t := range toks {
		if t == "" || t == ">" && i != len(toks)-1 {
			return false
		}
	}
	return true
}

func refLiteral(subject string) bool {
	for _, t := range strings.Split(subject, ".") {
		if t == "*" || t == ">" {
			return false
		}
	}
	return true
}
