package auth

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"sync"

	"golang.org/x/crypto/bcrypt"
)

// bcryptHashLen is the length of every bcrypt hash of the "$2?$cc$" form:
// 7 characters of prefix, 22 of salt, 31 of hash.
const bcryptHashLen = 60

// compareHash is bcrypt's check; tests replace it to count calls.
var compareHash = bcrypt.CompareHashAndPassword

// isBcrypt reports whether a configured secret is a bcrypt hash, by
// nats-server's rule (auth.go: validBcryptPrefix, `^\$2[abxy]\$\d{2}\$`).
func isBcrypt(s string) bool {
	return len(s) >= 7 && s[0] == '$' && s[1] == '2' &&
		(s[2] == 'a' || s[2] == 'b' || s[2] == 'x' || s[2] == 'y') &&
		s[3] == '$' && isDigit(s[4]) && isDigit(s[5]) && s[6] == '$'
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// secret is a configured token or password.
type secret struct {
	plain  [sha256.Size]byte // digest of a plain secret
	bcrypt *bcryptSecret     // nil for a plain secret
}

func newSecret(s string, key []byte) *secret {
	if isBcrypt(s) {
		return &secret{bcrypt: &bcryptSecret{hash: []byte(s), key: key, inflight: map[[sha256.Size]byte]*attempt{}}}
	}
	return &secret{plain: sha256.Sum256([]byte(s))}
}

// check reports whether input is the secret. A plain secret is compared as
// SHA-256 digests in constant time, so neither its bytes nor its length
// leak through timing.
func (s *secret) check(input string) bool {
	if s.bcrypt != nil {
		return s.bcrypt.check(input)
	}
	d := sha256.Sum256([]byte(input))
	return subtle.ConstantTimeCompare(s.plain[:], d[:]) == 1
}

// bcryptSecret checks input against a bcrypt hash and remembers the last
// input that passed.
//
// Why: one bcrypt check costs 50-100 ms of a Raspberry Pi core at cost
// 10-11, and every reconnect of every client would pay it again. So the
// first success is remembered as HMAC-SHA256(key, input), key being random
// per Authenticator, and an input with the same digest later passes without
// bcrypt. Only successes are remembered: a wrong password always costs a
// full bcrypt check, which keeps guessing slow. Concurrent checks of the
// same input (a storm of clients reconnecting with one user) share a single
// bcrypt run.
//
// The price: while the process runs, its memory holds a fast digest of each
// verified password instead of only the slow bcrypt hash. Whoever can read
// that memory also holds the HMAC key, and can read passwords from CONNECTs
// in flight anyway, so the leaf accepts it. Nothing is written to disk and a
// new Authenticator starts empty.
type bcryptSecret struct {
	hash []byte
	key  []byte

	mu       sync.Mutex
	verified [sha256.Size]byte
	ok       bool // verified holds the digest of an accepted input
	inflight map[[sha256.Size]byte]*attempt
}

// attempt is one running bcrypt check that others with the same input
// wait for.
type attempt struct {
	done    chan struct{}
	ok      bool // set before done is closed
	waiters int  // guarded by bcryptSecret.mu; lets tests see the sharing
}

func (b *bcryptSecret) check(input string) bool {
	mac := hmac.New(sha256.New, b.key)
	mac.Write([]byte(input))
	var d [sha256.Size]byte
	mac.Sum(d[:0])

	b.mu.Lock()
	if b.ok && subtle.ConstantTimeCompare(b.verified[:], d[:]) == 1 {
		b.mu.Unlock()
		return true
	}
	if a, running := b.inflight[d]; running {
		a.waiters++
		b.mu.Unlock()
		<-a.done
		return a.ok
	}
	a := &attempt{done: make(chan struct{})}
	b.inflight[d] = a
	b.mu.Unlock()

	a.ok = compareHash(b.hash, []byte(input)) == nil

	b.mu.Lock()
	delete(b.inflight, d)
	if a.ok {
		b.verified, b.ok = d, true
	}
	b.mu.Unlock()
	close(a.done)
	return a.ok
}
