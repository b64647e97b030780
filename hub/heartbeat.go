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
	nc, js, err := a.tenantJetStream(tenant)
	if err != nil {
		return nil, err
	}
	defer nc.Close()
	ctx, cancel := context.WithTimeout(ctx, adminTimeout)
	defer cancel()
	kv, err := tenantKV(ctx, js, tenant, DevicesBucket)
	if err != nil {
		return nil, err
	}
	entries, err := kvEntries(ctx, kv)
	if err != nil {
		return nil, fmt.Errorf("tenant %s: read %s: %w", tenant, DevicesBucket, err)
	}
	out := make(map[string]heartbeat.Document, len(entries))
	for _, e := range entries {
		var d heartbeat.Document
		if json.Unmarshal(e.Value(), &d) == nil {
			out[e.Key()] = d
		}
	}
	return out, nil
}
