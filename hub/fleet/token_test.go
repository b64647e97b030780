package fleet

import (
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// oneOf reports which of the token errors err wraps, failing unless exactly one.
func oneOf(t testing.TB, err error) error {
	t.Helper()
	var found []error
	for _, s := range []error{ErrTokenInvalid, ErrTokenExpired, ErrTokenUsed} {
		if errors.Is(err, s) {
			found = append(found, s)
		}
	}
	if len(found) != 1 {
		t.Fatalf("error %v wraps %d of the token errors, want 1", err, len(found))
	}
	return found[0]
}

func TestToken(t *testing.T) {
	k, _ := newKeys(t)
	addTenant(t, k, "acme")
	token, err := k.IssueToken("acme", "pi-042", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(token, "CNT1.") || strings.Count(token, ".") != 2 || len(token) > maxTokenLen {
		t.Fatalf("token %q", token)
	}
	first := time.Now().Add(time.Minute).Truncate(time.Second)
	c, err := k.RedeemToken(token+"\n", first) // as pasted
	if err != nil {
		t.Fatal(err)
	}
	left := time.Until(c.Expires)
	if c.Tenant != "acme" || c.Device != "pi-042" || len(c.ID) != 32 || left < 59*time.Minute || left > time.Hour+time.Second {
		t.Errorf("claims %+v", c)
	}
	if readString(t, filepath.Join(k.Dir(), "tokens", "used", c.ID)) != first.UTC().Format(time.RFC3339)+"\n" {
		t.Error("the used mark does not hold the time of use")
	}

	_, err = k.RedeemToken(token, first.Add(time.Minute))
	if oneOf(t, err) != ErrTokenUsed || err.Error() != "enrollment token was already used at "+first.UTC().Format(time.RFC3339) {
		t.Errorf("second redemption: %v", err)
	}
	// A used token that has expired since says it expired.
	if _, err := k.RedeemToken(token, first.Add(2*time.Hour)); oneOf(t, err) != ErrTokenExpired {
		t.Errorf("used and expired: %v", err)
	}
}

func TestTokenExpired(t *testing.T) {
	k, _ := newKeys(t)
	addTenant(t, k, "acme")
	token, err := k.IssueToken("acme", "pi-1", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	c, err := parseToken(token, k.enrollPub)
	if err != nil {
		t.Fatal(err)
	}
	for _, now := range []time.Time{c.Expires, c.Expires.Add(time.Hour)} {
		_, err := k.RedeemToken(token, now)
		if oneOf(t, err) != ErrTokenExpired || err.Error() != "enrollment token expired at "+c.Expires.UTC().Format(time.RFC3339) {
			t.Errorf("at %v: %v", now, err)
		}
	}
	// Not spent by failed attempts.
	if _, err := k.RedeemToken(token, c.Expires.Add(-time.Second)); err != nil {
		t.Errorf("just before expiry: %v", err)
	}
}

func TestTokenInvalid(t *testing.T) {
	k, _ := newKeys(t)
	other, _ := newKeys(t)
	addTenant(t, k, "acme")
	addTenant(t, other, "acme")
	token, err := k.IssueToken("acme", "pi-1", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	foreign, err := other.IssueToken("acme", "pi-1", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(token, ".")
	flip := func(s string, i int) string {
		c := byte('A')
		if s[i] == 'A' {
			c = 'B'
		}
		return s[:i] + string(c) + s[i+1:]
	}
	cases := map[string]string{
		"empty":                 "",
		"garbage":               "hello",
		"payload char":          parts[0] + "." + flip(parts[1], len(parts[1])/2) + "." + parts[2],
		"payload last char":     parts[0] + "." + flip(parts[1], len(parts[1])-1) + "." + parts[2],
		"signature char":        parts[0] + "." + parts[1] + "." + flip(parts[2], 3),
		"signature last char":   parts[0] + "." + parts[1] + "." + flip(parts[2], len(parts[2])-1),
		"truncated":             token[:len(token)-5],
		"no signature":          parts[0] + "." + parts[1],
		"empty signature":       parts[0] + "." + parts[1] + ".",
		"other prefix":          "CNT2." + parts[1] + "." + parts[2],
		"extra part":            token + ".x",
		"other hub":             foreign,
		"other hub's signature": parts[0] + "." + parts[1] + "." + strings.Split(foreign, ".")[2],
		"padded":                parts[0] + "." + parts[1] + "==." + parts[2],
		"too long":              token + strings.Repeat("A", maxTokenLen),
	}
	for name, bad := range cases {
		_, err := k.RedeemToken(bad, time.Now())
		if oneOf(t, err) != ErrTokenInvalid || !strings.HasPrefix(err.Error(), "enrollment token is not valid: ") ||
			!strings.HasSuffix(err.Error(), " (altered, truncated, or issued by another hub)") {
			t.Errorf("%s: %v", name, err)
		}
	}
	// None of it spent the token.
	if _, err := k.RedeemToken(token, time.Now()); err != nil {
		t.Errorf("the genuine token after the fakes: %v", err)
	}
}

func TestTokenConcurrentRedemption(t *testing.T) {
	k, _ := newKeys(t)
	addTenant(t, k, "acme")
	token, err := k.IssueToken("acme", "pi-1", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	// Two handles on the directory, as two processes would have.
	k2, err := Open(k.Dir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	const n = 50
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			kk := k
			if i%2 == 1 {
				kk = k2
			}
			_, errs[i] = kk.RedeemToken(token, time.Now())
		})
	}
	wg.Wait()
	ok := 0
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case oneOf(t, err) != ErrTokenUsed || strings.Contains(err.Error(), "unknown time"):
			t.Errorf("concurrent redemption: %v", err)
		}
	}
	if ok != 1 {
		t.Errorf("%d of %d concurrent redemptions succeeded, want 1", ok, n)
	}
}

func TestIssueTokenRefuses(t *testing.T) {
	k, _ := newKeys(t)
	addTenant(t, k, "acme")
	for _, tc := range []struct {
		tenant, device string
		ttl            time.Duration
		want           string
	}{
		{"acme", "pi", 0, "out of range"},
		{"acme", "pi", 999 * time.Millisecond, "out of range"},
		{"acme", "pi", 31 * 24 * time.Hour, "out of range"},
		{"acme", "pi.1", time.Hour, "device name"},
		{"acme", "", time.Hour, "device name"},
		{"nope", "pi", time.Hour, "no such tenant"},
		{"SYS", "pi", time.Hour, "no such tenant"},
		{"a b", "pi", time.Hour, "tenant name"},
	} {
		if _, err := k.IssueToken(tc.tenant, tc.device, tc.ttl); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("IssueToken(%q, %q, %s): %v, want %q", tc.tenant, tc.device, tc.ttl, err, tc.want)
		}
	}
	for _, ttl := range []time.Duration{time.Second, 30 * 24 * time.Hour} {
		if _, err := k.IssueToken("acme", "pi", ttl); err != nil {
			t.Errorf("ttl %s: %v", ttl, err)
		}
	}
}

func TestTokenOfRemovedTenant(t *testing.T) {
	k, _ := newKeys(t)
	addTenant(t, k, "acme")
	token, err := k.IssueToken("acme", "pi-1", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := k.RemoveTenant("acme"); err != nil {
		t.Fatal(err)
	}
	_, err = k.RedeemToken(token, time.Now())
	if oneOf(t, err) != ErrTokenInvalid || !errors.Is(err, ErrNoTenant) || !strings.Contains(err.Error(), `tenant "acme" was removed`) {
		t.Errorf("token of a removed tenant: %v", err)
	}
}

// FuzzRedeemToken feeds arbitrary strings to RedeemToken: it must never
// panic, must refuse with exactly one of its errors, and must accept only
// what this directory signed.
func FuzzRedeemToken(f *testing.F) {
	k, _ := newKeys(f)
	if _, _, err := k.AddTenant("acme", DefaultLimits()); err != nil {
		f.Fatal(err)
	}
	token, err := k.IssueToken("acme", "pi-1", time.Hour)
	if err != nil {
		f.Fatal(err)
	}
	parts := strings.Split(token, ".")
	for _, s := range []string{
		token,
		token[:len(token)/2],
		"",
		".",
		"..",
		"CNT1..",
		"CNT1.e30.",
		"CNT1." + parts[1] + ".",
		"CNT1." + parts[1] + "." + parts[1],
		"CNT1.eyJpZCI6MX0." + parts[2],
		"\x00\xff." + parts[2],
		strings.Repeat(".", 100),
	} {
		f.Add(s)
	}
	now := time.Now()
	f.Fuzz(func(t *testing.T, s string) {
		c, err := k.RedeemToken(s, now)
		if err != nil {
			oneOf(t, err)
			return
		}
		if strings.TrimSpace(s) != token || c.Tenant != "acme" || c.Device != "pi-1" {
			t.Fatalf("accepted %q as %+v", s, c)
		}
	})
}
