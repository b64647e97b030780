package main

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// reading is what a sensor publishes. N numbers its readings from 1, so
// that the hub's copy can be matched with what the sensor had
// acknowledged.
type reading struct {
	Sensor string  `json:"sensor"`
	N      uint64  `json:"n"`
	Value  float64 `json:"value"`
	Unit   string  `json:"unit"`
}

// ackTimeout bounds the wait for one PUBACK; a reading without one in
// time is not counted as promised.
const ackTimeout = 10 * time.Second

// sensor is a simulated MQTT sensor on a leaf: QoS 1 readings on
// sensors/<name> at a steady rate. It keeps the numbers of the readings
// the leaf acknowledged: those the system promised to deliver.
type sensor struct {
	device, name, unit string
	client             paho.Client
	interval           time.Duration
	base, swing        float64

	mu       sync.Mutex
	acked    []uint64 // ascending
	nAcked   atomic.Uint64
	unacked  atomic.Uint64 // refused or timed out
	stopOnce sync.Once
	quit     chan struct{}
	done     chan struct{}
}

// startSensor connects a sensor to the leaf's MQTT listener at addr and
// starts publishing rate readings per second.
func startSensor(device, name, unit, addr string, rate float64, base, swing float64) (*sensor, error) {
	opts := paho.NewClientOptions().
		AddBroker("tcp://" + addr).
		SetClientID(device + "-" + name).
		SetCleanSession(true).
		SetAutoReconnect(false).
		SetConnectTimeout(10 * time.Second)
	c := paho.NewClient(opts)
	tok := c.Connect()
	if !tok.WaitTimeout(startTimeout) {
		c.Disconnect(0)
		return nil, fmt.Errorf("sensor %s/%s: no CONNACK from %s within %v", device, name, addr, startTimeout)
	}
	if err := tok.Error(); err != nil {
		return nil, fmt.Errorf("sensor %s/%s: connect to %s: %w", device, name, addr, err)
	}
	s := &sensor{
		device: device, name: name, unit: unit, client: c,
		interval: time.Duration(float64(time.Second) / rate),
		base:     base, swing: swing,
		quit: make(chan struct{}), done: make(chan struct{}),
	}
	go s.run()
	return s, nil
}

func (s *sensor) run() {
	defer close(s.done)
	t := time.NewTicker(s.interval)
	defer t.Stop()
	topic := "sensors/" + s.name
	phase := rand.Float64() * 2 * math.Pi
	for n := uint64(1); ; n++ {
		select {
		case <-s.quit:
			return
		case <-t.C:
		}
		v := s.base + s.swing*math.Sin(phase+float64(n)/50) + rand.NormFloat64()*s.swing/20
		payload, _ := json.Marshal(reading{Sensor: s.name, N: n, Value: math.Round(v*10) / 10, Unit: s.unit})
		tok := s.client.Publish(topic, 1, false, payload)
		if tok.WaitTimeout(ackTimeout) && tok.Error() == nil {
			s.mu.Lock()
			s.acked = append(s.acked, n)
			s.mu.Unlock()
			s.nAcked.Add(1)
		} else {
			s.unacked.Add(1)
		}
	}
}

// stop ends the publishing (after the reading in flight) and disconnects.
func (s *sensor) stop() {
	s.stopOnce.Do(func() {
		close(s.quit)
		<-s.done
		s.client.Disconnect(250)
	})
}

// ackedReadings are the numbers of the acknowledged readings, ascending.
func (s *sensor) ackedReadings() []uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]uint64(nil), s.acked...)
}
