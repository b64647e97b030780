package fleet

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nkeys"
)

// Limits bound what one tenant's account may use on the hub. -1 means
// unlimited in every field.
type Limits struct {
	JetStreamMemory  int64 // bytes of memory-backed streams; 0: none
	JetStreamStorage int64 // bytes of file-backed streams; 0: none
	Streams          int64 // streams, key-value buckets and object stores
	Consumers        int64 // JetStream consumers
	Connections      int64 // client connections; 0 is refused (no device could connect)
	LeafNodes        int64 // leaf node connections; 0: none
}

// DefaultLimits are a tenant's limits unless the operator says otherwise:
// 256 MiB of memory, 10 GiB of storage, 100 streams, 10000 consumers and
// any number of connections and leaf nodes.
func DefaultLimits() Limits {
	return Limits{
		JetStreamMemory:  256 << 20,
		JetStreamStorage: 10 << 30,
		Streams:          100,
		Consumers:        10000,
		Connections:      jwt.NoLimit,
		LeafNodes:        jwt.NoLimit,
	}
}

// Validate reports every field that cannot be used, at once.
func (l Limits) Validate() error {
	var errs []error
	for _, f := range []struct {
		name string
		v    int64
	}{
		{"JetStreamMemory", l.JetStreamMemory},
		{"JetStreamStorage", l.JetStreamStorage},
		{"Streams", l.Streams},
		{"Consumers", l.Consumers},
		{"Connections", l.Connections},
		{"LeafNodes", l.LeafNodes},
	} {
		if f.v < jwt.NoLimit {
			errs = append(errs, fmt.Errorf("limits: %s is %d: want -1 (unlimited) or a number from 0", f.name, f.v))
		}
	}
	if l.Connections == 0 {
		errs = append(errs, errors.New("limits: Connections is 0, so no device could connect: want -1 (unlimited) or a number from 1"))
	}
	if l.JetStreamMemory == 0 && l.JetStreamStorage == 0 {
		errs = append(errs, errors.New("limits: JetStreamMemory and JetStreamStorage are both 0, which turns off JetStream: every tenant needs it"))
	}
	return errors.Join(errs...)
}

func (l Limits) apply(ac *jwt.AccountClaims) {
	ac.Limits.JetStreamLimits.MemoryStorage = l.JetStreamMemory
	ac.Limits.JetStreamLimits.DiskStorage = l.JetStreamStorage
	ac.Limits.JetStreamLimits.Streams = l.Streams
	ac.Limits.JetStreamLimits.Consumer = l.Consumers
	ac.Limits.Conn = l.Connections
	ac.Limits.LeafNodeConn = l.LeafNodes
}

func limitsOf(ac *jwt.AccountClaims) Limits {
	js := ac.Limits.JetStreamLimits
	return Limits{
		JetStreamMemory:  js.MemoryStorage,
		JetStreamStorage: js.DiskStorage,
		Streams:          js.Streams,
		Consumers:        js.Consumer,
		Connections:      ac.Limits.Conn,
		LeafNodes:        ac.Limits.LeafNodeConn,
	}
}

// Tenant is one customer's account.
type Tenant struct {
	Name        string
	Account     string // account public key
	Limits      Limits
	Created     time.Time
	Devices     int    // devices issued credentials (revoked ones included)
	FirmwareKey string // public key that signs the tenant's firmware
}

// checkTenantName refuses what cannot name a tenant.
func checkTenantName(name string) error {
	if !ValidName(name) {
		return fmt.Errorf("tenant name %q is not valid: want 1 to 64 of A-Z, a-z, 0-9, '_' and '-', not starting with '-'", clip(name))
	}
	return nil
}

// tenantDir is the directory of an existing tenant, or ErrNoTenant.
func (k *Keys) tenantDir(name string) (string, error) {
	if err := checkTenantName(name); err != nil {
		return "", err
	}
	if strings.EqualFold(name, systemAccountName) {
		return "", fmt.Errorf("tenant %q: %w (it is the system account)", name, ErrNoTenant)
	}
	dir := k.accountDir(name)
	if ok, err := exists(filepath.Join(dir, accountJWTFile)); err != nil {
		return "", err
	} else if !ok {
		return "", fmt.Errorf("tenant %q: %w", name, ErrNoTenant)
	}
	return dir, nil
}

// tenantNames lists tenant directories, SYS and unfinished ones excluded.
func (k *Keys) tenantNames() ([]string, error) {
	entries, err := os.ReadDir(filepath.Join(k.dir, accountsDir))
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range entries {
		if !e.IsDir() || !ValidName(e.Name()) || e.Name() == systemAccountName {
			continue
		}
		names = append(names, e.Name())
	}
	sort.Strings(names)
	return names, nil
}

