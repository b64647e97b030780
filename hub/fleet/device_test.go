package fleet

import (
	"errors"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nkeys"
)

func newUserPub(t testing.TB) string {
	t.Helper()
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := kp.PublicKey()
	return pub
}

// The list as the leaf's defaults and docs expect it; a change here is a
// change of the compatibility surface.
func TestDevicePermissions(t *testing.T) {
	p := DevicePermissions("D")
	wantPub := []string{
		"telemetry.D.>",
		"$JS.canopy.API.DIRECT.GET.TELEMETRY.telemetry.D.>",
		"$JS.API.DIRECT.GET.TELEMETRY.telemetry.D.>",
		"$JS.canopy.API.CONSUMER.CREATE.COMMANDS.D.cmd.D.>",
		"$JS.API.CONSUMER.CREATE.COMMANDS.D.cmd.D.>",
		"$JS.canopy.API.CONSUMER.INFO.COMMANDS.D",
		"$JS.API.CONSUMER.INFO.COMMANDS.D",
		"$JS.canopy.API.CONSUMER.MSG.NEXT.COMMANDS.D",
		"$JS.API.CONSUMER.MSG.NEXT.COMMANDS.D",
		"$JS.ACK.COMMANDS.D.>",
		"$JS.canopy.API.DIRECT.GET.OBJ_firmware",
		"$JS.API.DIRECT.GET.OBJ_firmware",
		"$JS.canopy.API.DIRECT.GET.KV_fw-desired.$KV.fw-desired.D",
		"$JS.API.DIRECT.GET.KV_fw-desired.$KV.fw-desired.D",
		"$JS.canopy.API.$KV.fw-status.D",
		"$KV.fw-status.D",
		"fw.events.D",
		"$JS.canopy.API.$KV.devices.D",
		"$KV.devices.D",
	}
	wantSub := []string{"_INBOX.D.>", "cmd.D.>"}
	if !slices.Equal(p.Pub.Allow, wantPub) || !slices.Equal(p.Sub.Allow, wantSub) {
		t.Errorf("DevicePermissions(D):\npub %q\nsub %q", p.Pub.Allow, p.Sub.Allow)
	}
	if len(p.Pub.Deny)+len(p.Sub.Deny) != 0 || p.Resp != nil {
		t.Errorf("unexpected deny or response permissions: %+v", p)
	}
}

func TestAddDevice(t *testing.T) {
	k, _ := newKeys(t)
	acme, _ := addTenant(t, k, "acme")
	creds, err := k.AddDevice("acme", "pi-001")
	if err != nil {
		t.Fatal(err)
	}
	uc := userOf(t, creds)
	validClaims(t, uc)
	ac := decodeAccount(t, readString(t, filepath.Join(k.Dir(), "accounts/acme/account.jwt")))
	signing := pubOf(t, filepath.Join(k.Dir(), "accounts/acme/signing.nk"))
	seed, _ := jwt.ParseDecoratedUserNKey(creds)
	seedPub, _ := seed.PublicKey()
	switch {
	case uc.Subject != seedPub:
		t.Error("the credentials' JWT is not for their seed")
	case uc.Name != "pi-001" || uc.Expires != 0:
		t.Errorf("name %q, expires %d", uc.Name, uc.Expires)
	case uc.Issuer != signing || uc.IssuerAccount != acme.Account || !ac.DidSign(uc):
		t.Errorf("issued by %s for %s, want %s for %s", uc.Issuer, uc.IssuerAccount, signing, acme.Account)
	case !reflect.DeepEqual(uc.Permissions, DevicePermissions("pi-001")):
		t.Errorf("permissions %+v", uc.Permissions)
	case !uc.Tags.Contains("tenant:acme"):
		t.Errorf("tags %v", uc.Tags)
	case uc.BearerToken:
		t.Error("a bearer token")
	}
	stored, _ := jwt.ParseDecoratedJWT(creds)
	if readString(t, filepath.Join(k.Dir(), "accounts/acme/devices/pi-001.jwt")) != stored {
		t.Error("devices/pi-001.jwt is not the issued JWT")
	}
	if tn, _ := k.Tenant("acme"); tn.Devices != 1 {
		t.Errorf("Tenant.Devices = %d", tn.Devices)
	}

	for _, tc := range []struct{ tenant, device string }{
		{"acme", ""}, {"acme", "a.b"}, {"acme", "-a"}, {"acme", "a/b"}, {"nope", "pi"}, {"SYS", "pi"}, {"../x", "pi"},
	} {
		if _, err := k.AddDevice(tc.tenant, tc.device); err == nil {
			t.Errorf("AddDevice(%q, %q) succeeded", tc.tenant, tc.device)
		}
	}
	if _, err := k.AddDevice("nope", "pi"); !errors.Is(err, ErrNoTenant) {
		t.Errorf("AddDevice(nope): %v", err)
	}
}

