package hub

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/canopy-iot/canopy/internal/heartbeat"
)

// Heartbeats reads every device's last heartbeat (bucket "devices"), by
// device. Unreadable entries are left out.
func (a *Admin) Heartbeats(ctx context.Context, tenant string) (map[string]heartbeat.Document, error) {
	return readBucket[heartbeat.Document](ctx, a, tenant, DevicesBucket)
}

// readBucket reads every JSON document of a tenant's KV bucket, by key.
// Entries that do not decode as T are left out.
func readBucket[T any](ctx context.Context, a *Admin, tenant, bucket string) (map[string]T, error) {
	nc, js, err := a.tenantJetStream(tenant)
	if err != nil {
		return nil, err
	}
	defer nc.Close()
	ctx, cancel := context.WithTimeout(ctx, adminTimeout)
	defer cancel()
	kv, err := tenantKV(ctx, js, tenant, bucket)
	if err != nil {
		return nil, err
	}
	entries, err := kvEntries(ctx, kv)
	if err != nil {
		return nil, fmt.Errorf("tenant %s: read %s: %w", tenant, bucket, err)
	}
	out := make(map[string]T, len(entries))
	for _, e := range entries {
		var v T
		if json.Unmarshal(e.Value(), &v) == nil {
			out[e.Key()] = v
		}
	}
	return out, nil
}
