package fleet

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/nats-io/jwt/v2"
)

// syncBuffer collects log output from concurrent calls.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// entries decodes the JSON log lines.
func (b *syncBuffer) entries(t testing.TB) []map[string]any {
	t.Helper()
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(b.String()))
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("log line %q: %v", sc.Text(), err)
		}
		out = append(out, m)
	}
	return out
}

// newKeys initialises a key directory in a temporary directory. On cleanup
// it checks the directory's invariants: modes, no temporary files left, and
// no seed in the provisioning log.
func newKeys(t testing.TB) (*Keys, *syncBuffer) {
	t.Helper()
	logs := &syncBuffer{}
	log := slog.New(slog.NewJSONHandler(logs, nil))
	dir := filepath.Join(t.TempDir(), "keys")
	k, err := Init(dir, log)
	if err != nil {
		t.Fatalf("Init: %v", err)
	}
	t.Cleanup(func() { checkDir(t, dir, logs.String()) })
	return k, logs
}

func checkDir(t testing.TB, dir, logs string) {
	t.Helper()
	if err := CheckPermissions(dir); err != nil {
		t.Errorf("after the test: %v", err)
	}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if strings.Contains(d.Name(), ".tmp-") || strings.HasPrefix(d.Name(), ".new-") {
			t.Errorf("left behind: %s", path)
		}
		if d.IsDir() {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		var secret string
		switch {
		case strings.HasSuffix(path, ".nk"):
			secret = strings.TrimSpace(string(b))
		case strings.HasSuffix(path, ".creds"):
			kp, err := jwt.ParseDecoratedUserNKey(b)
			if err != nil {
				t.Errorf("%s: %v", path, err)
				return nil
			}
			seed, _ := kp.Seed()
			secret = string(seed)
		default:
			return nil
		}
		if secret == "" || strings.Contains(logs, secret) {
			t.Errorf("the log holds the seed of %s (or it is empty)", path)
		}
		return nil
	})
	if err != nil {
		t.Errorf("walking %s: %v", dir, err)
	}
}

// addTenant adds a tenant with the default limits.
func addTenant(t testing.TB, k *Keys, name string) (Tenant, string) {
	t.Helper()
	tn, token, err := k.AddTenant(name, DefaultLimits())
	if err != nil {
		t.Fatalf("AddTenant(%q): %v", name, err)
	}
	return tn, token
}

func pubOf(t testing.TB, path string) string {
	t.Helper()
	pub, err := publicKeyOf(path)
	if err != nil {
		t.Fatal(err)
	}
	return pub
}

func readString(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func decodeAccount(t testing.TB, token string) *jwt.AccountClaims {
	t.Helper()
	ac, err := jwt.DecodeAccountClaims(token)
	if err != nil {
		t.Fatalf("DecodeAccountClaims: %v", err)
	}
	return ac
}

// userOf decodes the user JWT of a credentials file.
func userOf(t testing.TB, creds []byte) *jwt.UserClaims {
	t.Helper()
	token, err := jwt.ParseDecoratedJWT(creds)
	if err != nil {
		t.Fatal(err)
	}
	uc, err := jwt.DecodeUserClaims(token)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := jwt.ParseDecoratedUserNKey(creds); err != nil {
		t.Fatalf("credentials hold no user seed: %v", err)
	}
	return uc
}

func validClaims(t testing.TB, c jwt.Claims) {
	t.Helper()
	vr := jwt.CreateValidationResults()
	c.Validate(vr)
	if errs := vr.Errors(); len(errs) > 0 {
		t.Errorf("claims do not validate: %v", errs)
	}
}
