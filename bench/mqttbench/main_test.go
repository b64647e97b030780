package main

import (
	"errors"
	"reflect"
	"sync/atomic"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

func TestUsage(t *testing.T) {
	for _, args := range [][]string{
		nil,
		{"nope"},
		{"pubsub", "extra"},
		{"pubsub", "-qos", "3"},
		{"pubsub", "-size", "10"},
		{"pubsub", "-msgs", "0", "-duration", "0s"},
		{"pubsub", "-pubs", "0"},
		{"pubsub", "-inflight", "0"},
		{"pubsub", "-url", "mqtt://127.0.0.1:1883"},
		{"pubsub", "-keepalive", "1500ms"},
		{"latency", "-rate", "0"},
		{"idle", "-conns", "0"},
		{"idle", "-sources", "255"},
	} {
		if _, err := mqttbench(t, args...); !errors.Is(err, errUsage) {
			t.Errorf("mqttbench %q: got %v, want a usage error", args, err)
		}
	}
}

// message is a received message as Paho hands it to a handler.
type message struct{ payload []byte }

func (message) Duplicate() bool   { return false }
func (message) Qos() byte         { return 1 }
func (message) Retained() bool    { return false }
func (message) Topic() string     { return pubsubTopic }
func (message) MessageID() uint16 { return 1 }
func (m message) Payload() []byte { return m.payload }
func (message) Ack()              {}

var _ mqtt.Message = message{}

// TestSubscriberAccounting feeds a subscriber what a broker could deliver
// and checks that every kind of mistake is counted, and nothing else.
func TestSubscriberAccounting(t *testing.T) {
	const size = 32
	data := func(pub uint32, seq uint64) []byte {
		return newPayload(size, header{kind: kindData, pub: pub, seq: seq})
	}
	end := func(pub uint32, n uint64) []byte {
		return newPayload(headerSize, header{kind: kindEnd, pub: pub, seq: n})
	}
	// all is everything two publishers sent, 5 messages each, in order.
	all := func() [][]byte {
		var ms [][]byte
		for p := range uint32(2) {
			for s := range uint64(5) {
				ms = append(ms, data(p, s))
			}
			ms = append(ms, end(p, 5))
		}
		return ms
	}
	without := func(ms [][]byte, i int) [][]byte { return append(ms[:i:i], ms[i+1:]...) }
	with := func(ms [][]byte, i int, m []byte) [][]byte {
		return append(ms[:i:i], append([][]byte{m}, ms[i:]...)...)
	}
	swap := func(ms [][]byte, i, j int) [][]byte { ms[i], ms[j] = ms[j], ms[i]; return ms }

	tests := []struct {
		name string
		msgs [][]byte
		want subResult // counts only
	}{
		{"everything, once, in order", all(), subResult{received: 10}},
		{"one lost", without(all(), 8), subResult{received: 9, lost: 1}},
		{"one twice", with(all(), 3, data(0, 1)), subResult{received: 10, dups: 1}},
		{"an end marker twice", append(all(), end(1, 5)), subResult{received: 10, dups: 1}},
		{"two swapped", swap(all(), 1, 2), subResult{received: 10, reordered: 1}},
		{"one after its end marker", swap(all(), 4, 5), subResult{received: 10, reordered: 1}},
		{"an end marker lost", without(all(), 5), subResult{received: 10, unended: 1}},
		{"one more than was sent", with(all(), 5, data(0, 5)), subResult{received: 10, unexpected: 1}},
		{"not as sent", append(all(), data(0, 1)[:size-1], data(7, 0), []byte("short"), append(data(1, 0)[:0:0], 9)),
			subResult{received: 10, malformed: 4}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var progress, ended atomic.Int64
			s := newSubscriber("subscriber", 2, size, &progress, &ended)
			for _, m := range tt.msgs {
				s.handle(nil, message{m})
			}
			got := s.result([]uint64{5, 5})
			got.first, got.last, got.latencies = time.Time{}, time.Time{}, nil
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
			if got.valid() != reflect.DeepEqual(tt.want, subResult{received: 10}) {
				t.Errorf("valid() = %v", got.valid())
			}
			if progress.Load() != int64(len(tt.msgs)) {
				t.Errorf("progress %d, want %d", progress.Load(), len(tt.msgs))
			}
		})
	}
}

func TestBitset(t *testing.T) {
	var b bitset
	for _, i := range []uint64{0, 63, 64, 1000, 5} {
		if b.testAndSet(i) {
			t.Errorf("%d: already there", i)
		}
	}
	if !b.testAndSet(1000) {
		t.Error("1000: not there after it was added")
	}
	for n, want := range map[uint64]uint64{0: 0, 1: 1, 6: 2, 63: 2, 64: 3, 65: 4, 1000: 4, 1001: 5, 1 << 20: 5} {
		if got := b.countBelow(n); got != want {
			t.Errorf("countBelow(%d) = %d, want %d", n, got, want)
		}
	}
	if b.count() != 5 {
		t.Errorf("count() = %d, want 5", b.count())
	}
}

func TestPercentile(t *testing.T) {
	var d []time.Duration
	for i := 1; i <= 100; i++ {
		d = append(d, time.Duration(i))
	}
	for p, want := range map[float64]time.Duration{0.5: 50, 0.9: 90, 0.99: 99, 1: 100, 0: 1} {
		if got := percentile(d, p); got != want {
			t.Errorf("percentile(%v) = %v, want %v", p, got, want)
		}
	}
}
