package hub

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/canopy-iot/canopy/firmware"
	"github.com/canopy-iot/canopy/hub/fleet"
	"github.com/canopy-iot/canopy/internal/heartbeat"
)

// Admin is the operator's connection to a running hub, used by the
// provisioning commands: it pushes account JWTs to the cluster (through
// the system account, so every node's resolver stores them) and creates
// a tenant's JetStream assets inside the tenant's account.
type Admin struct {
	url  string
	tls  *tls.Config
	keys *fleet.Keys
}

// NewAdmin prepares an Admin for the hub at url (nats:// or tls://),
// authenticating with the key directory's credentials. tlsConf verifies
// the hub when its client listener uses TLS; nil uses the system's CAs.
func NewAdmin(url string, tlsConf *tls.Config, keys *fleet.Keys) *Admin {
	return &Admin{url: url, tls: tlsConf, keys: keys}
}

// adminTimeout bounds each exchange with the hub.
const adminTimeout = 10 * time.Second

func (a *Admin) connect(creds []byte, name string) (*nats.Conn, error) {
	userJWT, err := jwt.ParseDecoratedJWT(creds)
	if err != nil {
		return nil, fmt.Errorf("credentials: %w", err)
	}
	kp, err := jwt.ParseDecoratedUserNKey(creds)
	if err != nil {
		return nil, fmt.Errorf("credentials: %w", err)
	}
	opts := []nats.Option{
		nats.Name(name),
		nats.Timeout(adminTimeout),
		nats.NoReconnect(),
		nats.UserJWT(
			func() (string, error) { return userJWT, nil },
			func(nonce []byte) ([]byte, error) { return kp.Sign(nonce) },
		),
	}
	if a.tls != nil {
		opts = append(opts, nats.Secure(a.tls))
	}
	nc, err := nats.Connect(a.url, opts...)
	if err != nil {
		return nil, fmt.Errorf("connect to hub %s: %w", a.url, err)
	}
	return nc, nil
}

// PushAccount sends an account JWT to every node of the hub's cluster and
// returns how many nodes stored it. The account's connected users see
// the change at once: new limits apply, revoked users are disconnected.
func (a *Admin) PushAccount(accountJWT string) (int, error) {
	nc, err := a.connect(a.keys.SystemCreds(), "canopy-hub admin")
	if err != nil {
		return 0, err
	}
	defer nc.Close()
	// Each node with a full resolver answers; collect answers until a
	// short quiet period after the first.
	inbox := nats.NewInbox()
	sub, err := nc.SubscribeSync(inbox)
	if err != nil {
		return 0, fmt.Errorf("push account: %w", err)
	}
	if err := nc.PublishRequest("$SYS.REQ.CLAIMS.UPDATE", inbox, []byte(accountJWT)); err != nil {
		return 0, fmt.Errorf("push account: %w", err)
	}
	stored, wait := 0, adminTimeout
	for {
		msg, err := sub.NextMsg(wait)
		if errors.Is(err, nats.ErrTimeout) {
			if stored == 0 {
				return 0, errors.New("push account: no hub node answered (is the hub in operator mode, with this key directory?)")
			}
			return stored, nil
		}
		if err != nil {
			return stored, fmt.Errorf("push account: %w", err)
		}
		var resp struct {
			Data *struct {
				Code int `json:"code"`
			} `json:"data"`
			Error *struct {
				Description string `json:"description"`
			} `json:"error"`
		}
		if err := json.Unmarshal(msg.Data, &resp); err != nil {
			return stored, fmt.Errorf("push account: unreadable answer %q", msg.Data)
		}
		if resp.Error != nil {
			return stored, fmt.Errorf("push account: the hub refused it: %s", resp.Error.Description)
		}
		stored++
		wait = 500 * time.Millisecond
	}
}

