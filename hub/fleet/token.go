package fleet

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nats-io/nkeys"
)

// An enrollment token lets one device enroll once, before it expires:
//
//	CNT1.<payload>.<signature>
//
// payload is base64url (no padding) of {"id","t","d","exp"}: 16 random
// bytes in hex, tenant, device and expiry in unix seconds. signature is
// base64url of the Ed25519 signature by enroll.nk over "CNT1.<payload>".

// Errors of RedeemToken; each refusal wraps exactly one of them.
var (
	ErrTokenInvalid = errors.New("enrollment token is not valid")
	ErrTokenExpired = errors.New("enrollment token expired")
	ErrTokenUsed    = errors.New("enrollment token was already used")
)

// TokenClaims is what a valid enrollment token grants.
type TokenClaims struct {
	ID      string // 32 hex digits; in the provisioning log, not a secret
	Tenant  string
	Device  string
	Expires time.Time
}

// Token lifetimes IssueToken accepts.
const (
	minTokenTTL = time.Second
	maxTokenTTL = 30 * 24 * time.Hour
)

// maxTokenLen is far above the longest token (about 360 characters).
const maxTokenLen = 1024

var b64 = base64.RawURLEncoding.Strict()

type tokenPayload struct {
	ID     string `json:"id"`
	Tenant string `json:"t"`
	Device string `json:"d"`
	Exp    int64  `json:"exp"`
}

// IssueToken signs a one-time token with which device may enroll into the
// existing tenant within ttl (1s to 30 days).
func (k *Keys) IssueToken(tenant, device string, ttl time.Duration) (string, error) {
	if err := checkDeviceName(device); err != nil {
		return "", err
	}
	if ttl < minTokenTTL || ttl > maxTokenTTL {
		return "", fmt.Errorf("enrollment token: lifetime %s is out of range: want 1s to 720h (30 days)", ttl)
	}
	if _, err := k.tenantDir(tenant); err != nil {
		return "", err
	}
	var id [16]byte
	if _, err := io.ReadFull(rand.Reader, id[:]); err != nil {
		return "", err
	}
	exp := time.Now().Add(ttl)
	p := tokenPayload{ID: hex.EncodeToString(id[:]), Tenant: tenant, Device: device, Exp: exp.Unix()}
	if exp.Nanosecond() > 0 {
		p.Exp++ // never shorter than asked
	}
	payload, err := json.Marshal(p)
	if err != nil {
		return "", err
	}
	signed := tokenPrefix + "." + b64.EncodeToString(payload)
	kp, err := readSeed(filepath.Join(k.dir, enrollSeedFile))
	if err != nil {
		return "", err
	}
	defer kp.Wipe()
	sig, err := kp.Sign([]byte(signed))
	if err != nil {
		return "", err
	}
	k.provisioned("token.issue", tenant, device, "token_id", p.ID,
		"expires", time.Unix(p.Exp, 0).UTC().Format(time.RFC3339))
	return signed + "." + b64.EncodeToString(sig), nil
}

// RedeemToken checks an enrollment token and spends it: its format and
// signature first, then its expiry against now (time.Now() if zero), then
// whether it was used; only a token passing all three is marked used, and
// only once even under concurrent calls in several processes. It refuses a
// token of a tenant removed since (ErrTokenInvalid and ErrNoTenant).
func (k *Keys) RedeemToken(token string, now time.Time) (TokenClaims, error) {
	if now.IsZero() {
		now = time.Now()
	}
	c, err := parseToken(token, k.enrollPub)
	if err != nil {
		return TokenClaims{}, err
	}
	if !now.Before(c.Expires) {
		return TokenClaims{}, fmt.Errorf("%w at %s", ErrTokenExpired, c.Expires.UTC().Format(time.RFC3339))
	}
	used := filepath.Join(usedTokensPath(k.dir), c.ID)
	if ok, err := exists(used); err != nil {
		return TokenClaims{}, err
	} else if ok {
		return TokenClaims{}, usedError(used)
	}
	if _, err := k.tenantDir(c.Tenant); errors.Is(err, ErrNoTenant) {
		return TokenClaims{}, fmt.Errorf("%w: tenant %q was removed after the token was issued: %w", ErrTokenInvalid, c.Tenant, ErrNoTenant)
	} else if err != nil {
		return TokenClaims{}, err
	}
	if err := markUsed(used, now); errors.Is(err, fs.ErrExist) {
		return TokenClaims{}, usedError(used)
	} else if err != nil {
		return TokenClaims{}, fmt.Errorf("enrollment token: %w", err)
	}
	k.provisioned("token.redeem", c.Tenant, c.Device, "token_id", c.ID)
	return c, nil
}

