package leaf_test

import (
	"context"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	"github.com/nats-io/nats.go"

	"github.com/canopy-iot/canopy/leaf"
	"github.com/canopy-iot/canopy/leaf/stream"
)

// v5Client is an MQTT 5 client (paho.golang) whose received publishes go
// to got.
type v5Client struct {
	*paho.Client
	got chan *paho.Publish
}

func connectV5(t *testing.T, addr, id string) *v5Client {
	t.Helper()
	return connectV5With(t, addr, id, nil)
}

func connectV5With(t *testing.T, addr, id string, props *paho.ConnectProperties) *v5Client {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c := &v5Client{got: make(chan *paho.Publish, 10000)}
	c.Client = paho.NewClient(paho.ClientConfig{
		ClientID: id,
		Conn:     conn,
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(r paho.PublishReceived) (bool, error) {
			c.got <- r.Packet
			return true, nil
		}},
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ack, err := c.Connect(ctx, &paho.Connect{ClientID: id, CleanStart: true, KeepAlive: 30, Properties: props})
	if err != nil || ack.ReasonCode != 0 {
		t.Fatalf("v5 connect %s: %v %+v", id, err, ack)
	}
	t.Cleanup(func() { c.Disconnect(&paho.Disconnect{}) })
	return c
}

func (c *v5Client) subscribe(t *testing.T, filter string, qos byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ack, err := c.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: filter, QoS: qos}}})
	if err != nil || len(ack.Reasons) != 1 || ack.Reasons[0] >= 0x80 {
		t.Fatalf("v5 subscribe %s: %v %+v", filter, err, ack)
	}
}

func (c *v5Client) publish(p *paho.Publish) (*paho.PublishResponse, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return c.Publish(ctx, p)
}

func (c *v5Client) next(t *testing.T) *paho.Publish {
	t.Helper()
	select {
	case p := <-c.got:
		return p
	case <-time.After(10 * time.Second):
		t.Fatal("no MQTT 5 message within 10s")
		return nil
	}
}

