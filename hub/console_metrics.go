package hub

import (
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/canopy-iot/canopy/internal/version"
)

// The console's /metrics: nats-server's own figures, read from the
// embedded server, and the fleet model's per tenant, both at scrape time.
// Go runtime and process metrics come from client_golang's collectors.

const metricsPrefix = "canopy_hub_"

func metricDesc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(metricsPrefix+name, help, labels, nil)
}

var (
	mInfo             = metricDesc("info", "Always 1; the labels name the node and its versions.", "server_name", "version", "nats_version")
	mStart            = metricDesc("start_time_seconds", "When the embedded nats-server started, in unix seconds.")
	mClients          = metricDesc("connections", "Client connections open now.")
	mTotalConnections = metricDesc("connections_total", "Client connections accepted since start.")
	mRoutes           = metricDesc("routes", "Route connections to other nodes of the cluster.")
	mClusterSize      = metricDesc("cluster_size", "Nodes of the cluster this node sees, itself included.")
	mGateways         = metricDesc("gateways", "Outbound gateway connections to other clusters.")
	mLeafNodes        = metricDesc("leafnodes", "Leaf node connections (devices and other leaves).")
	mSubscriptions    = metricDesc("subscriptions", "Subscriptions registered now.")
	mInMsgs           = metricDesc("in_messages_total", "Messages received from clients, routes, gateways and leaf nodes.")
	mOutMsgs          = metricDesc("out_messages_total", "Messages sent to clients, routes, gateways and leaf nodes.")
	mInBytes          = metricDesc("in_bytes_total", "Payload bytes received.")
	mOutBytes         = metricDesc("out_bytes_total", "Payload bytes sent.")
	mSlowConsumers    = metricDesc("slow_consumers_total", "Connections closed for not reading fast enough.")
	mJSEnabled        = metricDesc("jetstream_enabled", "1 when JetStream runs on this node.")
	mJSMemory         = metricDesc("jetstream_memory_bytes", "JetStream memory storage used.")
	mJSStorage        = metricDesc("jetstream_storage_bytes", "JetStream file storage used.")
	mJSMemoryRes      = metricDesc("jetstream_memory_reserved_bytes", "JetStream memory storage reserved by stream limits.")
	mJSStorageRes     = metricDesc("jetstream_storage_reserved_bytes", "JetStream file storage reserved by stream limits.")
	mJSMemoryMax      = metricDesc("jetstream_memory_max_bytes", "JetStream memory storage limit of the node.")
	mJSStorageMax     = metricDesc("jetstream_storage_max_bytes", "JetStream file storage limit of the node.")
	mJSStreams        = metricDesc("jetstream_streams", "Streams on this node.")
	mJSConsumers      = metricDesc("jetstream_consumers", "Consumers on this node.")
	mJSMessages       = metricDesc("jetstream_messages", "Messages stored in the node's streams.")
	mJSBytes          = metricDesc("jetstream_message_bytes", "Bytes stored in the node's streams.")

	mDevices         = metricDesc("tenant_devices", "Devices of the tenant: provisioned and not revoked, or reporting.", "tenant")
	mDevicesOnline   = metricDesc("tenant_devices_online", "Devices whose last heartbeat is not overdue.", "tenant")
	mBacklogMsgs     = metricDesc("tenant_backlog_messages", "Messages waiting on the tenant's devices for the hub, as last reported.", "tenant")
	mBacklogBytes    = metricDesc("tenant_backlog_bytes", "Bytes waiting on the tenant's devices for the hub, as last reported.", "tenant")
	mDropped         = metricDesc("tenant_dropped_messages", "Messages the tenant's devices dropped from full streams, as last reported.", "tenant")
	mTelemetry       = metricDesc("tenant_telemetry_messages_total", "Telemetry messages of the tenant this node saw since start.", "tenant")
	mRollouts        = metricDesc("tenant_rollouts", "Rollouts of the tenant by state.", "tenant", "state")
	mRolloutDevices  = metricDesc("tenant_rollout_devices", "Devices of the tenant's running rollouts by outcome (queued, in-flight, succeeded, failed).", "tenant", "outcome")
	mScrapeDurationS = metricDesc("metrics_scrape_duration_seconds", "Time spent reading nats-server and the fleet for this scrape.")
)

var rolloutStates = []RolloutState{RolloutRunning, RolloutHalted, RolloutDone, RolloutCancelled}

// consoleCollector reads nats-server and the fleet model at scrape time.
type consoleCollector struct{ c *consoleServer }

