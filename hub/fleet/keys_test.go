package fleet

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
)

func TestInitLayout(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("modes do not apply")
	}
	k, _ := newKeys(t)
	addTenant(t, k, "acme")
	if _, err := k.AddDevice("acme", "pi-001"); err != nil {
		t.Fatal(err)
	}
	tok, err := k.IssueToken("acme", "pi-002", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := k.RedeemToken(tok, time.Now()); err != nil {
		t.Fatal(err)
	}
	want := []string{
		".",
		"operator.nk",
		"operator.jwt",
		"operator-signing.nk",
		"enroll.nk",
		"accounts",
		"accounts/SYS",
		"accounts/SYS/account.nk",
		"accounts/SYS/account.jwt",
		"accounts/SYS/signing.nk",
		"accounts/SYS/admin.creds",
		"accounts/acme",
		"accounts/acme/account.nk",
		"accounts/acme/account.jwt",
		"accounts/acme/signing.nk",
		"accounts/acme/firmware.nk",
		"accounts/acme/devices",
		"accounts/acme/devices/pi-001.jwt",
		"accounts/acme/devices/pi-002.jwt",
		"tokens",
		"tokens/used",
		"removed",
	}
	if _, err := k.IssueDevice("acme", "pi-002", newUserPub(t)); err != nil {
		t.Fatal(err)
	}
	var got []string
	err = filepath.WalkDir(k.Dir(), func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(k.Dir(), path)
		rel = filepath.ToSlash(rel)
		if strings.HasPrefix(rel, "tokens/used/") {
			rel = "tokens/used/<id>"
		}
		got = append(got, rel)
		fi, err := d.Info()
		if err != nil {
			return err
		}
		wantMode := fs.FileMode(0o600)
		if d.IsDir() {
			wantMode = 0o700
		}
		if fi.Mode().Perm() != wantMode {
			t.Errorf("%s: mode %04o, want %04o", rel, fi.Mode().Perm(), wantMode)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want = append(want, "tokens/used/<id>")
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("layout:\n got %q\nwant %q", got, want)
	}
}

func TestInitRefuses(t *testing.T) {
	k, _ := newKeys(t)
	_, err := Init(k.Dir(), nil)
	if err == nil || !strings.Contains(err.Error(), "already holds an operator") {
		t.Errorf("second Init: %v, want 'already holds an operator'", err)
	}

	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "stray"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Init(dir, nil); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Errorf("Init on a non-empty directory: %v", err)
	}
	if _, err := Init("", nil); err == nil {
		t.Error("Init with no path succeeded")
	}
}

