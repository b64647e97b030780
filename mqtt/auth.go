package mqtt

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
	"golang.org/x/crypto/bcrypt"
)

// authHook logs clients in (user name and password from the users file, a
// verified TLS client certificate, or anonymously as the policy allows)
// and applies the ACL. It is a mochi hook.
type authHook struct {
	mochi.HookBase
	anonymous string
	users     map[string][]byte // bcrypt hash by user name
	acl       map[string]aclEntry
	certs     bool // TLS client certificates log clients in
	log       *slog.Logger

	// verified caches a digest of each user's last good password: bcrypt
	// is deliberately slow (tens of milliseconds, more on a Pi), and a
	// fleet of sensors reconnecting at once would otherwise queue behind
	// it.
	mu       sync.Mutex
	verified map[string][32]byte
}

type aclEntry struct {
	publish, subscribe [][]string // filters split into levels
}

func newAuth(cfg Config, log *slog.Logger) (*authHook, error) {
	a := &authHook{anonymous: cfg.Anonymous, certs: cfg.TLS.ClientCAFile != "", log: log, verified: map[string][32]byte{}}
	if cfg.UsersFile != "" {
		users, err := readUsers(cfg.UsersFile)
		if err != nil {
			return nil, err
		}
		a.users = users
	}
	if len(cfg.ACL) > 0 {
		a.acl = map[string]aclEntry{}
		for _, e := range cfg.ACL {
			cur := a.acl[e.User]
			for _, f := range e.Publish {
				cur.publish = append(cur.publish, strings.Split(f, "/"))
			}
			for _, f := range e.Subscribe {
				cur.subscribe = append(cur.subscribe, strings.Split(f, "/"))
			}
			a.acl[e.User] = cur
		}
	}
	return a, nil
}

// readUsers reads "name:bcrypt-hash" lines; blank lines and lines starting
// with # are skipped.
func readUsers(path string) (map[string][]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("mqtt users file: %w", err)
	}
	users := map[string][]byte{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, hash, ok := strings.Cut(line, ":")
		switch {
		case !ok || name == "":
			return nil, fmt.Errorf("%s:%d: want name:bcrypt-hash", path, n)
		case name == AnonymousUser:
			return nil, fmt.Errorf("%s:%d: %q is reserved for clients without a user name", path, n, name)
		case users[name] != nil:
			return nil, fmt.Errorf("%s:%d: user %q listed twice", path, n, name)
		}
		if _, err := bcrypt.Cost([]byte(hash)); err != nil {
			return nil, fmt.Errorf("%s:%d: user %q: not a bcrypt hash (make one with htpasswd -nB %s): %v", path, n, name, name, err)
		}
		users[name] = []byte(hash)
	}
	return users, sc.Err()
}

// ID implements mochi.Hook.
func (a *authHook) ID() string { return "canopy-auth" }

// Provides implements mochi.Hook.
func (a *authHook) Provides(event byte) bool {
	return event == mochi.OnConnectAuthenticate || event == mochi.OnACLCheck
}

// OnConnectAuthenticate decides whether a client may connect, and records
// the name it is known by for the ACL in cl.Properties.Username.
func (a *authHook) OnConnectAuthenticate(cl *mochi.Client, pk packets.Packet) bool {
	if name, ok := a.certificateName(cl); ok {
		cl.Properties.Username = []byte(name)
		return true
	}
	user := string(pk.Connect.Username)
	if user == "" {
		ok := a.anonymous == AnonymousAlways || a.anonymous == AnonymousLoopback && isLoopback(cl.Net.Remote)
		if !ok {
			a.log.Warn("refused anonymous MQTT client", "client", cl.ID, "remote", cl.Net.Remote, "policy", a.anonymous)
		}
		return ok
	}
	if a.checkPassword(user, pk.Connect.Password) {
		return true
	}
	a.log.Warn("refused MQTT login", "client", cl.ID, "user", user, "remote", cl.Net.Remote)
	return false
}

func (a *authHook) checkPassword(user string, password []byte) bool {
	hash, ok := a.users[user]
	if !ok {
		return false
	}
	digest := sha256.Sum256(password)
	a.mu.Lock()
	known, seen := a.verified[user]
	a.mu.Unlock()
	if seen && known == digest {
		return true
	}
	if bcrypt.CompareHashAndPassword(hash, password) != nil {
		return false
	}
	a.mu.Lock()
	a.verified[user] = digest
	a.mu.Unlock()
	return true
}

// certificateName is the common name of a verified client certificate.
func (a *authHook) certificateName(cl *mochi.Client) (string, bool) {
	if !a.certs {
		return "", false
	}
	var conn net.Conn = cl.Net.Conn
	if ws, ok := conn.(*wsConn); ok {
		conn = ws.Conn
	}
	tc, ok := conn.(*tls.Conn)
	if !ok {
		return "", false
	}
	st := tc.ConnectionState()
	if len(st.VerifiedChains) == 0 || st.PeerCertificates[0].Subject.CommonName == "" {
		return "", false
	}
	return st.PeerCertificates[0].Subject.CommonName, true
}

func isLoopback(remote string) bool {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// OnACLCheck reports whether the client may publish to a topic (write) or
// subscribe to a filter / receive a topic (read). Without an ACL
// everything is allowed.
func (a *authHook) OnACLCheck(cl *mochi.Client, target string, write bool) bool {
	if a.acl == nil {
		return true
	}
	user := string(cl.Properties.Username)
	if user == "" {
		user = AnonymousUser
	}
	e, ok := a.acl[user]
	if !ok {
		return false
	}
	if f, queue := splitShare(target); queue != "" {
		target = f
	}
	rules := e.subscribe
	if write {
		rules = e.publish
	}
	levels := strings.Split(target, "/")
	for _, r := range rules {
		if covers(r, levels) {
			return true
		}
	}
	return false
}

// covers reports whether every topic that filter f matches is matched by
// rule (both split into levels): a topic name is the simplest filter.
func covers(rule, f []string) bool {
	for i, r := range rule {
		if r == "#" {
			// "a/#" also matches "a" itself, as MQTT requires.
			return i < len(f) || i == len(f) && i > 0
		}
		if i >= len(f) {
			return false
		}
		switch {
		case r == "+":
			if f[i] == "#" {
				return false
			}
		case r != f[i]:
			return false
		}
	}
	return len(rule) == len(f)
}
