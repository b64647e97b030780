package auth

import "time"

// ConfigKey is the key of [Config] in leaf.yaml. Validation errors name
// their settings below it, e.g. "authorization.users[2].nkey".
const ConfigKey = "authorization"

// Wire texts of the -ERR lines a server sends for this package's decisions,
// exactly as nats-server writes them (client.go: authViolation,
// pubPermissionViolation, subPermissionViolation). nats.go recognises them
// by their lower-cased prefixes, so they must not change.
const (
	authViolationText       = "Authorization Violation"
	pubViolationFormat      = "Permissions Violation for Publish to %q"
	subViolationFormat      = "Permissions Violation for Subscription to %q"
	subQueueViolationFormat = "Permissions Violation for Subscription to %q using queue %q"
)

// nonceRawLen is the number of random bytes in a nonce, as nats-server's
// nkey.go: nonceRawLen. RawURL base64 makes them 15 characters.
const nonceRawLen = 11

// ResponseTTL is how long a user with allow_responses may answer a request
// delivered to it: nats-server's DEFAULT_ALLOW_RESPONSE_EXPIRATION. As with
// nats-server's default (DEFAULT_ALLOW_RESPONSE_MAX_MSGS), one response per
// request is allowed.
const ResponseTTL = 2 * time.Minute

// Sizes of the bounded per-connection caches. pubCacheMax and cachePrune
// are nats-server's maxPermCacheSize and pruneSize; deliverCacheMax is its
// maxDenyPermCacheSize.
const (
	pubCacheMax     = 128
	deliverCacheMax = 256
	cachePrune      = 32
	// maxReplies caps the reply subjects remembered for allow_responses per
	// connection (nats-server prunes at replyPermLimit, 4096, too).
	maxReplies = 4096
)
