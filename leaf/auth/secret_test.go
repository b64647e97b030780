package auth

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/canopy-iot/canopy/internal/wait"
)

// countBcrypt counts bcrypt checks for the rest of the test; gate, when
// not nil, holds each check until it is closed.
func countBcrypt(t *testing.T, gate <-chan struct{}) *atomic.Int32 {
	var n atomic.Int32
	prev := compareHash
	compareHash = func(hash, password []byte) error {
		n.Add(1)
		if gate != nil {
			<-gate
		}
		return bcrypt.CompareHashAndPassword(hash, password)
	}
	t.Cleanup(func() { compareHash = prev })
	return &n
}

func TestBcryptCache(t *testing.T) {
	n := countBcrypt(t, nil)
	a := mustNew(t, Config{Users: []UserConfig{
		{User: "a", Password: hash(t, "pw-a")},
		{User: "b", Password: hash(t, "pw-b")},
	}})
	steps := []struct {
		user, pass string
		ok         bool
		bcrypts    int32 // total so far
	}{
		{"a", "pw-a", true, 1},
		{"a", "pw-a", true, 1},   // remembered
		{"a", "wrong", false, 2}, // failures always pay
		{"a", "wrong", false, 3}, // and are not remembered
		{"a", "pw-a", true, 3},   // a failure does not evict the success
		{"b", "pw-a", false, 4},  // remembered per user
		{"b", "pw-b", true, 5},
		{"b", "pw-b", true, 5},
		{"a", "pw-b", false, 6},
	}
	for i, s := range steps {
		_, err := a.Authenticate(Credentials{User: s.user, Pass: s.pass}, "")
		if (err == nil) != s.ok {
			t.Fatalf("step %d: %s/%s: err %v", i, s.user, s.pass, err)
		}
		if got := n.Load(); got != s.bcrypts {
			t.Fatalf("step %d: %d bcrypt checks so far, want %d", i, got, s.bcrypts)
		}
	}

	// A new Authenticator starts with an empty cache.
	b := mustNew(t, Config{Users: []UserConfig{{User: "a", Password: hash(t, "pw-a")}}})
	if _, err := b.Authenticate(Credentials{User: "a", Pass: "pw-a"}, ""); err != nil {
		t.Fatal(err)
	}
	if got := n.Load(); got != 7 {
		t.Fatalf("%d bcrypt checks, want 7", got)
	}
}

func TestBcryptTokenCache(t *testing.T) {
	n := countBcrypt(t, nil)
	a := mustNew(t, Config{Token: hash(t, "tok")})
	for range 3 {
		if _, err := a.Authenticate(Credentials{AuthToken: "tok"}, ""); err != nil {
			t.Fatal(err)
		}
	}
	if got := n.Load(); got != 1 {
		t.Fatalf("%d bcrypt checks, want 1", got)
	}
}

// TestBcryptStorm: clients reconnecting at once with one user's password
// share a single bcrypt check, right or wrong.
func TestBcryptStorm(t *testing.T) {
	for _, pass := range []string{"pw", "wrong"} {
		t.Run(pass, func(t *testing.T) {
			gate := make(chan struct{})
			n := countBcrypt(t, gate)
			a := mustNew(t, Config{Users: []UserConfig{{User: "a", Password: hash(t, "pw")}}})
			bs := a.users["a"].secret.bcrypt

			const clients = 20
			results := make(chan error, clients)
			var wg sync.WaitGroup
			for range clients {
				wg.Go(func() {
					_, err := a.Authenticate(Credentials{User: "a", Pass: pass}, "")
					results <- err
				})
			}
			wait.For(t, 5*time.Second, func() error {
				bs.mu.Lock()
				defer bs.mu.Unlock()
				waiting := 0
				for _, at := range bs.inflight {
					waiting += at.waiters
				}
				if waiting != clients-1 {
					return fmt.Errorf("%d clients waiting for the running check", waiting)
				}
				return nil
			})
			close(gate)
			wg.Wait()
			close(results)
			for err := range results {
				if (err == nil) != (pass == "pw") {
					t.Errorf("Authenticate: %v", err)
				}
			}
			if got := n.Load(); got != 1 {
				t.Errorf("%d bcrypt checks, want 1", got)
			}
		})
	}
}

func TestIsBcrypt(t *testing.T) {
	tests := []struct {
		s    string
		want bool
	}{
		{"$2a$10$abc", true},
		{"$2b$04$", true},
		{"$2x$11$", true},
		{"$2y$12$", true},
		{"$2c$10$", false},
		{"$2a$1$x", false},
		{"$2a$ab$", false},
		{"$2a10$", false},
		{"2a$10$xx", false},
		{"password", false},
		{"", false},
	}
	for _, tt := range tests {
		if got := isBcrypt(tt.s); got != tt.want {
			t.Errorf("isBcrypt(%q) = %v", tt.s, got)
		}
	}
}
