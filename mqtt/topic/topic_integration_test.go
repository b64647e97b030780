package topic

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// These tests compare the mapping with a real nats-server: what it publishes
// an MQTT topic on, what topic it delivers a NATS subject on, and what it
// subscribes to for a filter.

// waitTimeout bounds every wait for an event from the servers.
const waitTimeout = 10 * time.Second

// natsServerPublishes has the topics of refusedTopics that nats-server
// accepts, with the subjects it publishes them on. It refuses the others,
// closing the connection.
var natsServerPublishes = map[string]string{
	"a/\v":       "a.\v",
	"a\u00a0b":   "a\u00a0b",
	"a\u0085b":   "a\u0085b",
	"a/b/\u2028": "a.b.\u2028",
	"\u3000":     "\u3000",
	"a/*":        "a.*", // a wildcard subject
	">":          ">",
	"a/>/b":      "a.>.b", // not even a valid NATS subject
}

// natsServerSubscribes has the filters of refusedFilters that nats-server
// accepts, with the subjects it subscribes to. It answers the others with a
// SUBACK failure, except those paho refuses to send.
var natsServerSubscribes = map[string][]string{
	"a+/b": {"a*.b"}, // literal in NATS: matches only the topic "a*/b"
	"a/b#": {"a.b>"},
	"a/*":  {"a.*"}, // a NATS wildcard: matches "a/x"
}

// subackFailure is the SUBACK return code for a refused filter.
const subackFailure = 0x80

// pahoRefuses are filters of refusedFilters that paho will not send.
var pahoRefuses = []string{"", "a/#/b", "#/"}

func TestIntegrationSubjectMatchesNATSServer(t *testing.T) {
	s := startNATSServer(t)
	received := make(chan *nats.Msg, 4096)
	nc := natsConnect(t, s)
	if _, err := nc.ChanSubscribe(">", received); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}

	// Topics nats-server refuses: each closes its connection.
	for _, tc := range refusedTopics {
		if _, ok := natsServerPublishes[tc.in]; ok || len(tc.in) > MaxLen {
			continue
		}
		lost := make(chan error, 1)
		c := mqttConnect(t, s, func(o *paho.ClientOptions) {
			o.SetConnectionLostHandler(func(_ paho.Client, err error) { lost <- err })
		})
		wait(t, c.Publish(tc.in, 0, false, "refused"))
		select {
		case <-lost:
		case <-time.After(waitTimeout):
			t.Errorf("nats-server accepted a publish to %q, which Subject refuses as %s", tc.in, tc.msg)
		}
	}

	// Everything else on one connection, in order, then a fence.
	var topics []string
	for _, tc := range mappedTopics {
		topics = append(topics, tc.topic)
	}
	topics = append(topics, smallStrings("a/.", 5)...)
	for topic := range natsServerPublishes {
		topics = append(topics, topic)
	}
	c := mqttConnect(t, s, nil)
	for i, topic := range topics {
		wait(t, c.Publish(topic, 0, false, strconv.Itoa(i)))
	}
	wait(t, c.Publish("fence", 0, false, "fence"))

	got := make(map[int]string)
	for _, msg := range until(t, received, func(m *nats.Msg) bool { return m.Subject == "fence" }) {
		switch i, err := strconv.Atoi(string(msg.Data)); {
		case string(msg.Data) == "refused":
			t.Errorf("nats-server published a refused topic on %q", msg.Subject)
		case err == nil && i < len(topics):
			got[i] = msg.Subject
		}
	}
	for i, topic := range topics {
		natsSubject, ok := got[i]
		want, err := Subject(topic)
		switch {
		case !ok:
			t.Errorf("nats-server did not publish topic %q (Subject: %q, %v)", topic, want, err)
		case err == nil && natsSubject != want:
			t.Errorf("topic %q: nats-server publishes on %q, Subject maps to %q", topic, natsSubject, want)
		case err != nil && natsSubject != natsServerPublishes[topic]:
			t.Errorf("topic %q: nats-server publishes on %q, not %q as documented", topic, natsSubject, natsServerPublishes[topic])
		}
	}
}

func TestIntegrationTopicMatchesNATSServer(t *testing.T) {
	s := startNATSServer(t)
	type delivery struct{ topic, payload string }
	received := make(chan delivery, 4096)
	// One handler for all filters: paho would call each matching filter's
	// own handler, "#" included for "$SYS/x".
	c := mqttConnect(t, s, func(o *paho.ClientOptions) {
		o.SetDefaultPublishHandler(func(_ paho.Client, m paho.Message) {
			received <- delivery{m.Topic(), string(m.Payload())}
		})
	})
	// "#" does not match topics starting with '$'; nats-server refuses
	// filters on "$MQTT/", so subjects there are not tried.
	for _, filter := range []string{"#", "$SYS/#", "$/#"} {
		wait(t, c.Subscribe(filter, 0, nil))
	}

	var subjects []string
	for _, tc := range mappedTopics {
		if !strings.HasPrefix(tc.subject, "$MQTT") {
			subjects = append(subjects, tc.subject)
		}
	}
	subjects = append(subjects, smallStrings("a/.", 5)...)
	for _, tc := range refusedSubjects {
		// A PUB line longer than max_control_line (4 KiB) closes the connection.
		if len(tc.in) < 1024 {
			subjects = append(subjects, tc.in)
		}
	}
	nc := natsConnect(t, s)
	var sent []string // nats.go refuses to send some, e.g. "a b"
	for _, subject := range subjects {
		if err := nc.Publish(subject, []byte(strconv.Itoa(len(sent)))); err == nil {
			sent = append(sent, subject)
		}
	}
	if err := nc.Publish("fence", nil); err != nil {
		t.Fatal(err)
	}

	got := make(map[int][]string)
	for _, d := range until(t, received, func(d delivery) bool { return d.topic == "fence" }) {
		if i, err := strconv.Atoi(d.payload); err == nil && i < len(sent) {
			got[i] = append(got[i], d.topic)
		}
	}
	for i, subject := range sent {
		want, err := Topic(subject)
		switch topics := got[i]; {
		case len(topics) > 1:
			t.Errorf("subject %q delivered %d times: %q", subject, len(topics), topics)
		case err == nil && (len(topics) == 0 || topics[0] != want):
			t.Errorf("subject %q: nats-server delivers topics %q, Topic maps to %q", subject, topics, want)
		case err != nil && len(topics) == 1:
			// Topic refuses it, but nats-server delivers it: on a topic
			// whose subject is another one, or on no valid topic at all.
			if back, err := Subject(topics[0]); err == nil && back == subject {
				t.Errorf("subject %q: nats-server delivers it on %q, which maps back to it; Topic refuses it", subject, topics[0])
			}
			if slices.ContainsFunc(refusedSubjects, func(r refusal) bool { return r.in == subject }) {
				t.Logf("subject %q: Topic refuses it; nats-server delivers it on topic %q", subject, topics[0])
			}
		}
	}
}

