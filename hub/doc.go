// Package hub runs Canopy's datacenter node: the real nats-server, embedded
// and configured from Canopy's hub configuration.
//
// It is the only package that imports nats-server. It owns the mapping from
// Config to nats-server options (listeners, cluster, gateways, JetStream,
// leafnodes, TLS, accounts), the adapter that routes nats-server's logs into
// log/slog and turns its fatal errors into error returns, and the Hub
// lifecycle (Run, Ready, Reload, graceful and lame-duck shutdown).
//
// It is imported by appliance (and tests); it must never import leaf.
package hub
