// Package firmware owns Canopy's firmware format: the manifest that
// describes an artifact chunk by chunk, its Ed25519 signature, and the
// documents the hub and the devices exchange about a rollout (what a
// device should run, what state it is in). It uses the standard library
// and nkeys only; the hub (publish, rollout) and the leaf's agent
// (firmware/agent) build on it.
//
// Where things live, per tenant (see hub.EnsureTenantAssets):
//
//   - the artifact: Object Store bucket "firmware", object
//     ObjectName(name, version, platform), stored in chunks of the
//     manifest's ChunkSize, so that chunk i is the stream message at
//     sequence Manifest.Seqs[i] of stream "OBJ_firmware" (devices fetch it
//     with a JetStream direct get by sequence and check it against
//     Manifest.Chunks[i]);
//   - the signed manifest: object ObjectName(...) + ManifestSuffix in the
//     same bucket (for the hub's listing), and inside each Desired
//     document (for devices);
//   - what a device should run: KV bucket "fw-desired", key <device>, a
//     Desired document;
//   - what a device reports: KV bucket "fw-status", key <device>, a Status
//     document, and the same document on subject fw.events.<device> at
//     every state change;
//   - rollouts: KV bucket "fw-rollouts", key <rollout id>, kept by the hub.
package firmware