// AddTenant creates a tenant's account with its signing and firmware keys
// and returns it with the account JWT for the hub to push. It refuses a
// name that exists (also in another case) and the reserved name SYS.
func (k *Keys) AddTenant(name string, lim Limits) (Tenant, string, error) {
	if err := checkTenantName(name); err != nil {
		return Tenant{}, "", err
	}
	if strings.EqualFold(name, systemAccountName) {
		return Tenant{}, "", fmt.Errorf("tenant name %q is reserved for the system account", name)
	}
	if err := lim.Validate(); err != nil {
		return Tenant{}, "", fmt.Errorf("tenant %q: %w", name, err)
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	names, err := k.tenantNames()
	if err != nil {
		return Tenant{}, "", err
	}
	for _, n := range names {
		if n == name {
			return Tenant{}, "", fmt.Errorf("tenant %q already exists", name)
		}
		if strings.EqualFold(n, name) {
			return Tenant{}, "", fmt.Errorf("tenant %q differs from the existing tenant %q only in case", name, n)
		}
	}

	// Built aside and renamed into place, so a tenant is there whole or not at all.
	accounts := filepath.Join(k.dir, accountsDir)
	tmp, err := os.MkdirTemp(accounts, ".new-"+name+"-")
	if err != nil {
		return Tenant{}, "", err
	}
	defer os.RemoveAll(tmp) // a no-op once renamed
	t, token, err := k.writeTenant(tmp, name, lim)
	if err != nil {
		return Tenant{}, "", fmt.Errorf("tenant %q: %w", name, err)
	}
	if err := syncDir(tmp); err != nil {
		return Tenant{}, "", err
	}
	if err := os.Rename(tmp, filepath.Join(accounts, name)); err != nil {
		return Tenant{}, "", err
	}
	if err := syncDir(accounts); err != nil {
		return Tenant{}, "", err
	}
	k.provisioned("tenant.add", name, "", "account", t.Account, "firmware_key", t.FirmwareKey)
	return t, token, nil
}

func (k *Keys) writeTenant(dir, name string, lim Limits) (Tenant, string, error) {
	if err := os.Chmod(dir, dirMode); err != nil {
		return Tenant{}, "", err
	}
	if err := mkdir(filepath.Join(dir, devicesDir)); err != nil {
		return Tenant{}, "", err
	}
	pubs := map[string]string{}
	for _, f := range []struct {
		file   string
		create func() (nkeys.KeyPair, error)
	}{
		{accountSeedFile, nkeys.CreateAccount},
		{signingSeedFile, nkeys.CreateAccount},
		{firmwareSeedFile, nkeys.CreateAccount},
	} {
		kp, err := f.create()
		if err != nil {
			return Tenant{}, "", err
		}
		pubs[f.file], err = kp.PublicKey()
		if err == nil {
			err = writeSeed(filepath.Join(dir, f.file), kp)
		}
		kp.Wipe()
		if err != nil {
			return Tenant{}, "", err
		}
	}
	created := time.Now()
	ac := jwt.NewAccountClaims(pubs[accountSeedFile])
	ac.Name = name
	ac.SigningKeys.Add(pubs[signingSeedFile])
	ac.Mappings = jetStreamMappings()
	lim.apply(ac)
	ac.Tags.Add(tenantTag, createdTagPrefix+strconv.FormatInt(created.Unix(), 10))
	token, err := k.signAccount(ac, 0)
	if err != nil {
		return Tenant{}, "", err
	}
	if err := writeFile(filepath.Join(dir, accountJWTFile), []byte(token)); err != nil {
		return Tenant{}, "", err
	}
	return Tenant{
		Name:        name,
		Account:     ac.Subject,
		Limits:      lim,
		Created:     time.Unix(created.Unix(), 0),
		FirmwareKey: pubs[firmwareSeedFile],
	}, token, nil
}

// Tenants lists the tenants by name; the system account is not one.
func (k *Keys) Tenants() ([]Tenant, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	names, err := k.tenantNames()
	if err != nil {
		return nil, err
	}
	out := make([]Tenant, 0, len(names))
	for _, name := range names {
		t, err := k.tenant(name)
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, nil
}

// Tenant describes one tenant; ErrNoTenant when there is none by that name.
func (k *Keys) Tenant(name string) (Tenant, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.tenant(name)
}

func (k *Keys) tenant(name string) (Tenant, error) {
	dir, err := k.tenantDir(name)
	if err != nil {
		return Tenant{}, err
	}
	ac, err := k.readAccount(name)
	if err != nil {
		return Tenant{}, err
	}
	t := Tenant{Name: name, Account: ac.Subject, Limits: limitsOf(ac), Created: createdOf(ac)}
	if t.FirmwareKey, err = publicKeyOf(filepath.Join(dir, firmwareSeedFile)); err != nil {
		return Tenant{}, err
	}
	entries, err := os.ReadDir(filepath.Join(dir, devicesDir))
	if err != nil {
		return Tenant{}, err
	}
	for _, e := range entries {
		if deviceFileName(e.Name()) != "" {
			t.Devices++
		}
	}
	return t, nil
}

// createdOf reads the creation tag, or falls back to the issue time.
func createdOf(ac *jwt.AccountClaims) time.Time {
	for _, tag := range ac.Tags {
		if s, ok := strings.CutPrefix(tag, createdTagPrefix); ok {
			if sec, err := strconv.ParseInt(s, 10, 64); err == nil {
				return time.Unix(sec, 0)
			}
		}
	}
	return time.Unix(ac.IssuedAt, 0)
}

// RemoveTenant cuts a tenant off and puts its keys aside. It re-signs the
// account JWT as a tombstone: no connections, no leaf nodes, no JetStream,
// and every user JWT issued until now revoked. It returns the account's
// public key and the tombstone for the hub to push, then moves the tenant's
// directory to removed/<tenant>-<unix>: nothing is deleted.
func (k *Keys) RemoveTenant(name string) (accountPub, tombstoneJWT string, err error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	dir, err := k.tenantDir(name)
	if err != nil {
		return "", "", err
	}
	ac, err := k.readAccount(name)
	if err != nil {
		return "", "", err
	}
	now := time.Now()
	ac.Limits.Conn = 0
	ac.Limits.LeafNodeConn = 0
	ac.Limits.JetStreamLimits = jwt.JetStreamLimits{}
	ac.Limits.JetStreamTieredLimits = nil
	ac.RevokeAt(jwt.All, now)
	ac.Revocations.MaybeCompact()
	ac.Tags.Add(removedTagPrefix + strconv.FormatInt(now.Unix(), 10))
	token, err := k.signAccount(ac, ac.IssuedAt)
	if err != nil {
		return "", "", fmt.Errorf("tenant %q: %w", name, err)
	}
	if err := writeFile(filepath.Join(dir, accountJWTFile), []byte(token)); err != nil {
		return "", "", err
	}
	removed := filepath.Join(k.dir, removedDir)
	if err := os.MkdirAll(removed, dirMode); err != nil {
		return "", "", err
	}
	base := fmt.Sprintf("%s-%d", name, now.Unix())
	to := filepath.Join(removed, base)
	for i := 2; ; i++ {
		if ok, err := exists(to); err != nil {
			return "", "", err
		} else if !ok {
			break
		}
		to = filepath.Join(removed, fmt.Sprintf("%s-%d", base, i))
	}
	if err := os.Rename(dir, to); err != nil {
		return "", "", fmt.Errorf("tenant %q: %w", name, err)
	}
	if err := syncDir(removed); err != nil {
		return "", "", err
	}
	if err := syncDir(filepath.Join(k.dir, accountsDir)); err != nil {
		return "", "", err
	}
	k.provisioned("tenant.remove", name, "", "account", ac.Subject, "moved_to", to)
	return ac.Subject, token, nil
}

// FirmwareSigner is the key pair that signs the tenant's firmware. The
// caller wipes it when done.
func (k *Keys) FirmwareSigner(tenant string) (nkeys.KeyPair, error) {
	dir, err := k.tenantDir(tenant)
	if err != nil {
		return nil, err
	}
	return readSeed(filepath.Join(dir, firmwareSeedFile))
}

// maxAdminTTL bounds AdminCreds: they carry full permissions.
const maxAdminTTL = 24 * time.Hour

// AdminCreds issues short-lived credentials of a user "canopy-admin" with
// full permissions in the tenant's account, for creating its JetStream
// assets. Nothing is stored; ttl is 1s to 24h.
func (k *Keys) AdminCreds(tenant string, ttl time.Duration) ([]byte, error) {
	if ttl < time.Second || ttl > maxAdminTTL {
		return nil, fmt.Errorf("admin credentials: lifetime %s is out of range: want 1s to %s", ttl, maxAdminTTL)
	}
	dir, err := k.tenantDir(tenant)
	if err != nil {
		return nil, err
	}
	ac, err := k.readAccount(tenant)
	if err != nil {
		return nil, err
	}
	signer, err := readSeed(filepath.Join(dir, signingSeedFile))
	if err != nil {
		return nil, err
	}
	defer signer.Wipe()
	creds, err := newUserCreds(signer, ac.Subject, adminUserName, nil, ttl)
	if err != nil {
		return nil, fmt.Errorf("tenant %q: admin credentials: %w", tenant, err)
	}
	userJWT, err := jwt.ParseDecoratedJWT(creds)
	if err != nil {
		return nil, err
	}
	uc, err := jwt.DecodeUserClaims(userJWT)
	if err != nil {
		return nil, err
	}
	k.provisioned("admin.issue", tenant, "", "account", ac.Subject, "user", uc.Subject,
		"expires", time.Unix(uc.Expires, 0).UTC().Format(time.RFC3339))
	return creds, nil
}

// clip shortens what a caller passed for an error message.
func clip(s string) string {
	const n = 80
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}