// ClusterSize counts the nodes of the cluster the admin connection lands
// in, which decides the replicas of a tenant's streams.
func (a *Admin) ClusterSize() (int, error) {
	nc, err := a.connect(a.keys.SystemCreds(), "canopy-hub admin")
	if err != nil {
		return 0, err
	}
	defer nc.Close()
	inbox := nats.NewInbox()
	sub, err := nc.SubscribeSync(inbox)
	if err != nil {
		return 0, err
	}
	if err := nc.PublishRequest("$SYS.REQ.SERVER.PING", inbox, nil); err != nil {
		return 0, err
	}
	cluster := nc.ConnectedClusterName()
	n, wait := 0, adminTimeout
	for {
		msg, err := sub.NextMsg(wait)
		if err != nil {
			if n == 0 {
				return 0, fmt.Errorf("count hub nodes: %w", err)
			}
			return n, nil
		}
		var ping struct {
			Server struct {
				Cluster string `json:"cluster"`
			} `json:"server"`
		}
		if json.Unmarshal(msg.Data, &ping) == nil && ping.Server.Cluster == cluster {
			n++
		}
		wait = 500 * time.Millisecond
	}
}

// Tenant JetStream assets. The names are what devices' permissions and
// the leaf's defaults expect (see fleet.DevicePermissions).
const (
	TelemetryStream = "TELEMETRY"
	CommandStream   = "COMMANDS"
	FirmwareBucket  = firmware.Bucket         // Object Store: artifacts and manifests
	DesiredBucket   = firmware.DesiredBucket  // KV: the firmware each device should run
	StatusBucket    = firmware.StatusBucket   // KV: each device's firmware state
	RolloutsBucket  = firmware.RolloutsBucket // KV: rollouts, kept by the hub
	DevicesBucket   = heartbeat.Bucket        // KV: each device's heartbeat
	DuplicateWindow = 2 * time.Minute
)

// EnsureTenantAssets creates what a tenant's devices use, in the tenant's
// account, where missing: the telemetry and command streams, the firmware
// Object Store bucket and the KV buckets. replicas is 3 on a cluster of
// three nodes or more, else 1. It waits (up to a bound) for the account,
// just pushed, to have JetStream on.
func (a *Admin) EnsureTenantAssets(ctx context.Context, tenant string, replicas int) error {
	creds, err := a.keys.AdminCreds(tenant, 5*time.Minute)
	if err != nil {
		return err
	}
	nc, err := a.connect(creds, "canopy-hub admin "+tenant)
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		_, err := js.AccountInfo(ctx)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return fmt.Errorf("tenant %s: JetStream not available in its account: %w", tenant, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	streams := []jetstream.StreamConfig{
		{
			Name:        TelemetryStream,
			Description: "device telemetry: telemetry.<device>.<local subject>",
			Subjects:    []string{"telemetry.>"},
			Replicas:    replicas,
			Duplicates:  DuplicateWindow,
			AllowDirect: true, // devices read their own last message (duplicate check)
			Storage:     jetstream.FileStorage,
		},
		{
			Name:        CommandStream,
			Description: "commands waiting for devices: cmd.<device>.>",
			Subjects:    []string{"cmd.>"},
			Replicas:    replicas,
			Duplicates:  DuplicateWindow,
			Storage:     jetstream.FileStorage,
		},
	}
	for _, sc := range streams {
		if _, err := js.CreateStream(ctx, sc); err != nil && !errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			return fmt.Errorf("tenant %s: create stream %s: %w", tenant, sc.Name, err)
		}
	}
	for _, kv := range []jetstream.KeyValueConfig{
		{Bucket: DesiredBucket, Description: "firmware each device should run", Replicas: replicas},
		{Bucket: StatusBucket, Description: "firmware state of each device", Replicas: replicas},
		{Bucket: RolloutsBucket, Description: "firmware rollouts", Replicas: replicas},
		{Bucket: DevicesBucket, Description: "device heartbeats", Replicas: replicas},
	} {
		if _, err := js.CreateKeyValue(ctx, kv); err != nil && !errors.Is(err, jetstream.ErrBucketExists) {
			return fmt.Errorf("tenant %s: create KV bucket %s: %w", tenant, kv.Bucket, err)
		}
	}
	_, err = js.CreateObjectStore(ctx, jetstream.ObjectStoreConfig{Bucket: FirmwareBucket, Description: "firmware artifacts and manifests", Replicas: replicas})
	if err != nil && !errors.Is(err, jetstream.ErrBucketExists) {
		return fmt.Errorf("tenant %s: create object store %s: %w", tenant, FirmwareBucket, err)
	}
	return nil
}