func TestInitExistingEmptyDirectory(t *testing.T) {
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	k, err := Init(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := CheckPermissions(k.Dir()); err != nil {
		t.Error(err)
	}
}

func TestOpen(t *testing.T) {
	for _, dir := range []string{t.TempDir(), filepath.Join(t.TempDir(), "absent")} {
		_, err := Open(dir, nil)
		if err == nil || !strings.Contains(err.Error(), "no operator.jwt: run canopy-hub init first") {
			t.Errorf("Open(%s): %v, want the init hint", dir, err)
		}
	}

	k, _ := newKeys(t)
	// The identity key is kept offline after init.
	if err := os.Remove(filepath.Join(k.Dir(), "operator.nk")); err != nil {
		t.Fatal(err)
	}
	o, err := Open(k.Dir(), nil)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if o.OperatorJWT() != k.OperatorJWT() || o.OperatorPublicKey() != k.OperatorPublicKey() ||
		o.SystemAccount() != k.SystemAccount() || string(o.SystemCreds()) != string(k.SystemCreds()) {
		t.Error("Open loaded something else than Init made")
	}
	addTenant(t, o, "acme") // works without the identity key
}

func TestCheckPermissions(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("modes do not apply")
	}
	k, _ := newKeys(t)
	addTenant(t, k, "acme")
	for _, tc := range []struct {
		path string
		mode fs.FileMode
		fix  string
	}{
		{"accounts/acme/signing.nk", 0o644, "chmod 600"},
		{"operator-signing.nk", 0o640, "chmod 600"},
		{"accounts/acme", 0o755, "chmod 700"},
		{"tokens/used", 0o750, "chmod 700"},
		{".", 0o711, "chmod 700"},
	} {
		path := filepath.Join(k.Dir(), tc.path)
		if err := os.Chmod(path, tc.mode); err != nil {
			t.Fatal(err)
		}
		err := CheckPermissions(k.Dir())
		for _, want := range []string{path + " is", fmt.Sprintf("(mode %04o)", tc.mode), tc.fix + " " + path} {
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("%s at %04o: %v, want it to say %q", tc.path, tc.mode, err, want)
			}
		}
		if _, oerr := Open(k.Dir(), nil); oerr == nil {
			t.Errorf("Open accepted %s at %04o", tc.path, tc.mode)
		}
		restore := fs.FileMode(0o600)
		if strings.HasPrefix(tc.fix, "chmod 700") {
			restore = 0o700
		}
		if err := os.Chmod(path, restore); err != nil {
			t.Fatal(err)
		}
	}
	if err := CheckPermissions(k.Dir()); err != nil {
		t.Errorf("after the fixes: %v", err)
	}

	// A symbolic link to the directory is followed.
	link := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink(k.Dir(), link); err != nil {
		t.Fatal(err)
	}
	if err := CheckPermissions(link); err != nil {
		t.Errorf("through a link: %v", err)
	}
	if err := os.Chmod(filepath.Join(k.Dir(), "enroll.nk"), 0o604); err != nil {
		t.Fatal(err)
	}
	if err := CheckPermissions(link); err == nil || !strings.Contains(err.Error(), "enroll.nk") {
		t.Errorf("through a link, enroll.nk at 0604: %v", err)
	}
	os.Chmod(filepath.Join(k.Dir(), "enroll.nk"), 0o600)
}

func TestOperatorAndAccountJWTs(t *testing.T) {
	k, _ := newKeys(t)
	acme, acmeJWT := addTenant(t, k, "acme")

	oc, err := jwt.DecodeOperatorClaims(k.OperatorJWT())
	if err != nil {
		t.Fatal(err)
	}
	validClaims(t, oc)
	signingPub := pubOf(t, filepath.Join(k.Dir(), "operator-signing.nk"))
	switch {
	case oc.Subject != k.OperatorPublicKey() || oc.Issuer != oc.Subject:
		t.Errorf("operator JWT: subject %s issuer %s, want both %s", oc.Subject, oc.Issuer, k.OperatorPublicKey())
	case oc.Subject != pubOf(t, filepath.Join(k.Dir(), "operator.nk")):
		t.Error("operator JWT is not operator.nk's")
	case oc.SystemAccount != k.SystemAccount():
		t.Errorf("system account %s, want %s", oc.SystemAccount, k.SystemAccount())
	case !oc.SigningKeys.Contains(signingPub):
		t.Errorf("signing keys %v lack %s", oc.SigningKeys, signingPub)
	case !oc.StrictSigningKeyUsage:
		t.Error("the operator's identity key may sign accounts")
	}

	accounts, err := k.AccountJWTs()
	if err != nil {
		t.Fatal(err)
	}
	if len(accounts) != 2 || accounts[acme.Account] != acmeJWT || accounts[k.SystemAccount()] == "" {
		t.Fatalf("AccountJWTs: %v", accounts)
	}
	for name, dir := range map[string]string{"SYS": "accounts/SYS", "acme": "accounts/acme"} {
		ac := decodeAccount(t, readString(t, filepath.Join(k.Dir(), dir, "account.jwt")))
		validClaims(t, ac)
		signing := pubOf(t, filepath.Join(k.Dir(), dir, "signing.nk"))
		switch {
		case accounts[ac.Subject] == "":
			t.Errorf("%s: not among AccountJWTs", name)
		case ac.Name != name:
			t.Errorf("%s: name %q", name, ac.Name)
		case ac.Subject != pubOf(t, filepath.Join(k.Dir(), dir, "account.nk")):
			t.Errorf("%s: subject is not account.nk's", name)
		case ac.Issuer != signingPub || !oc.DidSign(ac):
			t.Errorf("%s: issued by %s, not the operator signing key", name, ac.Issuer)
		case !ac.SigningKeys.Contains(signing) || len(ac.SigningKeys) != 1:
			t.Errorf("%s: signing keys %v, want only %s", name, ac.SigningKeys.Keys(), signing)
		}
	}

	// The system account admin: full permissions, no expiry.
	sys := decodeAccount(t, accounts[k.SystemAccount()])
	if sys.Limits.IsJSEnabled() {
		t.Error("the system account has JetStream")
	}
	uc := userOf(t, k.SystemCreds())
	validClaims(t, uc)
	switch {
	case uc.Name != "canopy-admin" || uc.IssuerAccount != k.SystemAccount() || !sys.DidSign(uc):
		t.Errorf("system admin: name %q, issuer account %s, issuer %s", uc.Name, uc.IssuerAccount, uc.Issuer)
	case uc.Expires != 0:
		t.Error("system admin credentials expire")
	case len(uc.Pub.Allow)+len(uc.Pub.Deny)+len(uc.Sub.Allow)+len(uc.Sub.Deny) != 0:
		t.Errorf("system admin has restricted permissions: %+v", uc.Permissions)
	}
	if string(k.SystemCreds()) != readString(t, filepath.Join(k.Dir(), "accounts/SYS/admin.creds")) {
		t.Error("SystemCreds is not admin.creds")
	}
}

