// Package bench holds Canopy's process-level benchmark harness: the tools
// that measure canopy-leaf side by side with nats-server (and, for MQTT,
// Mosquitto) on one machine.
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
//   - mqtt.sh measures MQTT brokers side by side: canopy-leaf's, Mosquitto
//     (Debian's package) and nats-server's MQTT listener (see below).
//   - firmware.sh measures a firmware rollout: one artifact from one hub to
//     N canopy-leaf processes, with total time, hub egress and the leaves'
//     RSS while they download, through fwbench (see below).
//   - durable.sh measures store-and-forward streams: acknowledged ingest
//     and disk writes per message against nats-server's JetStream (with
//     and without sync_interval: always), the drain of a backlog to the
//     hub against a stock nats-server leaf whose stream the hub sources,
//     and canopy-leaf's memory holding a large backlog, through
//     durablebench (see below).
//   - lib.sh holds the shell helpers the scripts source.
//   - natsbench is the load generator, written on nats.go: pub/sub
//     throughput and fan-out, queue groups, request/reply latency (each
//     also with the publisher or responder on the other side of a leafnode
//     link), the server's memory with idle clients, and a TCP proxy that
//     cuts and restores a leafnode link.
//   - mqttbench is the MQTT load generator, written on Eclipse Paho Go:
//     pub/sub throughput from P publishers to S subscribers, latency at a
//     fixed rate, and idle connections held while the broker's memory is
//     read. Every message is accounted for; `go run ./bench/mqttbench -h`
//     and its package doc say how.
//   - fwbench runs canopy-hub in operator mode in its own process and N
//     canopy-leaf processes with firmware agents, rolls a random artifact
//     out to all of them and samples their memory until every one applied
//     it (`go run ./bench/fwbench -h`; its package doc says how).
//   - durablebench is the store-and-forward load generator, written on
//     nats.go's jetstream package: acknowledged publishes with a window in
//     flight (every acknowledgement checked, the server's disk writes and
//     memory read from /proc), a backlog drained through a proxy it holds
//     closed, and nats-server run from a configuration file
//     (`go run ./bench/durablebench -h`).
//   - natsserver runs nats-server exactly as the version in go.mod (the one
//     canopy-hub embeds) with its default options, so it can be measured as
//     a process like the others; with flags it is the hub of uplink.sh, a
//     stock leaf node of it, or an MQTT broker for mqtt.sh.
//
// # MQTT
//
// Run it as the other scripts, from anywhere in the tree:
//
//	bench/mqtt.sh                   # 3 rounds of 10 s runs, 10,000 idle connections
//	bench/mqtt.sh -r 5              # more rounds (or ROUNDS=5)
//	bench/mqtt.sh -s leaf,mosquitto # only some brokers: leaf, nats, mosquitto (or SERVERS=…)
//	bench/mqtt.sh -c latency,idle   # only some cases (or CASES=…)
//	bench/mqtt.sh -n 2000           # idle connections (or IDLE_CONNS=…)
//	QUICK=1 bench/mqtt.sh           # smoke test: 1 s runs, 1,000 idle connections, 1 round
//
// A round is 15 runs of 10 s and 3 idle runs, plus start-ups and drains;
// the smoke test takes under a minute once built.
//
// The table goes to stdout, progress and every run's raw result line to
// stderr; a failed run keeps the brokers' logs. The brokers, each started
// fresh on free 127.0.0.1 ports for every run and alternating run by run:
//
//   - canopy-leaf run --config F, where F sets only version, server_name,
//     data_dir, nats.listen, mqtt.listen and mqtt.anonymous: always. If
//     canopy-leaf does not build, or `canopy-leaf check-config` rejects F,
//     its cells say "not available" and the others still run.
//   - nats-server (the go.mod version) through bench/natsserver -mqtt-port:
//     its MQTT needs JetStream and a server name, so JetStream is on with
//     its defaults, storing in the run's own directory.
//   - Mosquitto from Debian's mosquitto package (installed with apt-get
//     when the script runs as root): a listener on 127.0.0.1, anonymous
//     clients, set_tcp_nodelay true, persistence false, a log file, and
//     max_queued_messages 0. By default Mosquitto queues at most 1,000
//     messages per client: beyond that it drops QoS 1 and 2 messages, and
//     drops QoS 0 messages as soon as 1,000 packets wait to be written to
//     the client. A subscriber fed by 100 publishers is always that far
//     behind, so with its defaults Mosquitto loses most of the messages of
//     the 100-publisher QoS 0 case (about 90% in a trial) and the run
//     measures how fast it discards them. 0 lifts the limit, which is how
//     Mosquitto is run where messages matter. canopy-leaf and nats-server
//     run with their defaults: where they drop, the cell says so.
//
// The cases, every one a run of mqttbench with MQTT 3.1.1, clean sessions,
// 64-byte payloads and one topic:
//
//   - QoS 0 and QoS 1, 1 publisher → 1 subscriber: the broker's cost per
//     message on one connection each way; at QoS 1 also its PUBACK round
//     trips (each publisher keeps up to 20 messages unacknowledged, and
//     brokers bound what they have in flight to a subscriber: 20 for
//     Mosquitto).
//   - QoS 0 and QoS 1, 100 publishers → 1 subscriber: fan-in, as from many
//     sensors to one consumer: 100 connections to read, one to write.
//   - Each publisher publishes as fast as it can for 10 s, then the run
//     drains: the number is messages per second as received, from the
//     first to the last, so a backlog the broker built up counts against
//     it. Sent counts what the broker acknowledged (at QoS 0, what was
//     written to it); every message is accounted for by publisher and
//     sequence number, and a run that lost, duplicated or reordered any
//     shows "lost N" (or "dup N") in place of its rate: a broker that
//     drops messages must not look fast for it.
//   - latency p50 and p99: 1 publisher → 1 subscriber at QoS 0 at 2,000
//     messages per second, well below what any broker sustains, so that
//     nothing queues: the time from just before the publish to the
//     subscriber's handler, after 1,000 warm-up messages.
//   - RSS with 10,000 idle connections: the broker's VmRSS (from
//     /proc/PID/status) before any connection, then once every one of
//     10,000 connections (keepalive 60 s, nothing subscribed) has its
//     CONNACK; the difference divided by 10,000 is the memory one idle
//     connection costs. The script raises its open-file limit for them
//     (and spreads them over several 127.0.0.x source addresses if the
//     ephemeral port range is too small).
//
// As in the other scripts, the load generator shares the machine's CPUs
// with the broker, and Paho is not a fast client: absolute numbers measure
// Paho and the broker together, identically for every broker, so compare
// ratios from one run.
//
// Nothing in the module imports these packages: they are never linked into
// canopy-hub or canopy-leaf. That is why natsserver may import nats-server
// here even though only hub does elsewhere. Go micro-benchmarks live in the
// packages they measure, not here.
package bench
