package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/canopy-iot/canopy/firmware"
	"github.com/canopy-iot/canopy/hub"
)

// deviceExpect is what one device promised to deliver.
type deviceExpect struct {
	// Sensors maps each sensor to the numbers of the readings the leaf
	// acknowledged to it, ascending.
	Sensors map[string][]uint64
	// LastSeq is the last sequence of the leaf's stream: the hub must
	// hold each of 1..LastSeq. 0 skips this check.
	LastSeq uint64
}

// telemetryReport is what checkTelemetry found.
type telemetryReport struct {
	Devices    int
	Acked      int            // readings the sensors had acknowledged
	HubMsgs    int            // messages of the devices in the hub stream
	PerDevice  map[string]int // HubMsgs by device
	Missing    int            // acknowledged readings the hub does not have
	Gaps       int            // leaf stream sequences the hub does not have
	Duplicated int            // extra copies: a reading, or a Nats-Msg-Id, seen again
	OutOfOrder int            // messages stored after a later one of the same device or sensor
	Unreadable int            // messages of the devices whose subject, id or payload is not the demo's
	Problems   []string
}

// maxProblems bounds the problems listed; the counters have the rest.
const maxProblems = 10

func (r *telemetryReport) problem(format string, args ...any) {
	if len(r.Problems) < maxProblems {
		r.Problems = append(r.Problems, fmt.Sprintf(format, args...))
	}
}

// OK reports whether every promise was kept.
func (r telemetryReport) OK() bool {
	return r.Missing == 0 && r.Gaps == 0 && r.Duplicated == 0 && r.OutOfOrder == 0 && r.Unreadable == 0
}

// readTimeout bounds reading the whole hub stream.
const readTimeout = 2 * time.Minute