// Describe names every metric, so that the per-tenant ones are known
// before the first tenant is.
func (cc *consoleCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{
		mInfo, mStart, mClients, mTotalConnections, mRoutes, mClusterSize, mGateways, mLeafNodes, mSubscriptions, mInMsgs, mOutMsgs, mInBytes, mOutBytes, mSlowConsumers, mJSEnabled, mJSMemory, mJSStorage, mJSMemoryRes, mJSStorageRes, mJSMemoryMax, mJSStorageMax, mJSStreams, mJSConsumers, mJSMessages, mJSBytes, mDevices, mDevicesOnline, mBacklogMsgs, mBacklogBytes, mDropped, mTelemetry, mRollouts, mRolloutDevices, mScrapeDurationS,
	} {
		ch <- d
	}
}

func (cc *consoleCollector) Collect(ch chan<- prometheus.Metric) {
	start := time.Now()
	c := cc.c
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}
	if v, err := c.ns.Varz(nil); err == nil {
		gauge(mInfo, 1, v.Name, version.Version, v.Version)
		gauge(mStart, float64(v.Start.UnixNano())/1e9)
		gauge(mClients, float64(v.Connections))
		counter(mTotalConnections, float64(v.TotalConnections))
		gauge(mRoutes, float64(v.Routes))
		gauge(mLeafNodes, float64(v.Leafs))
		gauge(mSubscriptions, float64(v.Subscriptions))
		counter(mInMsgs, float64(v.InMsgs))
		counter(mOutMsgs, float64(v.OutMsgs))
		counter(mInBytes, float64(v.InBytes))
		counter(mOutBytes, float64(v.OutBytes))
		counter(mSlowConsumers, float64(v.SlowConsumers))
	}
	gauge(mClusterSize, float64(clusterSize(c.ns)))
	gauge(mGateways, float64(c.ns.NumOutboundGateways()))
	collectJetStream(c.ns, gauge)
	if c.model != nil {
		c.model.collect(time.Now(), gauge, counter)
	}
	gauge(mScrapeDurationS, time.Since(start).Seconds())
}

func collectJetStream(ns *server.Server, gauge func(*prometheus.Desc, float64, ...string)) {
	js, err := ns.Jsz(nil)
	if err != nil || js.Disabled || !ns.JetStreamEnabled() {
		gauge(mJSEnabled, 0)
		return
	}
	gauge(mJSEnabled, 1)
	gauge(mJSMemory, float64(js.Memory))
	gauge(mJSStorage, float64(js.Store))
	gauge(mJSMemoryRes, float64(js.ReservedMemory))
	gauge(mJSStorageRes, float64(js.ReservedStore))
	gauge(mJSMemoryMax, float64(js.Config.MaxMemory))
	gauge(mJSStorageMax, float64(js.Config.MaxStore))
	gauge(mJSStreams, float64(js.Streams))
	gauge(mJSConsumers, float64(js.Consumers))
	gauge(mJSMessages, float64(js.Messages))
	gauge(mJSBytes, float64(js.Bytes))
}

// collect reports each tenant's figures at now.
func (m *consoleModel) collect(now time.Time, gauge, counter func(*prometheus.Desc, float64, ...string)) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for name, tv := range m.tenants {
		var online, backlogMsgs, backlogBytes, dropped float64
		ids := tv.deviceIDs()
		for _, id := range ids {
			doc, ok := tv.beats[id]
			if !ok {
				continue
			}
			if doc.Online(now) {
				online++
			}
			for _, s := range doc.Streams {
				backlogMsgs += float64(s.Msgs)
				backlogBytes += float64(s.Bytes)
				dropped += float64(s.Dropped)
			}
		}
		gauge(mDevices, float64(len(ids)), name)
		gauge(mDevicesOnline, online, name)
		gauge(mBacklogMsgs, backlogMsgs, name)
		gauge(mBacklogBytes, backlogBytes, name)
		gauge(mDropped, dropped, name)
		counter(mTelemetry, float64(tv.telemetryN), name)
		states := map[RolloutState]int{}
		outcomes := map[Outcome]int{}
		for _, r := range tv.rollouts {
			states[r.State]++
			if r.State != RolloutRunning {
				continue
			}
			p := r.Progress(tv.statuses)
			outcomes[OutcomeQueued] += p.Total - p.Assigned
			outcomes[OutcomeInFlight] += p.InFlight()
			outcomes[OutcomeSucceeded] += p.Succeeded
			outcomes[OutcomeFailed] += p.Failed
		}
		for _, s := range rolloutStates {
			gauge(mRollouts, float64(states[s]), name, string(s))
		}
		for _, o := range []Outcome{OutcomeQueued, OutcomeInFlight, OutcomeSucceeded, OutcomeFailed} {
			gauge(mRolloutDevices, float64(outcomes[o]), name, o.String())
		}
	}
}
