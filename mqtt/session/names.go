package session

import (
	"fmt"
	"strconv"
	"strings"
)

// Table keys, the compatibility surface of this package. A table holds:
//
//	r/<topic>                      → retained message (record)
//	s/<n>:<client id>/c            → client record of a persistent session
//	s/<n>:<client id>/s/<filter>   → one of its subscriptions
//	s/<n>:<client id>/i/<packet id> → one of its inflight messages
//
// <n> is the client id's length in bytes, so that one session's prefix is
// never the prefix of another's (client ids may contain '/'); packet ids
// are five decimal digits. Values are records (see record.go).
const (
	prefixRetained = "r/"
	prefixSession  = "s/"
	keyClient      = "c"
	prefixSub      = "s/"
	prefixInflight = "i/"
)

// hookID is the hook's name in mochi's logs.
const hookID = "canopy-session"

func retainedKey(topic string) string { return prefixRetained + topic }

// sessionPrefix is the prefix of every key of client id's session.
func sessionPrefix(id string) string {
	return prefixSession + strconv.Itoa(len(id)) + ":" + id + "/"
}

func clientKey(id string) string { return sessionPrefix(id) + keyClient }

func subKey(id, filter string) string { return sessionPrefix(id) + prefixSub + filter }

func inflightKey(id string, packetID uint16) string {
	return fmt.Sprintf("%s%s%05d", sessionPrefix(id), prefixInflight, packetID)
}

// parseSessionKey splits a key under prefixSession into the client id and
// what follows the session's prefix.
func parseSessionKey(key string) (id, rest string, err error) {
	s, ok := strings.CutPrefix(key, prefixSession)
	lenStr, s, ok2 := strings.Cut(s, ":")
	n, err := strconv.Atoi(lenStr)
	if !ok || !ok2 || err != nil || n < 0 || len(s) < n+1 || s[n] != '/' || lenStr != strconv.Itoa(n) {
		return "", "", fmt.Errorf("malformed session key %q", key)
	}
	return s[:n], s[n+1:], nil
}
