package auth

import (
	"fmt"
	"os"
	"strings"

	"github.com/nats-io/nkeys"
	"golang.org/x/crypto/bcrypt"

	"github.com/canopy-iot/canopy/internal/config"
	"github.com/canopy-iot/canopy/leaf/subject"
)

// Config is the `authorization` section of leaf.yaml. Every field is
// optional. The zero value means no authentication: any local client may
// connect and has every permission, which is safe only because the leaf
// listens on 127.0.0.1 by default.
//
// Set either a token (Token or TokenFile) or Users, not both: nats-server
// refuses the combination too.
type Config struct {
	// Token is the secret every client must send as auth_token, plain or a
	// bcrypt hash ("$2a$", "$2b$", "$2x$" or "$2y$", as nats-server
	// accepts). Default: none.
	Token string `yaml:"token"`
	// TokenFile names a file holding the token, so the secret stays out of
	// leaf.yaml. Surrounding whitespace is trimmed. Default: none.
	TokenFile string `yaml:"token_file"`
	// Users who may connect, each with a password or an NKey.
	// Default: none.
	Users []UserConfig `yaml:"users"`
}

// UserConfig is one user: either User with Password (or PasswordFile), or
// NKey alone.
type UserConfig struct {
	// User is the name the client sends in CONNECT.
	User string `yaml:"user"`
	// Password, plain or a bcrypt hash. A bcrypt hash keeps the secret out of
	// the file, but each check costs 50-100 ms of a small ARM core, so
	// successful checks are remembered (see Authenticator).
	Password string `yaml:"password"`
	// PasswordFile names a file holding the password (plain or bcrypt),
	// trimmed of surrounding whitespace.
	PasswordFile string `yaml:"password_file"`
	// NKey is the user's public key: 56 characters starting with "U". The
	// client proves it holds the seed by signing the server's nonce.
	NKey string `yaml:"nkey"`
	// Permissions of the user. Default: everything allowed.
	Permissions Permissions `yaml:"permissions"`
}

// Permissions restrict what a user may publish and subscribe to.
type Permissions struct {
	// Publish lists subject filters the user may (allow) and may not (deny)
	// publish to. Default: all allowed.
	Publish SubjectPermission `yaml:"publish"`
	// Subscribe lists filters the user may and may not subscribe to. An
	// entry may name a queue group after a space, "orders.* workers", to
	// govern queue subscriptions only; the queue may hold wildcards.
	// Default: all allowed.
	Subscribe SubjectPermission `yaml:"subscribe"`
	// AllowResponses lets the user publish one response to the reply
	// subject of each request delivered to it, within ResponseTTL. As in
	// nats-server, setting it while Publish.Allow is empty limits publishing
	// to those responses. Default: false.
	AllowResponses bool `yaml:"allow_responses"`
}

// SubjectPermission is an allow list and a deny list of subject filters.
// An empty allow list allows everything; deny wins over allow.
type SubjectPermission struct {
	Allow []string `yaml:"allow"`
	Deny  []string `yaml:"deny"`
}

// String describes c without its secrets, so that printing or logging a
// configuration never reveals a token or password.
func (c Config) String() string {
	var b strings.Builder
	b.WriteString("{")
	switch {
	case c.Token != "":
		b.WriteString("token:<redacted>")
	case c.TokenFile != "":
		fmt.Fprintf(&b, "token_file:%s", c.TokenFile)
	}
	if len(c.Users) > 0 {
		if b.Len() > 1 {
			b.WriteString(" ")
		}
		b.WriteString("users:[")
		for i, u := range c.Users {
			if i > 0 {
				b.WriteString(" ")
			}
			b.WriteString(u.String())
		}
		b.WriteString("]")
	}
	b.WriteString("}")
	return b.String()
}

// String describes u without its password.
func (u UserConfig) String() string {
	switch {
	case u.NKey != "":
		return "{nkey:" + u.NKey + "}"
	case u.PasswordFile != "":
		return "{user:" + u.User + " password_file:" + u.PasswordFile + "}"
	case u.Password != "":
		return "{user:" + u.User + " password:<redacted>}"
	}
	return "{user:" + u.User + "}"
}

// Validate reports every problem in c at once, each as a *config.Error
// naming the setting below ConfigKey. It reads the *_file settings, so a
// missing or empty secret file is caught before the server starts.
func (c Config) Validate() error {
	var errs config.List
	c.resolve(&errs)
	return errs.Err()
}

// secrets are the token and passwords of a Config, read from their files.
type secrets struct {
	token     string
	passwords []string // per user; "" for NKey users
}