// markUsed creates the used mark exclusively and records the time in it.
func markUsed(path string, now time.Time) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, fileMode)
	if err != nil {
		return err
	}
	_, err = f.WriteString(now.UTC().Format(time.RFC3339) + "\n")
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err // the mark stands: a token is spent even if its time is lost
	}
	return syncDir(filepath.Dir(path))
}

// usedError says when the token was used: the time in its mark, or the
// mark's modification time while a concurrent redemption is writing it.
func usedError(path string) error {
	at := "an unknown time"
	if b, err := os.ReadFile(path); err == nil {
		if t, err := time.Parse(time.RFC3339, strings.TrimSpace(string(b))); err == nil {
			at = t.UTC().Format(time.RFC3339)
		} else if fi, err := os.Stat(path); err == nil {
			at = fi.ModTime().UTC().Format(time.RFC3339)
		}
	}
	return fmt.Errorf("%w at %s", ErrTokenUsed, at)
}

// parseToken checks a token's format and signature with the enrollment
// public key, and its payload's fields. It never panics, whatever the bytes.
func parseToken(token string, verifier nkeys.KeyPair) (TokenClaims, error) {
	invalid := func(format string, args ...any) (TokenClaims, error) {
		return TokenClaims{}, fmt.Errorf("%w: %s (altered, truncated, or issued by another hub)", ErrTokenInvalid, fmt.Sprintf(format, args...))
	}
	token = strings.TrimSpace(token) // pasted with a newline
	switch {
	case token == "":
		return invalid("it is empty")
	case len(token) > maxTokenLen:
		return invalid("it is %d characters long, at most %d expected", len(token), maxTokenLen)
	}
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return invalid("it has %d parts separated by dots, want 3", len(parts))
	}
	if parts[0] != tokenPrefix {
		return invalid("it does not start with %q", tokenPrefix+".")
	}
	payload, err := b64.DecodeString(parts[1])
	if err != nil {
		return invalid("its payload is not base64url")
	}
	sig, err := b64.DecodeString(parts[2])
	if err != nil {
		return invalid("its signature is not base64url")
	}
	if len(sig) != ed25519.SignatureSize {
		return invalid("its signature has %d bytes, want %d", len(sig), ed25519.SignatureSize)
	}
	if err := verifier.Verify([]byte(parts[0]+"."+parts[1]), sig); err != nil {
		return invalid("its signature does not match this hub's enrollment key")
	}
	// Signed by us, so well-formed unless our own issuer was wrong; checked anyway.
	var p tokenPayload
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return invalid("its payload is not the expected JSON object")
	}
	if _, err := dec.Token(); err != io.EOF {
		return invalid("its payload has data after the JSON object")
	}
	if len(p.ID) != 32 || strings.ToLower(p.ID) != p.ID {
		return invalid("its id is not 32 hex digits")
	}
	if _, err := hex.DecodeString(p.ID); err != nil {
		return invalid("its id is not 32 hex digits")
	}
	if !ValidName(p.Tenant) {
		return invalid("its tenant name is not valid")
	}
	if !ValidName(p.Device) {
		return invalid("its device name is not valid")
	}
	if p.Exp <= 0 {
		return invalid("it has no expiry")
	}
	return TokenClaims{ID: p.ID, Tenant: p.Tenant, Device: p.Device, Expires: time.Unix(p.Exp, 0)}, nil
}
