package fleet

import (
	"path/filepath"
	"strings"

	"github.com/nats-io/jwt/v2"
)

// The key directory's layout. Changing a name strands existing directories.
const (
	operatorSeedFile    = "operator.nk"
	operatorJWTFile     = "operator.jwt"
	operatorSigningFile = "operator-signing.nk"
	enrollSeedFile      = "enroll.nk"
	accountsDir         = "accounts"
	accountSeedFile     = "account.nk"
	accountJWTFile      = "account.jwt"
	signingSeedFile     = "signing.nk"
	firmwareSeedFile    = "firmware.nk"
	adminCredsFile      = "admin.creds"
	devicesDir          = "devices"
	deviceJWTExt        = ".jwt"
	tokensDir           = "tokens"
	usedDir             = "used"
	removedDir          = "removed"
)

// Names inside the JWTs.
const (
	operatorName      = "canopy"
	systemAccountName = "SYS"
	adminUserName     = "canopy-admin"
	tenantTag         = "canopy-tenant"
	createdTagPrefix  = "created:" // + unix seconds; survives re-signing
	removedTagPrefix  = "removed:" // + unix seconds, on a tombstone
	deviceTagPrefix   = "tenant:"  // + tenant name (jwt lowercases tags)
)

// tokenPrefix starts every enrollment token: CNT1.<payload>.<signature>.
const tokenPrefix = "CNT1"

func usedTokensPath(dir string) string { return filepath.Join(dir, tokensDir, usedDir) }

// direction says whether a device may publish or subscribe to a subject.
type direction bool

const (
	publish   direction = true
	subscribe direction = false
)

// devicePermissionTable is every subject a device may use; {d} stands for
// the device's name. The leaf's defaults depend on each line, and the hub's
// JetStream assets (stream TELEMETRY, stream COMMANDS with one consumer per
// device, object store "firmware", buckets "fw-desired", "fw-status" and
// "devices") give them their meaning.
var devicePermissionTable = []struct {
	dir     direction
	subject string
}{
	{publish, "telemetry.{d}.>"},                                     // telemetry sync: readings into stream TELEMETRY
	{publish, jsAPI + "DIRECT.GET.TELEMETRY.telemetry.{d}.>"},        // duplicate check after long outages: what the hub already holds
	{publish, jsAPI + "CONSUMER.CREATE.COMMANDS.{d}.cmd.{d}.>"},      // downlink command consumer: create the device's durable
	{publish, jsAPI + "CONSUMER.INFO.COMMANDS.{d}"},                  // downlink command consumer: look it up
	{publish, jsAPI + "CONSUMER.MSG.NEXT.COMMANDS.{d}"},              // downlink command consumer: pull commands
	{publish, "$JS.ACK.COMMANDS.{d}.>"},                              // downlink command consumer: acknowledge them
	{publish, jsAPI + "DIRECT.GET.OBJ_firmware"},                     // firmware download: chunks of the "firmware" object store
	{publish, jsAPI + "DIRECT.GET.KV_fw-desired.$KV.fw-desired.{d}"}, // firmware desired version: read it
	{publish, jsAPI + "$KV.fw-status.{d}"},                           // firmware status: report progress (a KV put)
	{publish, "fw.events.{d}"},                                       // firmware status: events for the operator
	{publish, jsAPI + "$KV.devices.{d}"},                             // heartbeat: the device's entry in bucket "devices" (a KV put)
	{subscribe, "_INBOX.{d}.>"},                                      // replies to all of the requests above
	{subscribe, "cmd.{d}.>"},                                         // downlink command consumer: commands addressed to the device
}

// JetStreamDomain is the domain devices address their tenant's JetStream
// by. nats-server refuses $JS.API.>, $KV.> and $OBJ.> from the leaf
// connections of an ordinary account (the leaf side may run a JetStream of
// its own), and offers the hub's JetStream to leaves under a domain's
// prefix instead. Each tenant account maps this domain's prefix onto its
// own JetStream, the way nats-server does for a hub configured with a
// domain, so devices reach it whatever the hub's own configuration.
const JetStreamDomain = "canopy"

// jsAPI is the API prefix devices use.
const jsAPI = "$JS." + JetStreamDomain + ".API."

// JetStreamMappings are the subject mappings, from the devices' domain
// prefix to the account's own JetStream, that every account devices use
// carries (as nats-server maps a configured domain).
func JetStreamMappings() map[string]string {
	m := map[string]string{}
	for from, to := range map[string]string{
		"INFO":       "$JS.API.INFO",
		"STREAM.>":   "$JS.API.STREAM.>",
		"CONSUMER.>": "$JS.API.CONSUMER.>",
		"DIRECT.>":   "$JS.API.DIRECT.>",
		"$KV.>":      "$KV.>",
		"$OBJ.>":     "$OBJ.>",
	} {
		m[jsAPI+from] = to
	}
	return m
}

func jetStreamMappings() jwt.Mapping {
	m := jwt.Mapping{}
	for from, to := range JetStreamMappings() {
		m[jwt.Subject(from)] = []jwt.WeightedMapping{{Subject: jwt.Subject(to), Weight: 100}}
	}
	return m
}

// DevicePermissions is what a device's user JWT allows: its own telemetry,
// commands, firmware and heartbeat subjects, and nothing of other devices.
func DevicePermissions(device string) jwt.Permissions {
	var p jwt.Permissions
	for _, e := range devicePermissionTable {
		s := strings.ReplaceAll(e.subject, "{d}", device)
		if e.dir == subscribe {
			p.Sub.Allow.Add(s)
			continue
		}
		p.Pub.Allow.Add(s)
		// nats-server checks a client's publish permissions on the subject
		// a mapping leads to: a device connected straight to the hub (not
		// through its leaf) needs the account-local form too.
		if local, ok := strings.CutPrefix(s, jsAPI); ok {
			if !strings.HasPrefix(local, "$KV.") {
				local = "$JS.API." + local
			}
			p.Pub.Allow.Add(local)
		}
	}
	return p
}

// ValidName reports whether s may name a tenant or a device: 1 to 64 of
// A-Z, a-z, 0-9, '_' and '-', not starting with '-'. Such a name is one
// token of a subject, a file name and a JetStream consumer name at once.
func ValidName(s string) bool {
	if len(s) < 1 || len(s) > 64 || s[0] == '-' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_', c == '-':
		default:
			return false
		}
	}
	return true
}