// resolve checks c, reads its secret files and returns the secrets. New
// and Validate share it so both read the same rules.
func (c Config) resolve(errs *config.List) secrets {
	s := secrets{passwords: make([]string, len(c.Users))}
	tokenPath := path("token")
	s.token = c.Token
	if c.TokenFile != "" {
		tokenPath = path("token_file")
		if c.Token != "" {
			errs.Addf(tokenPath, "set either token or token_file, not both")
		} else {
			s.token = readSecret(errs, tokenPath, c.TokenFile)
		}
	}
	checkHash(errs, tokenPath, s.token)
	if (c.Token != "" || c.TokenFile != "") && len(c.Users) > 0 {
		errs.Addf(tokenPath, "set either a token or users, not both")
	}

	seen := map[string]string{} // user name or nkey → path of its first entry
	for i, u := range c.Users {
		up := fmt.Sprintf("%s[%d]", path("users"), i)
		if u.NKey != "" {
			checkNKeyUser(errs, up, u, seen)
		} else {
			s.passwords[i] = checkPasswordUser(errs, up, u, seen)
		}
		checkPermissions(errs, up+".permissions", u.Permissions)
	}
	return s
}

func checkNKeyUser(errs *config.List, up string, u UserConfig, seen map[string]string) {
	if u.User != "" || u.Password != "" || u.PasswordFile != "" {
		errs.Addf(up, "set either nkey, or user and password, not both")
	}
	if !nkeys.IsValidPublicUserKey(u.NKey) {
		errs.Addf(up+".nkey", "not a user public key (want 56 characters starting with \"U\")")
		return
	}
	if prev, dup := seen[u.NKey]; dup {
		errs.Addf(up+".nkey", "same nkey as %s", prev)
		return
	}
	seen[u.NKey] = up
}

// checkPasswordUser checks a user/password entry and returns its password.
func checkPasswordUser(errs *config.List, up string, u UserConfig, seen map[string]string) string {
	if u.User == "" {
		errs.Addf(up, "needs user and password, or nkey")
		return ""
	}
	if prev, dup := seen[u.User]; dup {
		errs.Addf(up+".user", "user %q is already defined at %s", u.User, prev)
	} else {
		seen[u.User] = up
	}
	pass, passPath := u.Password, up+".password"
	switch {
	case u.PasswordFile != "" && u.Password != "":
		errs.Addf(up+".password_file", "set either password or password_file, not both")
		return ""
	case u.PasswordFile != "":
		passPath = up + ".password_file"
		pass = readSecret(errs, passPath, u.PasswordFile)
	case u.Password == "":
		errs.Addf(passPath, "required with user (or set password_file)")
	}
	checkHash(errs, passPath, pass)
	return pass
}

func checkPermissions(errs *config.List, pp string, p Permissions) {
	for i, f := range p.Publish.Allow {
		checkPubFilter(errs, fmt.Sprintf("%s.publish.allow[%d]", pp, i), f)
	}
	for i, f := range p.Publish.Deny {
		checkPubFilter(errs, fmt.Sprintf("%s.publish.deny[%d]", pp, i), f)
	}
	for i, f := range p.Subscribe.Allow {
		checkSubFilter(errs, fmt.Sprintf("%s.subscribe.allow[%d]", pp, i), f)
	}
	for i, f := range p.Subscribe.Deny {
		checkSubFilter(errs, fmt.Sprintf("%s.subscribe.deny[%d]", pp, i), f)
	}
}

func checkPubFilter(errs *config.List, p, f string) {
	if !subject.ValidSubscribe(f) {
		errs.Addf(p, "invalid subject %q", f)
	}
}

func checkSubFilter(errs *config.List, p, f string) {
	if _, err := parseSubFilter(f); err != nil {
		errs.Addf(p, "%v", err)
	}
}

// readSecret returns the trimmed contents of file. The error names the file,
// never its contents.
func readSecret(errs *config.List, p, file string) string {
	data, err := os.ReadFile(file)
	if err != nil {
		if pe, ok := err.(*os.PathError); ok {
			err = pe.Err // the message names the file already
		}
		errs.Addf(p, "cannot read %s: %v", file, err)
		return ""
	}
	s := strings.TrimSpace(string(data))
	if s == "" {
		errs.Addf(p, "%s is empty", file)
	}
	return s
}

// checkHash refuses a secret that nats-server would take for a bcrypt hash
// but that no password can match, so a mangled hash is caught at start-up
// rather than as clients failing to connect.
func checkHash(errs *config.List, p, secret string) {
	if !isBcrypt(secret) {
		return
	}
	if _, err := bcrypt.Cost([]byte(secret)); err != nil || len(secret) != bcryptHashLen {
		errs.Addf(p, "looks like a bcrypt hash but is not a valid one")
	}
}

func path(key string) string { return ConfigKey + "." + key }
