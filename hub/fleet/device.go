package fleet

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nkeys"
)

// Device is one device's latest credentials.
type Device struct {
	Name   string
	Tenant string
	User   string // user public key
	Issued time.Time
	// Revoked: the tenant's account JWT revokes this user JWT.
	Revoked bool
}

func checkDeviceName(name string) error {
	if !ValidName(name) {
		return fmt.Errorf("device name %q is not valid: want 1 to 64 of A-Z, a-z, 0-9, '_' and '-', not starting with '-'", clip(name))
	}
	return nil
}

// deviceFileName is the device a file in devices/ holds, or "".
func deviceFileName(file string) string {
	name, ok := strings.CutSuffix(file, deviceJWTExt)
	if !ok || !ValidName(name) {
		return ""
	}
	return name
}

// AddDevice makes a device's key pair and user JWT here and returns them as
// a standard credentials file for the device; the hub keeps the JWT only.
// A device that has credentials gets new ones; the old ones stay valid
// until RevokeDevice (so revoke first to replace a device's key).
func (k *Keys) AddDevice(tenant, device string) (creds []byte, err error) {
	if err := checkDeviceName(device); err != nil {
		return nil, err
	}
	ukp, err := nkeys.CreateUser()
	if err != nil {
		return nil, err
	}
	defer ukp.Wipe()
	userPub, err := ukp.PublicKey()
	if err != nil {
		return nil, err
	}
	token, replaced, err := k.issueDevice(tenant, device, userPub)
	if err != nil {
		return nil, err
	}
	seed, err := ukp.Seed()
	if err != nil {
		return nil, err
	}
	if creds, err = jwt.FormatUserConfig(token, seed); err != nil {
		return nil, err
	}
	k.provisioned("device.add", tenant, device, deviceAttrs(userPub, replaced)...)
	return creds, nil
}

// IssueDevice signs a user JWT for a key the device made itself (at
// enrollment): userPub must be an nkeys user public key.
func (k *Keys) IssueDevice(tenant, device, userPub string) (userJWT string, err error) {
	if err := checkDeviceName(device); err != nil {
		return "", err
	}
	if err := CheckUserKey(userPub); err != nil {
		return "", fmt.Errorf("device %q: %w", device, err)
	}
	token, replaced, err := k.issueDevice(tenant, device, userPub)
	if err != nil {
		return "", err
	}
	k.provisioned("device.issue", tenant, device, deviceAttrs(userPub, replaced)...)
	return token, nil
}

// CheckUserKey accepts a user public key in its one canonical spelling
// (nkeys.IsValidPublicUserKey alone also takes some with extra trailing
// characters), as IssueDevice does: check with it before spending a token.
// The error does not repeat what it got: that might be a seed sent by
// mistake.
func CheckUserKey(s string) error {
	bad := func(why string) error {
		return fmt.Errorf("public key is not a user public key (56 characters starting with \"U\"): %s", why)
	}
	switch {
	case s == "":
		return bad("it is empty")
	case len(s) != 56:
		return bad(fmt.Sprintf("it has %d characters", len(s)))
	case s[0] == 'S':
		return bad("it looks like a seed, which must never leave the device")
	case s[0] != 'U':
		return bad(fmt.Sprintf("it starts with %q", s[:1]))
	case !nkeys.IsValidPublicUserKey(s):
		return bad("its checksum or encoding is wrong")
	}
	kp, err := nkeys.FromPublicKey(s)
	if err != nil {
		return bad("its checksum or encoding is wrong")
	}
	if canonical, err := kp.PublicKey(); err != nil || canonical != s {
		return bad("its encoding is not canonical")
	}
	return nil
}

func deviceAttrs(userPub, replaced string) []any {
	attrs := []any{"user", userPub}
	if replaced != "" {
		attrs = append(attrs, "replaces", replaced)
	}
	return attrs
}

// issueDevice signs and stores a device's user JWT; replaced is the user
// key it had before, if any.
func (k *Keys) issueDevice(tenant, device, userPub string) (token, replaced string, err error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	dir, err := k.tenantDir(tenant)
	if err != nil {
		return "", "", err
	}
	ac, err := k.readAccount(tenant)
	if err != nil {
		return "", "", err
	}
	path := filepath.Join(dir, devicesDir, device+deviceJWTExt)
	if old, err := readDevice(path); err == nil {
		replaced = old.Subject
	}
	signer, err := readSeed(filepath.Join(dir, signingSeedFile))
	if err != nil {
		return "", "", err
	}
	defer signer.Wipe()
	uc := jwt.NewUserClaims(userPub)
	uc.Name = device
	uc.IssuerAccount = ac.Subject
	uc.Tags.Add(deviceTagPrefix + tenant)
	uc.Permissions = DevicePermissions(device)
	if token, err = encodeUser(uc, signer); err != nil {
		return "", "", fmt.Errorf("device %q: %w", device, err)
	}
	if err := writeFile(path, []byte(token)); err != nil {
		return "", "", err
	}
	return token, replaced, nil
}

func readDevice(path string) (*jwt.UserClaims, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	uc, err := jwt.DecodeUserClaims(string(b))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return uc, nil
}

// Devices lists a tenant's devices by name.
func (k *Keys) Devices(tenant string) ([]Device, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	dir, err := k.tenantDir(tenant)
	if err != nil {
		return nil, err
	}
	ac, err := k.readAccount(tenant)
	if err != nil {
		return nil, err
	}
	entries, err := os.ReadDir(filepath.Join(dir, devicesDir))
	if err != nil {
		return nil, err
	}
	var out []Device
	for _, e := range entries {
		name := deviceFileName(e.Name())
		if name == "" || e.IsDir() {
			continue
		}
		uc, err := readDevice(filepath.Join(dir, devicesDir, e.Name()))
		if err != nil {
			return nil, err
		}
		out = append(out, Device{
			Name:    name,
			Tenant:  tenant,
			User:    uc.Subject,
			Issued:  time.Unix(uc.IssuedAt, 0),
			Revoked: ac.IsClaimRevoked(uc),
		})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// RevokeDevice revokes the device's current user key in the tenant's
// account JWT, re-signs and saves it, and returns it for the hub to push:
// the device is cut off once the hub has it. Revoking again re-signs with a
// newer revocation.
func (k *Keys) RevokeDevice(tenant, device string) (accountJWT string, err error) {
	if err := checkDeviceName(device); err != nil {
		return "", err
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	dir, err := k.tenantDir(tenant)
	if err != nil {
		return "", err
	}
	uc, err := readDevice(filepath.Join(dir, devicesDir, device+deviceJWTExt))
	if errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("tenant %q: device %q: %w", tenant, device, ErrNoDevice)
	} else if err != nil {
		return "", err
	}
	ac, err := k.readAccount(tenant)
	if err != nil {
		return "", err
	}
	// Revocation covers JWTs issued up to this time: never before the device's.
	at := time.Now()
	if issued := time.Unix(uc.IssuedAt, 0); at.Before(issued) {
		at = issued
	}
	ac.RevokeAt(uc.Subject, at)
	token, err := k.signAccount(ac, ac.IssuedAt)
	if err != nil {
		return "", fmt.Errorf("tenant %q: %w", tenant, err)
	}
	if err := writeFile(filepath.Join(dir, accountJWTFile), []byte(token)); err != nil {
		return "", err
	}
	k.provisioned("device.revoke", tenant, device, "user", uc.Subject, "account", ac.Subject)
	return token, nil
}