func TestIntegrationSubjectsMatchNATSServer(t *testing.T) {
	s := startNATSServer(t)
	var filters []string
	for _, tc := range mappedFilters {
		filters = append(filters, tc.filter)
	}
	for _, tc := range refusedFilters {
		if !slices.Contains(pahoRefuses, tc.in) {
			filters = append(filters, tc.in)
		}
	}
	for _, filter := range filters {
		var id string
		c := mqttConnect(t, s, func(o *paho.ClientOptions) { id = o.ClientID })
		token := c.Subscribe(filter, 0, func(paho.Client, paho.Message) {})
		wait(t, token)
		var natsServer []string // nil for a SUBACK failure
		if qos := token.(*paho.SubscribeToken).Result()[filter]; qos != subackFailure {
			natsServer = subscriptions(t, s, id)
		}
		subjects, err := Subjects(filter)
		want := slices.Sorted(slices.Values(subjects))
		if err != nil {
			want = natsServerSubscribes[filter]
		}
		if !slices.Equal(natsServer, want) {
			t.Errorf("filter %q: nats-server subscribes to %q, want %q (Subjects: %v)", filter, natsServer, want, err)
		}
	}
}

// until returns what arrives on ch up to and excluding the first value for
// which last is true, failing t if that takes longer than waitTimeout.
func until[T any](t testing.TB, ch <-chan T, last func(T) bool) []T {
	t.Helper()
	var got []T
	timeout := time.After(waitTimeout)
	for {
		select {
		case v := <-ch:
			if last(v) {
				return got
			}
			got = append(got, v)
		case <-timeout:
			t.Fatalf("no fence after %v; %d values received", waitTimeout, len(got))
		}
	}
}

// subscriptions returns the sorted subjects of the MQTT client id's NATS
// subscriptions.
func subscriptions(t testing.TB, s *testServer, id string) []string {
	t.Helper()
	connz, err := s.Connz(&server.ConnzOptions{MQTTClient: id, Subscriptions: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(connz.Conns) != 1 {
		t.Fatalf("connz: %d connections for MQTT client %q, want 1", len(connz.Conns), id)
	}
	subs := slices.Clone(connz.Conns[0].Subs)
	slices.Sort(subs)
	return subs
}

// testServer is a nats-server with an MQTT listener.
type testServer struct {
	*server.Server
	mqttURL string
}

func startNATSServer(t testing.TB) *testServer {
	t.Helper()
	opts := &server.Options{
		ServerName: "topic-test",
		Host:       "127.0.0.1",
		Port:       -1, // 0 would mean 4222
		NoLog:      true,
		NoSigs:     true,
		JetStream:  true, // MQTT needs it
		StoreDir:   t.TempDir(),
		MQTT:       server.MQTTOpts{Host: "127.0.0.1", Port: -1},
	}
	s, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	s.Start()
	t.Cleanup(func() {
		s.Shutdown()
		s.WaitForShutdown()
	})
	if !s.ReadyForConnections(waitTimeout) {
		t.Fatal("nats-server not ready")
	}
	// nats-server writes the port it bound into opts.
	return &testServer{s, fmt.Sprintf("tcp://127.0.0.1:%d", opts.MQTT.Port)}
}

func natsConnect(t testing.TB, s *testServer) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(s.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

var clientSeq atomic.Int64

// mqttConnect connects a paho client to s, after configure (if not nil)
// has seen its options.
func mqttConnect(t testing.TB, s *testServer, configure func(*paho.ClientOptions)) paho.Client {
	t.Helper()
	o := paho.NewClientOptions().
		AddBroker(s.mqttURL).
		SetClientID(fmt.Sprintf("topic-test-%d", clientSeq.Add(1))).
		SetCleanSession(true).
		SetAutoReconnect(false).
		SetOrderMatters(true)
	if configure != nil {
		configure(o)
	}
	c := paho.NewClient(o)
	wait(t, c.Connect())
	t.Cleanup(func() { c.Disconnect(0) })
	return c
}

func wait(t testing.TB, token paho.Token) {
	t.Helper()
	if !token.WaitTimeout(waitTimeout) {
		t.Fatal("paho: timed out")
	}
	if err := token.Error(); err != nil {
		t.Fatal(err)
	}
}
