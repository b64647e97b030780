// Package wait polls a condition until it holds, for tests and for start-up
// code that has no event to wait on. Any package may import it.
package wait

import (
	"context"
	"fmt"
	"time"
)

// Interval between two checks of a condition.
const Interval = 20 * time.Millisecond

// Until calls cond every Interval until it returns nil, the timeout passes
// or ctx ends. The returned error wraps cond's last error.
func Until(ctx context.Context, timeout time.Duration, cond func() error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	t := time.NewTicker(Interval)
	defer t.Stop()
	for {
		err := cond()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("condition not met within %v: %w", timeout, err)
		case <-t.C:
		}
	}
}

// TB is the part of testing.TB that For needs.
type TB interface {
	Helper()
	Fatalf(format string, args ...any)
}

// For fails the test unless cond returns nil within timeout.
func For(t TB, timeout time.Duration, cond func() error) {
	t.Helper()
	if err := Until(context.Background(), timeout, cond); err != nil {
		t.Fatalf("%v", err)
	}
}
