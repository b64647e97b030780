package hub

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/canopy-iot/canopy/internal/heartbeat"
)

// Heartbeats reads every device's last heartbeat (bucket "devices"), by
// device, with the time the hub received it. Unreadable entries are left
// out.
func (a *Admin) Heartbeats(ctx context.Context, tenant string) (map[string]heartbeat.Document, error) {
	return readBucket(ctx, a, tenant, DevicesBucket, func(d *heartbeat.Document, e jetstream.KeyValueEntry) {
		d.Received = e.Created()
	})
}

// readBucket reads every JSON document of a tenant's KV bucket, by key;
// fill, when not nil, adds what the entry itself tells. Entries that do
// not decode as T are left out.
func readBucket[T any](ctx context.Context, a *Admin, tenant, bucket string, fill func(*T, jetstream.KeyValueEntry)) (map[string]T, error) {
	out := map[string]T{}
	err := a.readTenantKV(ctx, tenant, bucket, func(ctx context.Context, kv jetstream.KeyValue) error {
		entries, err := kvEntries(ctx, kv)
		if err != nil {
			return fmt.Errorf("tenant %s: read %s: %w", tenant, bucket, err)
		}
		for _, e := range entries {
			var v T
			if json.Unmarshal(e.Value(), &v) == nil {
				if fill != nil {
					fill(&v, e)
				}
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