func TestIssueDevice(t *testing.T) {
	k, _ := newKeys(t)
	acme, _ := addTenant(t, k, "acme")
	pub := newUserPub(t)
	token, err := k.IssueDevice("acme", "pi-007", pub)
	if err != nil {
		t.Fatal(err)
	}
	uc, err := jwt.DecodeUserClaims(token)
	if err != nil {
		t.Fatal(err)
	}
	if uc.Subject != pub || uc.IssuerAccount != acme.Account || !reflect.DeepEqual(uc.Permissions, DevicePermissions("pi-007")) {
		t.Errorf("user JWT %+v", uc)
	}

	account, _ := nkeys.CreateAccount()
	accountPub, _ := account.PublicKey()
	userSeed, _ := nkeys.CreateUser()
	seed, _ := userSeed.Seed()
	for _, bad := range []string{"", "garbage", accountPub, string(seed), pub[:55], pub + "A", strings.ToLower(pub), pub[:55] + "?", "U" + accountPub[1:]} {
		_, err := k.IssueDevice("acme", "pi-008", bad)
		if err == nil || !strings.Contains(err.Error(), "not a user public key") {
			t.Errorf("IssueDevice with %q: %v", clip(bad), err)
		}
		if err != nil && len(bad) > 10 && strings.Contains(err.Error(), bad) {
			t.Errorf("the error repeats its input: %v", err)
		}
	}

	// Enrolling again replaces the device's JWT.
	pub2 := newUserPub(t)
	if _, err := k.IssueDevice("acme", "pi-007", pub2); err != nil {
		t.Fatal(err)
	}
	devices, err := k.Devices("acme")
	if err != nil || len(devices) != 1 || devices[0].User != pub2 {
		t.Errorf("Devices: %+v, %v", devices, err)
	}
}

func TestRevokeDevice(t *testing.T) {
	k, _ := newKeys(t)
	addTenant(t, k, "acme")
	for _, d := range []string{"pi-b", "pi-a", "pi-c"} {
		if _, err := k.AddDevice("acme", d); err != nil {
			t.Fatal(err)
		}
	}
	devices, err := k.Devices("acme")
	if err != nil {
		t.Fatal(err)
	}
	if len(devices) != 3 || devices[0].Name != "pi-a" || devices[2].Name != "pi-c" {
		t.Fatalf("Devices: %+v", devices)
	}
	for _, d := range devices {
		if d.Revoked || d.Tenant != "acme" || !nkeys.IsValidPublicUserKey(d.User) || time.Since(d.Issued) > time.Minute {
			t.Errorf("device %+v", d)
		}
	}

	path := filepath.Join(k.Dir(), "accounts/acme/account.jwt")
	for round := range 2 { // revoking again re-signs again
		before := decodeAccount(t, readString(t, path))
		accountJWT, err := k.RevokeDevice("acme", "pi-b")
		if err != nil {
			t.Fatal(err)
		}
		ac := decodeAccount(t, accountJWT)
		validClaims(t, ac)
		if ac.IssuedAt <= before.IssuedAt {
			t.Errorf("round %d: re-signed at %d, not after %d", round, ac.IssuedAt, before.IssuedAt)
		}
		if readString(t, path) != accountJWT {
			t.Errorf("round %d: account.jwt on disk is not the returned JWT", round)
		}
		if ac.Revocations[devices[1].User] == 0 || len(ac.Revocations) != 1 {
			t.Errorf("round %d: revocations %v", round, ac.Revocations)
		}
		if ac.Name != "acme" || !ac.Tags.Contains("canopy-tenant") || ac.Limits.Conn != -1 || !ac.Limits.IsJSEnabled() {
			t.Errorf("round %d: the account lost its settings: %+v", round, ac)
		}
	}
	devices, err = k.Devices("acme")
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range devices {
		if d.Revoked != (d.Name == "pi-b") {
			t.Errorf("%s: revoked %v", d.Name, d.Revoked)
		}
	}
	// A new key for the device is not revoked.
	if _, err := k.AddDevice("acme", "pi-b"); err != nil {
		t.Fatal(err)
	}
	devices, _ = k.Devices("acme")
	if devices[1].Name != "pi-b" || devices[1].Revoked {
		t.Errorf("re-added device: %+v", devices[1])
	}

	if _, err := k.RevokeDevice("acme", "pi-x"); !errors.Is(err, ErrNoDevice) || !strings.Contains(err.Error(), "pi-x") {
		t.Errorf("RevokeDevice(pi-x): %v", err)
	}
	if _, err := k.RevokeDevice("nope", "pi-a"); !errors.Is(err, ErrNoTenant) {
		t.Errorf("RevokeDevice(nope): %v", err)
	}
	if _, err := k.RevokeDevice("acme", "../pi-a"); err == nil {
		t.Error("RevokeDevice with a path succeeded")
	}
	if _, err := k.Devices("nope"); !errors.Is(err, ErrNoTenant) {
		t.Errorf("Devices(nope): %v", err)
	}
}

func TestCheckUserKey(t *testing.T) {
	pub := newUserPub(t)
	if err := CheckUserKey(pub); err != nil {
		t.Errorf("CheckUserKey(%s): %v", pub, err)
	}
	for _, bad := range []string{"", pub + "A", pub[:55], "S" + pub[1:]} {
		if err := CheckUserKey(bad); err == nil {
			t.Errorf("CheckUserKey(%q) accepted it", bad)
		}
	}
}
