package fleet

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
)

func TestValidName(t *testing.T) {
	for _, s := range []string{"a", "acme", "ACME_2", "pi-001", "_x", strings.Repeat("a", 64)} {
		if !ValidName(s) {
			t.Errorf("ValidName(%q) = false", s)
		}
	}
	for _, s := range []string{"", "-a", "a.b", "a b", "a*", "a>", "a/b", "..", ".x", "é", "a\n", strings.Repeat("a", 65)} {
		if ValidName(s) {
			t.Errorf("ValidName(%q) = true", s)
		}
	}
}

func TestAddTenant(t *testing.T) {
	k, _ := newKeys(t)
	lim := Limits{JetStreamMemory: 1 << 20, JetStreamStorage: -1, Streams: 7, Consumers: 50, Connections: 20, LeafNodes: 0}
	before := time.Now().Truncate(time.Second)
	tn, token, err := k.AddTenant("beta", lim)
	if err != nil {
		t.Fatal(err)
	}
	ac := decodeAccount(t, token)
	js := ac.Limits.JetStreamLimits
	switch {
	case ac.Name != "beta" || ac.Subject != tn.Account:
		t.Errorf("account %s %q, want %s %q", ac.Subject, ac.Name, tn.Account, "beta")
	case js.MemoryStorage != 1<<20 || js.DiskStorage != -1 || js.Streams != 7 || js.Consumer != 50:
		t.Errorf("JetStream limits %+v", js)
	case ac.Limits.Conn != 20 || ac.Limits.LeafNodeConn != 0:
		t.Errorf("connection limits %d, %d", ac.Limits.Conn, ac.Limits.LeafNodeConn)
	case !ac.Tags.Contains("canopy-tenant"):
		t.Errorf("tags %v", ac.Tags)
	}
	addTenant(t, k, "alpha")

	for _, tc := range []struct {
		name string
		lim  Limits
		want string
	}{
		{"beta", DefaultLimits(), `tenant "beta" already exists`},
		{"BETA", DefaultLimits(), "only in case"},
		{"SYS", DefaultLimits(), "reserved"},
		{"sys", DefaultLimits(), "reserved"},
		{"", DefaultLimits(), "not valid"},
		{"a.b", DefaultLimits(), "not valid"},
		{"-x", DefaultLimits(), "not valid"},
		{"../x", DefaultLimits(), "not valid"},
		{strings.Repeat("x", 65), DefaultLimits(), "not valid"},
		{"gamma", Limits{}, "Connections is 0"},
		{"gamma", Limits{Connections: -1}, "turns off JetStream"},
		{"gamma", Limits{JetStreamMemory: -2, JetStreamStorage: -1, Connections: -1, Streams: -5}, "Streams is -5"},
	} {
		_, _, err := k.AddTenant(tc.name, tc.lim)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("AddTenant(%q, %+v): %v, want %q", tc.name, tc.lim, err, tc.want)
		}
	}

	tenants, err := k.Tenants()
	if err != nil {
		t.Fatal(err)
	}
	if len(tenants) != 2 || tenants[0].Name != "alpha" || tenants[1].Name != "beta" {
		t.Fatalf("Tenants: %+v", tenants)
	}
	got := tenants[1]
	fw, err := k.FirmwareSigner("beta")
	if err != nil {
		t.Fatal(err)
	}
	fwPub, _ := fw.PublicKey()
	fw.Wipe()
	switch {
	case got.Account != tn.Account || got.Limits != lim || got.FirmwareKey != tn.FirmwareKey || got.FirmwareKey != fwPub:
		t.Errorf("Tenants()[1] = %+v, AddTenant gave %+v (firmware %s)", got, tn, fwPub)
	case got.Created.Before(before) || got.Created.After(time.Now()) || !got.Created.Equal(tn.Created):
		t.Errorf("created %v, AddTenant said %v", got.Created, tn.Created)
	case got.FirmwareKey == "" || got.FirmwareKey == got.Account:
		t.Errorf("firmware key %q", got.FirmwareKey)
	}
	if one, err := k.Tenant("beta"); err != nil || one != got {
		t.Errorf("Tenant(beta) = %+v, %v", one, err)
	}
	for _, name := range []string{"nope", "SYS"} {
		if _, err := k.Tenant(name); !errors.Is(err, ErrNoTenant) || !strings.Contains(err.Error(), name) {
			t.Errorf("Tenant(%q): %v, want ErrNoTenant naming it", name, err)
		}
	}
	if _, err := k.FirmwareSigner("nope"); !errors.Is(err, ErrNoTenant) {
		t.Errorf("FirmwareSigner(nope): %v", err)
	}
}