// checkTelemetry reads the tenant's whole telemetry stream from the hub
// and checks it against what the devices promised: every acknowledged
// reading stored exactly once, and each device's messages (by its leaf
// stream sequence, from Nats-Msg-Id) and each sensor's readings stored in
// the order they were sent. Messages of other devices are ignored.
func checkTelemetry(ctx context.Context, js jetstream.JetStream, expect map[string]deviceExpect) (telemetryReport, error) {
	r := telemetryReport{Devices: len(expect), PerDevice: map[string]int{}}
	for _, e := range expect {
		for _, acked := range e.Sensors {
			r.Acked += len(acked)
		}
	}
	ctx, cancel := context.WithTimeout(ctx, readTimeout)
	defer cancel()
	st, err := js.Stream(ctx, hub.TelemetryStream)
	if err != nil {
		return r, fmt.Errorf("hub stream %s: %w", hub.TelemetryStream, err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		return r, fmt.Errorf("hub stream %s: %w", hub.TelemetryStream, err)
	}
	type readingKey struct {
		device, sensor string
		n              uint64
	}
	var (
		seenID      = map[string]bool{}
		seenReading = map[readingKey]bool{}
		seenSeq     = map[string]map[uint64]bool{}
		lastSeq     = map[string]uint64{} // per device
		lastN       = map[string]uint64{} // per device/sensor
	)
	check := func(subject, msgID string, payload []byte, streamSeq uint64) {
		tokens := strings.Split(subject, ".")
		if len(tokens) < 2 {
			return
		}
		device := tokens[1]
		if _, ok := expect[device]; !ok {
			return
		}
		r.HubMsgs++
		r.PerDevice[device]++
		prefix := device + "." + streamName + "."
		seq, err := strconv.ParseUint(strings.TrimPrefix(msgID, prefix), 10, 64)
		if len(tokens) != 4 || tokens[2] != streamName || !strings.HasPrefix(msgID, prefix) || err != nil {
			r.Unreadable++
			r.problem("hub message %d on %s (Nats-Msg-Id %q) is not a reading of the demo", streamSeq, subject, msgID)
			return
		}
		sensor := tokens[3]
		var rd reading
		if err := json.Unmarshal(payload, &rd); err != nil || rd.Sensor != sensor || rd.N == 0 {
			r.Unreadable++
			r.problem("hub message %d on %s: unreadable reading %.80q", streamSeq, subject, payload)
			return
		}
		if seenID[msgID] {
			r.Duplicated++
			r.problem("hub message %d: Nats-Msg-Id %s stored twice", streamSeq, msgID)
			return
		}
		seenID[msgID] = true
		if seenSeq[device] == nil {
			seenSeq[device] = map[uint64]bool{}
		}
		seenSeq[device][seq] = true
		key := readingKey{device, sensor, rd.N}
		if seenReading[key] {
			r.Duplicated++
			r.problem("hub message %d: %s's %s reading %d stored twice (the second as %s)", streamSeq, device, sensor, rd.N, msgID)
			return
		}
		seenReading[key] = true
		switch ds := device + "/" + sensor; {
		case seq <= lastSeq[device]:
			r.OutOfOrder++
			r.problem("hub message %d: %s's message %d stored after its message %d", streamSeq, device, seq, lastSeq[device])
		case rd.N <= lastN[ds]:
			r.OutOfOrder++
			r.problem("hub message %d: %s's %s reading %d stored after its reading %d", streamSeq, device, sensor, rd.N, lastN[ds])
		default:
			lastSeq[device], lastN[ds] = seq, rd.N
		}
	}

	if info.State.Msgs > 0 {
		oc, err := st.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
		if err != nil {
			return r, fmt.Errorf("read hub stream %s: %w", hub.TelemetryStream, err)
		}
		// Asking for exactly what is left: a fetch returns as soon as its
		// batch is full, or waits out its whole wait.
		for left := info.State.Msgs; left > 0; {
			batch, err := oc.Fetch(int(min(left, 1000)), jetstream.FetchMaxWait(10*time.Second))
			if err != nil {
				return r, fmt.Errorf("read hub stream %s: %w", hub.TelemetryStream, err)
			}
			for m := range batch.Messages() {
				meta, err := m.Metadata()
				if err != nil {
					return r, fmt.Errorf("read hub stream %s: %w", hub.TelemetryStream, err)
				}
				check(m.Subject(), m.Headers().Get(jetstream.MsgIDHeader), m.Data(), meta.Sequence.Stream)
				left--
				if meta.Sequence.Stream >= info.State.LastSeq {
					left = 0
				}
			}
			if err := batch.Error(); err != nil {
				return r, fmt.Errorf("read hub stream %s: %w", hub.TelemetryStream, err)
			}
			if ctx.Err() != nil {
				return r, fmt.Errorf("read hub stream %s: %w", hub.TelemetryStream, ctx.Err())
			}
		}
	}

	for _, device := range sortedKeys(expect) {
		e := expect[device]
		for _, sensor := range sortedKeys(e.Sensors) {
			for _, n := range e.Sensors[sensor] {
				if !seenReading[readingKey{device, sensor, n}] {
					r.Missing++
					r.problem("%s's %s reading %d was acknowledged but is not at the hub", device, sensor, n)
				}
			}
		}
		for seq := uint64(1); seq <= e.LastSeq; seq++ {
			if !seenSeq[device][seq] {
				r.Gaps++
				r.problem("%s stored message %d but the hub does not have it", device, seq)
			}
		}
	}
	return r, nil
}

// firmwareReport is what checkFirmware found.
type firmwareReport struct {
	Applied  int
	Devices  int
	Problems []string
}

// checkFirmware checks that every leaf reports the rollout applied to the
// hub and has the artifact installed.
func checkFirmware(ctx context.Context, admin *hub.Admin, rolloutID string, leaves []*leafNode, artifact []byte) (firmwareReport, error) {
	r := firmwareReport{Devices: len(leaves)}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	statuses, err := admin.FirmwareStatuses(ctx, tenantName)
	if err != nil {
		return r, fmt.Errorf("firmware statuses: %w", err)
	}
	for _, l := range leaves {
		s, ok := statuses[l.name]
		switch {
		case !ok:
			r.Problems = append(r.Problems, fmt.Sprintf("%s: no firmware status at the hub", l.name))
			continue
		case s.Rollout != rolloutID || s.State != firmware.StateApplied:
			r.Problems = append(r.Problems, fmt.Sprintf("%s: firmware status %s of rollout %q (%s), want applied of %q", l.name, s.State, s.Rollout, s.Reason, rolloutID))
			continue
		}
		got, err := os.ReadFile(l.fwPath)
		if err != nil {
			r.Problems = append(r.Problems, fmt.Sprintf("%s: reported applied, but: %v", l.name, err))
			continue
		}
		if !bytes.Equal(got, artifact) {
			r.Problems = append(r.Problems, fmt.Sprintf("%s: %s holds %d bytes that are not the firmware", l.name, l.fwPath, len(got)))
			continue
		}
		r.Applied++
	}
	return r, nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
