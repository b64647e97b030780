package fleet

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/user"
	"path/filepath"
	"sync"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nkeys"
)

// Sentinel errors, wrapped with the name that was not found.
var (
	ErrNoTenant = errors.New("no such tenant")
	ErrNoDevice = errors.New("no such device")
)

// Keys is an open key directory. Its methods may be called concurrently.
type Keys struct {
	dir string
	log *slog.Logger

	actorMu sync.Mutex
	actor   string

	// mu serialises changes to account JWTs and device files.
	mu sync.Mutex

	// Loaded by Open; fixed for the life of a key directory.
	operatorJWT string
	operatorPub string
	sysPub      string
	sysCreds    []byte
	enrollPub   nkeys.KeyPair // public half only
}

// Init creates a key directory: the operator, its signing key, the
// enrollment key and the system account with its admin credentials. dir may
// exist but must be empty. On failure it removes what it made. log may be
// nil.
func Init(dir string, log *slog.Logger) (*Keys, error) {
	if dir == "" {
		return nil, errors.New("key directory: no path given")
	}
	created := false
	entries, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		if err := os.MkdirAll(dir, dirMode); err != nil {
			return nil, fmt.Errorf("key directory: %w", err)
		}
		created = true
	case err != nil:
		return nil, fmt.Errorf("key directory: %w", err)
	default:
		for _, e := range entries {
			if e.Name() == operatorJWTFile {
				return nil, fmt.Errorf("key directory %s already holds an operator", dir)
			}
		}
		if len(entries) > 0 {
			return nil, fmt.Errorf("key directory %s is not empty (%s, ...): init needs an empty or absent directory", dir, entries[0].Name())
		}
	}
	if err := os.Chmod(dir, dirMode); err != nil {
		return nil, fmt.Errorf("key directory: %w", err)
	}
	if err := initDir(dir); err != nil {
		// dir was empty: everything in it is ours.
		if created {
			os.RemoveAll(dir)
		} else if entries, rerr := os.ReadDir(dir); rerr == nil {
			for _, e := range entries {
				os.RemoveAll(filepath.Join(dir, e.Name()))
			}
		}
		return nil, fmt.Errorf("key directory %s: init: %w", dir, err)
	}
	k, err := load(dir, log)
	if err != nil {
		return nil, err
	}
	k.provisioned("operator.init", "", "", "operator", k.operatorPub, "system_account", k.sysPub)
	return k, nil
}

// initDir writes a new key directory into the empty dir, operator.jwt last:
// its presence means the directory is complete.
func initDir(dir string) error {
	keys := map[string]func() (nkeys.KeyPair, error){
		"operator":         nkeys.CreateOperator,
		"operator-signing": nkeys.CreateOperator,
		"enroll":           nkeys.CreateOperator,
		"sys":              nkeys.CreateAccount,
		"sys-signing":      nkeys.CreateAccount,
	}
	kp := map[string]nkeys.KeyPair{}
	pubs := map[string]string{}
	defer func() {
		for _, k := range kp {
			k.Wipe()
		}
	}()
	for name, create := range keys {
		k, err := create()
		if err != nil {
			return err
		}
		kp[name] = k
		if pubs[name], err = k.PublicKey(); err != nil {
			return err
		}
	}
	sysDir := filepath.Join(dir, accountsDir, systemAccountName)
	for _, d := range []string{
		filepath.Join(dir, accountsDir),
		sysDir,
		filepath.Join(dir, tokensDir),
		usedTokensPath(dir),
		filepath.Join(dir, removedDir),
	} {
		if err := mkdir(d); err != nil {
			return err
		}
	}
	for path, k := range map[string]nkeys.KeyPair{
		filepath.Join(dir, operatorSeedFile):    kp["operator"],
		filepath.Join(dir, operatorSigningFile): kp["operator-signing"],
		filepath.Join(dir, enrollSeedFile):      kp["enroll"],
		filepath.Join(sysDir, accountSeedFile):  kp["sys"],
		filepath.Join(sysDir, signingSeedFile):  kp["sys-signing"],
	} {
		if err := writeSeed(path, k); err != nil {
			return err
		}
	}

	ac := jwt.NewAccountClaims(pubs["sys"])
	ac.Name = systemAccountName
	ac.SigningKeys.Add(pubs["sys-signing"])
	accountJWT, err := encodeAccount(ac, kp["operator-signing"])
	if err != nil {
		return fmt.Errorf("system account: %w", err)
	}
	if err := writeFile(filepath.Join(sysDir, accountJWTFile), []byte(accountJWT)); err != nil {
		return err
	}
	creds, err := newUserCreds(kp["sys-signing"], pubs["sys"], adminUserName, nil, 0)
	if err != nil {
		return fmt.Errorf("system account admin: %w", err)
	}
	defer wipe(creds)
	if err := writeFile(filepath.Join(sysDir, adminCredsFile), creds); err != nil {
		return err
	}

	oc := jwt.NewOperatorClaims(pubs["operator"])
	oc.Name = operatorName
	oc.SigningKeys.Add(pubs["operator-signing"])
	oc.SystemAccount = pubs["sys"]
	oc.StrictSigningKeyUsage = true // the identity key stays offline
	if err := validate(oc); err != nil {
		return fmt.Errorf("operator: %w", err)
	}
	operatorJWT, err := oc.Encode(kp["operator"])
	if err != nil {
		return fmt.Errorf("operator: %w", err)
	}
	return writeFile(filepath.Join(dir, operatorJWTFile), []byte(operatorJWT))
}

