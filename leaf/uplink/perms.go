package uplink

import (
	"bytes"
	"sync"

	"github.com/canopy-iot/canopy/leaf/subject"
)

// filter is an allow/deny pair of subject lists, as the hub's connect-info
// INFO sends them. A nil allow list allows everything.
type filter struct {
	Allow []string `json:"allow"`
	Deny  []string `json:"deny"`
}

// allowsLiteral is the hub's check of a message subject: it matches an
// allow entry (or there is no allow list) and no deny entry.
func (f *filter) allowsLiteral(subj string) bool {
	if f == nil {
		return true
	}
	if f.Allow != nil && !matchesAny(f.Allow, subj) {
		return false
	}
	return !matchesAny(f.Deny, subj)
}

// allowsInterest is nats-server's check of a subscription: a literal
// subject as allowsLiteral; a wildcard passes when it lies within an allow
// entry or covers one (the hub then filters each delivery itself).
func (f *filter) allowsInterest(subj string) bool {
	if f == nil {
		return true
	}
	if !subject.HasWildcard(subj) {
		return f.allowsLiteral(subj)
	}
	if f.Allow == nil {
		return true
	}
	for _, a := range f.Allow {
		if subject.SubsetOf(subj, a) || subject.SubsetOf(a, subj) {
			return true
		}
	}
	return false
}

func matchesAny(filters []string, subj string) bool {
	for _, f := range filters {
		if subject.Match(f, subj) {
			return true
		}
	}
	return false
}

// Subjects the hub lets a leaf send whatever its permissions: replies to
// service imports and JetStream acknowledgements.
var (
	prefixServiceReply = []byte("_R_.")
	prefixJSAck        = []byte("$JS.ACK.")
	prefixGatewayReply = []byte("_GR_.")
)

// gatewayPrefixLen is the length of "_GR_.<cluster hash>.<server hash>.".
const gatewayPrefixLen = len("_GR_.") + 6 + 1 + 6 + 1

// sendFilter decides which local publishes may go to the hub: the
// device's publish permissions (the hub's "export") and the configured up
// list. Decisions are cached by subject: the check runs for every message.
type sendFilter struct {
	export *filter
	up     []string // empty: no limit

	mu    sync.RWMutex
	cache map[string]bool
}

const sendCacheMax = 4096

func newSendFilter(export *filter, up []string) *sendFilter {
	return &sendFilter{export: export, up: up, cache: map[string]bool{}}
}

// allows reports whether subj may be sent upstream.
func (f *sendFilter) allows(subj []byte) bool {
	if bytes.HasPrefix(subj, prefixServiceReply) || bytes.HasPrefix(subj, prefixJSAck) {
		return true
	}
	f.mu.RLock()
	ok, cached := f.cache[string(subj)]
	f.mu.RUnlock()
	if cached {
		return ok
	}
	s := string(subj)
	check := s
	if bytes.HasPrefix(subj, prefixGatewayReply) && len(s) > gatewayPrefixLen {
		// The hub checks a gateway-routed reply by the subject after its
		// routing prefix.
		check = s[gatewayPrefixLen:]
	}
	ok = f.export.allowsLiteral(check) && (len(f.up) == 0 || matchesAny(f.up, check))
	f.mu.Lock()
	if len(f.cache) >= sendCacheMax {
		clear(f.cache)
	}
	f.cache[s] = ok
	f.mu.Unlock()
	return ok
}