func TestProvisioningLog(t *testing.T) {
	k, logs := newKeys(t)
	osUser := k.actorName()
	k.SetActor("alice")
	addTenant(t, k, "acme")
	if _, err := k.AddDevice("acme", "pi-001"); err != nil {
		t.Fatal(err)
	}
	if _, err := k.IssueDevice("acme", "pi-002", newUserPub(t)); err != nil {
		t.Fatal(err)
	}
	if _, err := k.RevokeDevice("acme", "pi-001"); err != nil {
		t.Fatal(err)
	}
	tok, err := k.IssueToken("acme", "pi-003", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := k.RedeemToken(tok, time.Now()); err != nil {
		t.Fatal(err)
	}
	if _, err := k.AdminCreds("acme", time.Minute); err != nil {
		t.Fatal(err)
	}
	if _, _, err := k.RemoveTenant("acme"); err != nil {
		t.Fatal(err)
	}
	k.SetActor("")
	if k.actorName() != osUser || osUser == "" {
		t.Errorf("SetActor(\"\") gives %q, want the OS user %q", k.actorName(), osUser)
	}
	var actions []string
	for _, e := range logs.entries(t) {
		if e["msg"] != "provisioning" || e["level"] != "INFO" {
			t.Errorf("log line %v", e)
			continue
		}
		actions = append(actions, e["action"].(string))
		want := "alice"
		if e["action"] == "operator.init" {
			want = osUser
		}
		if e["by"] != want || e["component"] != "fleet" {
			t.Errorf("log line %v: by %v", e, e["by"])
		}
		if e["action"] != "operator.init" && e["tenant"] != "acme" {
			t.Errorf("log line %v: no tenant", e)
		}
		if strings.HasPrefix(e["action"].(string), "device.") || strings.HasPrefix(e["action"].(string), "token.") {
			if e["device"] == nil {
				t.Errorf("log line %v: no device", e)
			}
		}
		if strings.HasPrefix(e["action"].(string), "token.") && e["token_id"] == nil {
			t.Errorf("log line %v: no token id", e)
		}
	}
	wantActions := []string{"operator.init", "tenant.add", "device.add", "device.issue", "device.revoke", "token.issue", "token.redeem", "admin.issue", "tenant.remove"}
	if !slices.Equal(actions, wantActions) {
		t.Errorf("actions %q, want %q", actions, wantActions)
	}
	if strings.Contains(logs.String(), tok) {
		t.Error("the log holds a token")
	}
}

// TestDependencies keeps the package off the server and the client: it
// signs, the hub talks.
func TestDependencies(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go tool")
	}
	out, err := exec.Command(goTool, "list", "-deps", ".").Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("go list: %v\n%s", err, ee.Stderr)
		}
		t.Fatal(err)
	}
	for _, dep := range strings.Fields(string(out)) {
		if strings.HasPrefix(dep, "github.com/nats-io/nats-server") || strings.HasPrefix(dep, "github.com/nats-io/nats.go") {
			t.Errorf("fleet depends on %s", dep)
		}
	}
}
