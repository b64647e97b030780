package hub

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

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
	out := map[string]T{}
	err := a.readTenantKV(ctx, tenant, bucket, func(ctx context.Context, kv jetstream.KeyValue) error {
		entries, err := kvEntries(ctx, kv)
		if err != nil {
			return fmt.Errorf("tenant %s: read %s: %w", tenant, bucket, err)
		}
		for _, e := range entries {
			var v T
			if json.Unmarshal(e.Value(), &v) == nil {
				out[e.Key()] = v
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
