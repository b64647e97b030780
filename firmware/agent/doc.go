// Package agent is the device side of firmware delivery: it follows the
// device's desired firmware, downloads it chunk by chunk (resuming after a
// cut), verifies it, stages it and applies it through an installer,
// reporting every state change.
//
// The agent talks to the hub only through a Fetcher (the leaf implements
// it on its uplink), with the subjects a device's credentials allow (see
// hub/fleet.DevicePermissions), under the JetStream domain prefix the hub
// maps for devices: a direct get per chunk of the "firmware" Object
// Store, a direct get of its key of the "fw-desired" KV bucket (at start,
// at each connection and every Options.Poll: a leaf cannot watch a KV
// key), and publishes of its Status.
//
// Nothing from the hub is trusted before firmware.Verify accepted the
// signed manifest with one of the configured keys; every chunk is checked
// against the manifest as it arrives and the whole artifact once more
// before it is staged.
//
// On disk, under Config.Dir:
//
//	download/<name>/<version>.part   the artifact being downloaded
//	download/<name>/<version>.state  which chunks of it are verified
//	staged/<name>/<version>          a verified artifact waiting to be applied
//	installed/<name>/artifact        the applied artifact (chunk reuse, LAN serving)
//	installed/<name>/manifest.json   its signed manifest
//	installed/<name>/pending.json    an install that spans a restart
//	failed.json                      the last Desired that failed, not retried
//
// It imports firmware, internal/config and nkeys; leaf imports it. It
// must not import nats.go, nats-server or leaf.
package agent
