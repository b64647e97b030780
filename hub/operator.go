package hub

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"

	"github.com/canopy-iot/canopy/hub/fleet"
	"github.com/canopy-iot/canopy/internal/config"
)

// Operator turns on operator mode: every account is a tenant whose JWT is
// signed with the keys `canopy-hub init` made, devices authenticate with
// user JWTs, and account changes reach the running cluster without a
// restart.
type Operator struct {
	// KeyDir is the key directory made by `canopy-hub init`. Setting it
	// turns operator mode on. Default: "" (off).
	KeyDir string `yaml:"key_dir"`
	// ResolverDir is where the hub keeps the account JWTs it learned
	// (nats-server's directory resolver, kept in sync across the
	// cluster). Default: <jetstream.store_dir>/accounts.
	ResolverDir string `yaml:"resolver_dir"`
	// EnrollListen serves device enrollment (`canopy-leaf enroll`), over
	// HTTPS when EnrollTLS or the hub's tls is set. Default
	// 127.0.0.1:7480; "off" disables it.
	EnrollListen string `yaml:"enroll_listen"`
	// EnrollTLS is the enrollment listener's certificate. Default: the
	// hub's tls block.
	EnrollTLS *TLS `yaml:"enroll_tls"`
	// LeafNodeURLs are the URLs enrolled devices are told to connect to.
	// Default: this node's leafnode listener.
	LeafNodeURLs []string `yaml:"leafnode_urls"`
}

// DefaultEnrollListen is where the enrollment service listens by default
// in operator mode.
const DefaultEnrollListen = "127.0.0.1:7480"

// On reports whether operator mode is configured.
func (o Operator) On() bool { return o.KeyDir != "" }

func (c Config) operatorDefaults() Config {
	if !c.Operator.On() {
		return c
	}
	if c.Operator.ResolverDir == "" {
		c.Operator.ResolverDir = filepath.Join(c.JetStream.StoreDir, "accounts")
	}
	if c.Operator.EnrollListen == "" {
		c.Operator.EnrollListen = DefaultEnrollListen
	}
	if c.Operator.EnrollTLS == nil {
		c.Operator.EnrollTLS = c.TLS
	}
	return c
}

func (c Config) validateOperator(errs *config.List) {
	o := c.Operator
	if !o.On() {
		if o.ResolverDir != "" || o.EnrollListen != "" || o.EnrollTLS != nil || len(o.LeafNodeURLs) > 0 {
			errs.Addf("operator.key_dir", "required when other operator settings are set")
		}
		return
	}
	if len(c.Accounts) > 0 {
		errs.Addf("accounts", "not used in operator mode: tenants are accounts made with `canopy-hub tenant add`")
	}
	if c.NoAuthUser != "" {
		errs.Addf("no_auth_user", "not used in operator mode: every client authenticates with a user JWT")
	}
	// A missing directory is reported when the hub opens it, with the
	// command that makes one.
	if _, err := os.Stat(o.KeyDir); err == nil {
		if err := fleet.CheckPermissions(o.KeyDir); err != nil {
			errs.Addf("operator.key_dir", "%v", err)
		}
	}
	checkListen(errs, "operator.enroll_listen", o.EnrollListen, true)
	checkTLS(errs, "operator.enroll_tls", o.EnrollTLS)
	for i, u := range o.LeafNodeURLs {
		checkURL(errs, fmt.Sprintf("operator.leafnode_urls[%d]", i), u, "nats", "nats-leaf", "tls", "ws", "wss")
	}
}

// operatorState is what operator mode keeps for the server's life: the
// resolver cannot change on a reload, so the same one is handed to every
// options value.
type operatorState struct {
	keys     *fleet.Keys
	operator *jwt.OperatorClaims
	resolver server.AccountResolver
}

// openOperator loads the key directory and prepares the account resolver,
// with every account the key directory knows stored in it (only where the
// key directory's JWT is newer), so tenants added while the hub was down
// are served at once. With inMemory (check-config), the resolver holds the
// accounts in memory: checking a configuration writes nothing, least of
// all files of another user's in the hub's state directory.
func openOperator(o Operator, keys *fleet.Keys, inMemory bool) (*operatorState, error) {
	op, err := jwt.DecodeOperatorClaims(keys.OperatorJWT())
	if err != nil {
		return nil, fmt.Errorf("operator.key_dir %s: operator.jwt: %w", o.KeyDir, err)
	}
	var res server.AccountResolver
	if inMemory {
		res = &server.MemAccResolver{}
	} else if res, err = server.NewDirAccResolver(o.ResolverDir, 0, time.Minute, server.NoDelete); err != nil {
		return nil, fmt.Errorf("operator.resolver_dir %s: %w", o.ResolverDir, err)
	}
	accounts, err := keys.AccountJWTs()
	if err != nil {
		res.Close()
		return nil, fmt.Errorf("operator.key_dir %s: %w", o.KeyDir, err)
	}
	for pub, token := range accounts {
		if err := res.Store(pub, token); err != nil {
			res.Close()
			return nil, fmt.Errorf("operator.resolver_dir %s: store account %s: %w", o.ResolverDir, pub, err)
		}
	}
	return &operatorState{keys: keys, operator: op, resolver: res}, nil
}

// apply sets operator mode's nats-server options.
func (st *operatorState) apply(opts *server.Options) {
	opts.TrustedOperators = []*jwt.OperatorClaims{st.operator}
	opts.SystemAccount = st.keys.SystemAccount()
	opts.AccountResolver = st.resolver
}

// close releases the account resolver of a hub that will not run; nil
// (not in operator mode) is fine.
func (st *operatorState) close() {
	if st != nil {
		st.resolver.Close()
	}
}
