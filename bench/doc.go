// Package bench holds Canopy's process-level benchmark harness: the tools
// that measure canopy-leaf side by side with nats-server on one machine.
//
//   - run.sh builds every server under test and the load generator, runs
//     each case against each server in turn (fresh process, free port,
//     servers alternating run by run, several rounds) and prints a markdown
//     table of medians and ratios. docs/benchmarks.md says how to run it and
//     how to read it.
//   - uplink.sh does the same for the link to the hub: canopy-leaf and a
//     stock nats-server, each as a leaf node of a fresh hub, with traffic
//     across the link both ways, request/reply across it, and the time from
//     a cut link being restored to the first message delivered upstream.
//   - lib.sh holds the shell helpers both scripts source.
//   - natsbench is the load generator, written on nats.go: pub/sub
//     throughput and fan-out, queue groups, request/reply latency (each
//     also with the publisher or responder on the other side of a leafnode
//     link), the server's memory with idle clients, and a TCP proxy that
//     cuts and restores a leafnode link.
//   - natsserver runs nats-server exactly as the version in go.mod (the one
//     canopy-hub embeds) with its default options, so it can be measured as
//     a process like the others; with flags it is the hub of uplink.sh, or a
//     stock leaf node of it.
//
// Nothing in the module imports these packages: they are never linked into
// canopy-hub or canopy-leaf. That is why natsserver may import nats-server
// here even though only hub does elsewhere. Go micro-benchmarks live in the
// packages they measure, not here.
package bench