// Open loads a key directory made by Init, after CheckPermissions. The
// operator identity seed (operator.nk) may be absent: Open does not need
// it. log may be nil.
func Open(dir string, log *slog.Logger) (*Keys, error) {
	if ok, err := exists(filepath.Join(dir, operatorJWTFile)); err != nil {
		return nil, fmt.Errorf("key directory: %w", err)
	} else if !ok {
		return nil, fmt.Errorf("%s: no %s: run canopy-hub init first", dir, operatorJWTFile)
	}
	if err := CheckPermissions(dir); err != nil {
		return nil, err
	}
	return load(dir, log)
}

// load reads what a Keys keeps in memory and checks that the directory's
// parts belong together.
func load(dir string, log *slog.Logger) (*Keys, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	k := &Keys{dir: dir, log: log.With("component", "fleet")}
	fail := func(err error) (*Keys, error) { return nil, fmt.Errorf("key directory %s: %w", dir, err) }

	b, err := os.ReadFile(filepath.Join(dir, operatorJWTFile))
	if err != nil {
		return fail(err)
	}
	k.operatorJWT = string(b)
	oc, err := jwt.DecodeOperatorClaims(k.operatorJWT)
	if err != nil {
		return fail(fmt.Errorf("%s: %w", operatorJWTFile, err))
	}
	if oc.Issuer != oc.Subject {
		return fail(fmt.Errorf("%s: not signed by the operator's own key", operatorJWTFile))
	}
	k.operatorPub, k.sysPub = oc.Subject, oc.SystemAccount
	signingPub, err := publicKeyOf(filepath.Join(dir, operatorSigningFile))
	if err != nil {
		return fail(err)
	}
	if !oc.SigningKeys.Contains(signingPub) {
		return fail(fmt.Errorf("%s is not a signing key of %s", operatorSigningFile, operatorJWTFile))
	}
	sys, err := k.readAccount(systemAccountName)
	if err != nil {
		return fail(err)
	}
	if sys.Subject != k.sysPub {
		return fail(fmt.Errorf("accounts/%s is %s, but the operator's system account is %s", systemAccountName, sys.Subject, k.sysPub))
	}
	if k.sysCreds, err = os.ReadFile(filepath.Join(k.accountDir(systemAccountName), adminCredsFile)); err != nil {
		return fail(err)
	}
	enrollPub, err := publicKeyOf(filepath.Join(dir, enrollSeedFile))
	if err != nil {
		return fail(err)
	}
	if k.enrollPub, err = nkeys.FromPublicKey(enrollPub); err != nil {
		return fail(err)
	}
	return k, nil
}

// Dir is the key directory's path.
func (k *Keys) Dir() string { return k.dir }

// SetActor names who performs the following actions, for the provisioning
// log. The default, and what "" restores, is the OS user name.
func (k *Keys) SetActor(who string) {
	k.actorMu.Lock()
	k.actor = who
	k.actorMu.Unlock()
}

func (k *Keys) actorName() string {
	k.actorMu.Lock()
	who := k.actor
	k.actorMu.Unlock()
	if who != "" {
		return who
	}
	if u, err := user.Current(); err == nil && u.Username != "" {
		return u.Username
	}
	return "unknown"
}

// OperatorJWT is the operator's JWT, for the server's configuration.
func (k *Keys) OperatorJWT() string { return k.operatorJWT }

// OperatorPublicKey is the operator's identity public key.
func (k *Keys) OperatorPublicKey() string { return k.operatorPub }

// SystemAccount is the system account's public key.
func (k *Keys) SystemAccount() string { return k.sysPub }

// SystemCreds is the system account admin's credentials file: full
// permissions in the system account, no expiry. The hub's command line
// uses it to push account JWTs.
func (k *Keys) SystemCreds() []byte { return append([]byte(nil), k.sysCreds...) }

