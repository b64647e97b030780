package firmware

import (
	"encoding/json"
	"time"
)

// DefaultChunkSize is the chunk size of published artifacts: small enough
// that a cut link loses little, large enough that per-chunk overhead
// (one request, one hash) stays small.
const DefaultChunkSize = 128 << 10

// ManifestSuffix names a manifest's object beside its artifact's.
const ManifestSuffix = ".manifest"

// Manifest describes one artifact. It is what the signature covers.
type Manifest struct {
	Name     string `json:"name"`     // e.g. "canopy-leaf" or "sensor-fw"
	Version  string `json:"version"`  // e.g. "1.4.0"
	Platform string `json:"platform"` // GOOS/GOARCH, e.g. "linux/arm64", or "any"
	Size     int64  `json:"size"`     // bytes
	SHA256   string `json:"sha256"`   // hex digest of the whole artifact
	// ChunkSize is the size of every chunk but the last.
	ChunkSize int `json:"chunk_size"`
	// Chunks are the hex SHA-256 digests of the chunks, in order.
	Chunks []string `json:"chunks"`
	// Object is the artifact's object name in the tenant's bucket, and
	// Seqs the stream sequence of each chunk's message there.
	Object  string    `json:"object"`
	Seqs    []uint64  `json:"seqs"`
	Created time.Time `json:"created"`
	Notes   string    `json:"notes,omitempty"`
}

// Signed is a manifest as stored and sent: the manifest's JSON exactly
// as signed, the signer's public key (an nkeys public key) and the
// Ed25519 signature over those JSON bytes, base64 (standard, padded).
type Signed struct {
	Manifest  json.RawMessage `json:"manifest"`
	Signer    string          `json:"signer"`
	Signature string          `json:"signature"`
}

// Desired is what a device should run: the value of its key in the
// "fw-desired" KV bucket, written by the hub's rollout.
type Desired struct {
	Rollout string `json:"rollout"` // the rollout's id
	// Manifest is the signed manifest (a Signed document); the device
	// trusts nothing in it before verifying it.
	Manifest json.RawMessage `json:"manifest"`
	// Install false means download only: stage the artifact and report
	// "staged"; a later Desired with Install true applies it.
	Install bool `json:"install"`
	// Window, when set, is the daily maintenance window (device local
	// time, "HH:MM-HH:MM", may wrap midnight) outside of which the
	// device downloads but does not apply.
	Window string `json:"window,omitempty"`
}

// State is where a device is with a firmware.
type State string

const (
	StatePending     State = "pending"
	StateDownloading State = "downloading"
	StateVerifying   State = "verifying"
	StateStaged      State = "staged"
	StateApplying    State = "applying"
	StateApplied     State = "applied"
	StateFailed      State = "failed"
	StateRolledBack  State = "rolled-back"
)

// Status is a device's firmware report: its key in the "fw-status" KV
// bucket and the payload of fw.events.<device>.
type Status struct {
	Device   string `json:"device"`
	Rollout  string `json:"rollout,omitempty"`
	Name     string `json:"name,omitempty"`
	Version  string `json:"version,omitempty"` // the version this status is about
	State    State  `json:"state"`
	Progress int    `json:"progress"` // percent downloaded, 0-100
	Bytes    int64  `json:"bytes"`    // bytes fetched from the hub for this version
	Reason   string `json:"reason,omitempty"`
	// Running is the version running now (of Name), "" when unknown.
	Running string    `json:"running,omitempty"`
	Updated time.Time `json:"updated"`
}

// Subjects and buckets (per tenant account).
const (
	Bucket         = "firmware"    // Object Store
	DesiredBucket  = "fw-desired"  // KV
	StatusBucket   = "fw-status"   // KV
	RolloutsBucket = "fw-rollouts" // KV
	EventsPrefix   = "fw.events."  // + device
)
