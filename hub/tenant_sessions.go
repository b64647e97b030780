package hub

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/canopy-iot/canopy/hub/fleet"
)

// sessionTiming is how a tenant's sessions are paced.
type sessionTiming struct {
	credsTTL time.Duration // lifetime of the admin credentials; renewed at 90%
	retry    time.Duration // first wait after a failed session; doubles up to maxRetry
	maxRetry time.Duration
}

// errCredsExpiring ends a session so that the next one connects with
// fresh credentials.
var errCredsExpiring = errors.New("admin credentials about to expire")

// errNoAdminCreds is the key directory refusing a tenant's admin
// credentials: the tenant is being removed, most likely, and the next
// tenant scan stops its worker.
var errNoAdminCreds = errors.New("no admin credentials")

// runTenantSessions runs session for tenant, as its administrator, until
// ctx ends: again after each end, at once when the session ended for
// errCredsExpiring (its renew time, given to it, has passed), else after
// a wait that doubles with each failure up to maxRetry and starts over
// once a session lasted longer than that. failed hears of every other
// error, and of credentials the key directory would not issue (a tenant
// being removed, most likely: the next tenant scan stops the worker).
// Credentials are kept across failed sessions: each issue is a line of
// the provisioning log.
func runTenantSessions(ctx context.Context, keys *fleet.Keys, tenant string, t sessionTiming,
	session func(ctx context.Context, creds []byte, renew time.Duration) error, failed func(error)) {
	var creds []byte
	var expires time.Time
	wait := t.retry
	for {
		var err error
		if creds == nil || time.Until(expires) < t.credsTTL/10 {
			if creds, err = keys.AdminCreds(tenant, t.credsTTL); err == nil {
				expires = time.Now().Add(t.credsTTL)
			} else {
				err = fmt.Errorf("%w: %w", errNoAdminCreds, err)
			}
		}
		if err == nil {
			start := time.Now()
			err = session(ctx, creds, time.Until(expires)-t.credsTTL/10)
			if time.Since(start) > t.maxRetry {
				wait = t.retry // it ran a while: not a failing loop
			}
		}
		if ctx.Err() != nil {
			return
		}
		if errors.Is(err, errCredsExpiring) {
			continue
		}
		if err != nil {
			failed(err)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = min(2*wait, t.maxRetry)
	}
}
