// Package bench holds Canopy's process-level benchmark harness: the tools
// that measure canopy-leaf side by side with nats-server on one machine.
//
//   - run.sh builds every server under test and the load generator, runs
//     each case against each server in turn (fresh process, free port,
//     servers alternating run by run, several rounds) and prints a markdown
//     table of medians and ratios. docs/benchmarks.md says how to run it and
//     how to read it.
//   - natsbench is the load generator, written on nats.go: pub/sub
//     throughput and fan-out, queue groups, request/reply latency, and the
//     server's memory with idle clients.
//   - natsserver runs nats-server exactly as the version in go.mod (the one
//     canopy-hub embeds) with its default options, so it can be measured as
//     a process like the others.
//
// Nothing in the module imports these packages: they are never linked into
// canopy-hub or canopy-leaf. That is why natsserver may import nats-server
// here even though only hub does elsewhere. Go micro-benchmarks live in the
// packages they measure, not here.
package bench