func TestRemoveTenant(t *testing.T) {
	k, _ := newKeys(t)
	acme, first := addTenant(t, k, "acme")
	addTenant(t, k, "other")
	if _, err := k.AddDevice("acme", "pi-001"); err != nil {
		t.Fatal(err)
	}
	devices, err := k.Devices("acme")
	if err != nil {
		t.Fatal(err)
	}
	pub, tombstone, err := k.RemoveTenant("acme")
	if err != nil {
		t.Fatal(err)
	}
	if pub != acme.Account {
		t.Errorf("RemoveTenant gave %s, want %s", pub, acme.Account)
	}
	ac := decodeAccount(t, tombstone)
	validClaims(t, ac)
	user := jwt.NewUserClaims(devices[0].User)
	user.IssuedAt = devices[0].Issued.Unix()
	switch {
	case ac.Subject != acme.Account:
		t.Errorf("tombstone for %s", ac.Subject)
	case ac.Revocations[jwt.All] == 0:
		t.Errorf("revocations %v lack %q", ac.Revocations, jwt.All)
	case !ac.IsClaimRevoked(user):
		t.Error("the device's JWT is not revoked")
	case ac.Limits.Conn != 0 || ac.Limits.LeafNodeConn != 0:
		t.Errorf("connections %d, leaf nodes %d", ac.Limits.Conn, ac.Limits.LeafNodeConn)
	case ac.Limits.IsJSEnabled():
		t.Errorf("JetStream still on: %+v", ac.Limits.JetStreamLimits)
	case ac.IssuedAt <= decodeAccount(t, first).IssuedAt:
		t.Errorf("tombstone issued at %d, not after the account (%d)", ac.IssuedAt, decodeAccount(t, first).IssuedAt)
	case ac.Issuer != pubOf(t, filepath.Join(k.Dir(), "operator-signing.nk")):
		t.Error("tombstone not signed by the operator signing key")
	}

	tenants, err := k.Tenants()
	if err != nil || len(tenants) != 1 || tenants[0].Name != "other" {
		t.Errorf("Tenants after removal: %+v, %v", tenants, err)
	}
	if _, err := k.Tenant("acme"); !errors.Is(err, ErrNoTenant) {
		t.Errorf("Tenant(acme) after removal: %v", err)
	}
	accounts, _ := k.AccountJWTs()
	if _, ok := accounts[acme.Account]; ok || len(accounts) != 2 {
		t.Errorf("AccountJWTs after removal: %d accounts", len(accounts))
	}
	// Kept, with its tombstone.
	removed, err := filepath.Glob(filepath.Join(k.Dir(), "removed", "acme-*"))
	if err != nil || len(removed) != 1 {
		t.Fatalf("removed/: %v %v", removed, err)
	}
	if readString(t, filepath.Join(removed[0], "account.jwt")) != tombstone {
		t.Error("the removed directory does not hold the tombstone")
	}
	if _, err := os.Stat(filepath.Join(removed[0], "devices", "pi-001.jwt")); err != nil {
		t.Error(err)
	}
	if _, _, err := k.RemoveTenant("acme"); !errors.Is(err, ErrNoTenant) {
		t.Errorf("second RemoveTenant: %v", err)
	}
	// The name is free again; a second removal in the same second is kept too.
	addTenant(t, k, "acme")
	if _, _, err := k.RemoveTenant("acme"); err != nil {
		t.Fatal(err)
	}
	if removed, _ := filepath.Glob(filepath.Join(k.Dir(), "removed", "acme-*")); len(removed) != 2 {
		t.Errorf("removed/: %v", removed)
	}
}

func TestAdminCreds(t *testing.T) {
	k, _ := newKeys(t)
	acme, _ := addTenant(t, k, "acme")
	creds, err := k.AdminCreds("acme", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	uc := userOf(t, creds)
	validClaims(t, uc)
	ac := decodeAccount(t, readString(t, filepath.Join(k.Dir(), "accounts/acme/account.jwt")))
	left := time.Until(time.Unix(uc.Expires, 0))
	switch {
	case uc.Name != "canopy-admin" || uc.IssuerAccount != acme.Account || !ac.DidSign(uc):
		t.Errorf("admin: %q of %s issued by %s", uc.Name, uc.IssuerAccount, uc.Issuer)
	case left < 59*time.Minute || left > time.Hour+time.Second:
		t.Errorf("expires in %s, want an hour", left)
	case len(uc.Pub.Allow)+len(uc.Sub.Allow)+len(uc.Pub.Deny)+len(uc.Sub.Deny) != 0:
		t.Errorf("permissions %+v, want all", uc.Permissions)
	}
	for _, ttl := range []time.Duration{0, time.Millisecond, -time.Hour, 25 * time.Hour} {
		if _, err := k.AdminCreds("acme", ttl); err == nil {
			t.Errorf("AdminCreds with ttl %s succeeded", ttl)
		}
	}
	if _, err := k.AdminCreds("nope", time.Hour); !errors.Is(err, ErrNoTenant) {
		t.Errorf("AdminCreds(nope): %v", err)
	}
	if _, err := k.AdminCreds("SYS", time.Hour); !errors.Is(err, ErrNoTenant) {
		t.Errorf("AdminCreds(SYS): %v", err)
	}
}