// AccountJWTs maps the public key of the system account and of every
// tenant's account to its current JWT. Removed tenants are not included.
func (k *Keys) AccountJWTs() (map[string]string, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	names, err := k.tenantNames()
	if err != nil {
		return nil, err
	}
	out := make(map[string]string, len(names)+1)
	for _, name := range append([]string{systemAccountName}, names...) {
		b, err := os.ReadFile(filepath.Join(k.accountDir(name), accountJWTFile))
		if err != nil {
			return nil, fmt.Errorf("account %s: %w", name, err)
		}
		ac, err := jwt.DecodeAccountClaims(string(b))
		if err != nil {
			return nil, fmt.Errorf("account %s: %w", name, err)
		}
		out[ac.Subject] = string(b)
	}
	return out, nil
}

// provisioned logs one change to the fleet. attrs are key-value pairs of
// public data only.
func (k *Keys) provisioned(action, tenant, device string, attrs ...any) {
	args := make([]any, 0, 8+len(attrs))
	args = append(args, "action", action)
	if tenant != "" {
		args = append(args, "tenant", tenant)
	}
	if device != "" {
		args = append(args, "device", device)
	}
	args = append(args, "by", k.actorName())
	k.log.Info("provisioning", append(args, attrs...)...)
}

func (k *Keys) accountDir(name string) string { return filepath.Join(k.dir, accountsDir, name) }

// readAccount decodes an account's JWT from its directory.
func (k *Keys) readAccount(name string) (*jwt.AccountClaims, error) {
	b, err := os.ReadFile(filepath.Join(k.accountDir(name), accountJWTFile))
	if err != nil {
		return nil, err
	}
	ac, err := jwt.DecodeAccountClaims(string(b))
	if err != nil {
		return nil, fmt.Errorf("accounts/%s/%s: %w", name, accountJWTFile, err)
	}
	return ac, nil
}

// signAccount signs ac with the operator signing key. Its issue time ends up
// later than after (the previous version's), since the hub keeps only the
// newer of two account JWTs: within the same second it waits for the next.
func (k *Keys) signAccount(ac *jwt.AccountClaims, after int64) (string, error) {
	kp, err := readSeed(filepath.Join(k.dir, operatorSigningFile))
	if err != nil {
		return "", err
	}
	defer kp.Wipe()
	for {
		token, err := encodeAccount(ac, kp)
		if err != nil {
			return "", err
		}
		if ac.IssuedAt > after {
			return token, nil
		}
		wait := time.Until(time.Unix(after+1, 0))
		if wait > 2*time.Second {
			return "", fmt.Errorf("account %s was last signed at %s, %s in the future: fix the system clock",
				ac.Name, time.Unix(after, 0).UTC().Format(time.RFC3339), wait.Round(time.Second))
		}
		time.Sleep(wait)
	}
}

func encodeAccount(ac *jwt.AccountClaims, kp nkeys.KeyPair) (string, error) {
	if err := validate(ac); err != nil {
		return "", err
	}
	return ac.Encode(kp)
}

// newUserCreds makes a user key pair and its JWT, signed by an account's
// signing key, and returns both as a credentials file. perms nil means
// full permissions; ttl 0 means no expiry.
func newUserCreds(signer nkeys.KeyPair, accountPub, name string, perms *jwt.Permissions, ttl time.Duration) ([]byte, error) {
	ukp, err := nkeys.CreateUser()
	if err != nil {
		return nil, err
	}
	defer ukp.Wipe()
	userPub, err := ukp.PublicKey()
	if err != nil {
		return nil, err
	}
	uc := jwt.NewUserClaims(userPub)
	uc.Name = name
	uc.IssuerAccount = accountPub
	if perms != nil {
		uc.Permissions = *perms
	}
	if ttl > 0 {
		uc.Expires = time.Now().Add(ttl).Unix()
	}
	token, err := encodeUser(uc, signer)
	if err != nil {
		return nil, err
	}
	seed, err := ukp.Seed()
	if err != nil {
		return nil, err
	}
	return jwt.FormatUserConfig(token, seed)
}

func encodeUser(uc *jwt.UserClaims, signer nkeys.KeyPair) (string, error) {
	if err := validate(uc); err != nil {
		return "", err
	}
	return uc.Encode(signer)
}

// validate runs jwt's own checks on claims about to be signed.
func validate(c jwt.Claims) error {
	vr := jwt.CreateValidationResults()
	c.Validate(vr)
	if errs := vr.Errors(); len(errs) > 0 {
		return fmt.Errorf("invalid claims: %w", errors.Join(errs...))
	}
	return nil
}