// MQTT 5 user properties are NATS headers, both ways, and the response
// topic is the reply subject.
func TestMQTT5PropertiesAreHeaders(t *testing.T) {
	n, _, _ := runLeaf(t, leafWithMQTT(nil))
	nc := natsConn(t, n)
	c := connectV5(t, n.MQTT().Addr(), "v5")

	sub, _ := nc.SubscribeSync("readings.>")
	nc.Flush()
	_, err := c.publish(&paho.Publish{Topic: "readings/t1", QoS: 1, Payload: []byte("20"),
		Properties: &paho.PublishProperties{User: paho.UserProperties{{Key: "unit", Value: "celsius"}}, ResponseTopic: "replies/v5"}})
	if err != nil {
		t.Fatal(err)
	}
	m, err := sub.NextMsg(5 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if m.Header.Get("unit") != "celsius" || m.Reply != "replies.v5" {
		t.Fatalf("NATS got header %v reply %q", m.Header, m.Reply)
	}

	c.subscribe(t, "orders/#", 1)
	out := nats.NewMsg("orders.42")
	out.Header.Set("priority", "high")
	out.Reply = "_INBOX.abc"
	out.Data = []byte("ship")
	nc.PublishMsg(out)
	p := c.next(t)
	if p.Topic != "orders/42" || p.Properties.User.Get("priority") != "high" || p.Properties.ResponseTopic != "_INBOX/abc" {
		t.Fatalf("MQTT 5 got %s %+v", p.Topic, p.Properties)
	}
}

// A publish the leaf cannot take is refused with a reason code, and the
// client carries on.
func TestMQTT5ReasonCodes(t *testing.T) {
	cfg := leafWithMQTT(func(c *leaf.Config) {
		c.Streams = []stream.Config{{Name: "tiny", Subjects: []string{"tiny.>"}, MaxMsgs: 1, Discard: "new"}}
	})
	n, logs, _ := runLeaf(t, cfg)
	c := connectV5(t, n.MQTT().Addr(), "v5")

	resp, _ := c.publish(&paho.Publish{Topic: "bad topic", QoS: 1, Payload: []byte("x")})
	if resp == nil || resp.ReasonCode != 0x90 {
		t.Fatalf("topic with a space: %+v, want reason 0x90 (topic name invalid)", resp)
	}
	if resp, err := c.publish(&paho.Publish{Topic: "tiny/1", QoS: 1, Payload: []byte("1")}); err != nil {
		t.Fatalf("first publish to a one-message stream: %v %+v", err, resp)
	}
	resp, _ = c.publish(&paho.Publish{Topic: "tiny/2", QoS: 2, Payload: []byte("2")})
	if resp == nil || resp.ReasonCode != 0x97 {
		t.Fatalf("publish to a full stream: %+v, want reason 0x97 (quota exceeded)", resp)
	}
	// Still connected and served.
	if _, err := c.publish(&paho.Publish{Topic: "fine", QoS: 1, Payload: []byte("ok")}); err != nil {
		t.Fatalf("after refusals: %v", err)
	}
	if err := logs.Contains("refused MQTT publish"); err != nil {
		t.Error(err)
	}
	if got := n.StreamStats("tiny").Msgs; got != 1 {
		t.Fatalf("stream holds %d messages, want 1", got)
	}
}

// A shared subscription is a member of the NATS queue group of its share
// name: two MQTT clients and one NATS queue subscriber split the messages,
// from both sides, none lost or doubled.
func TestMQTTSharedSubscriptionIsQueueGroup(t *testing.T) {
	n, _, _ := runLeaf(t, leafWithMQTT(nil))
	addr := n.MQTT().Addr()
	nc := natsConn(t, n)
	w1, w2 := connectV5(t, addr, "worker-1"), connectV5(t, addr, "worker-2")
	w1.subscribe(t, "$share/workers/jobs/+", 1)
	w2.subscribe(t, "$share/workers/jobs/+", 1)
	natsGot := make(chan string, 10000)
	nc.QueueSubscribe("jobs.*", "workers", func(m *nats.Msg) { natsGot <- string(m.Data) })
	// A plain MQTT subscriber sees every message once, beside the group.
	all := connectV5(t, addr, "auditor")
	all.subscribe(t, "jobs/#", 1)
	nc.Flush()

	pub := connectV5(t, addr, "producer")
	const each = 300
	for i := range each {
		nc.Publish(fmt.Sprintf("jobs.%d", i%7), []byte(fmt.Sprintf("nats-%d", i)))
		if _, err := pub.publish(&paho.Publish{Topic: fmt.Sprintf("jobs/%d", i%7), QoS: 1, Payload: []byte(fmt.Sprintf("mqtt-%d", i))}); err != nil {
			t.Fatal(err)
		}
	}
	seen := map[string]string{}
	var mu sync.Mutex
	count := map[string]int{}
	take := func(who, payload string) {
		mu.Lock()
		defer mu.Unlock()
		if prev, dup := seen[payload]; dup {
			t.Fatalf("%s received %s, already delivered to %s", who, payload, prev)
		}
		seen[payload] = who
		count[who]++
	}
	deadline := time.After(20 * time.Second)
	for len(seen) < 2*each {
		select {
		case p := <-w1.got:
			take("worker-1", string(p.Payload))
		case p := <-w2.got:
			take("worker-2", string(p.Payload))
		case s := <-natsGot:
			take("nats", s)
		case <-deadline:
			t.Fatalf("the group received %d of %d messages: %v", len(seen), 2*each, count)
		}
	}
	for _, who := range []string{"worker-1", "worker-2", "nats"} {
		if count[who] == 0 {
			t.Errorf("%s got none of %d messages: %v", who, 2*each, count)
		}
	}
	for range 2 * each {
		all.next(t)
	}
	// Anything more would be a double: a marker through the same paths.
	nc.Publish("jobs.marker", []byte("marker"))
	if p := all.next(t); string(p.Payload) != "marker" {
		t.Fatalf("the plain subscriber got %q more, want the marker", p.Payload)
	}
	select {
	case p := <-w1.got:
		if string(p.Payload) != "marker" {
			t.Fatalf("worker-1 got %q twice", p.Payload)
		}
	case p := <-w2.got:
		if string(p.Payload) != "marker" {
			t.Fatalf("worker-2 got %q twice", p.Payload)
		}
	case s := <-natsGot:
		if s != "marker" {
			t.Fatalf("nats got %q twice", s)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the group did not get the marker")
	}
}

// A client's receive maximum bounds the QoS 1 messages in flight to it,
// and the rest follow, in order, as it acknowledges: none stall, none are
// lost or doubled (mochi alone stalls here; see flowHook).
func TestMQTT5ReceiveMaximum(t *testing.T) {
	n, _, _ := runLeaf(t, leafWithMQTT(nil))
	nc := natsConn(t, n)
	window := uint16(5)
	c := connectV5With(t, n.MQTT().Addr(), "small-window", &paho.ConnectProperties{ReceiveMaximum: &window})
	c.subscribe(t, "window/#", 1)
	const total = 500
	for i := range total {
		nc.Publish("window.x", []byte(fmt.Sprint(i)))
	}
	for i := range total {
		if p := c.next(t); string(p.Payload) != fmt.Sprint(i) {
			t.Fatalf("message %d is %q", i, p.Payload)
		}
	}
}
