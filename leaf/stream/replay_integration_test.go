package stream_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/canopy-iot/canopy/internal/testlog"
	"github.com/canopy-iot/canopy/leaf"
	"github.com/canopy-iot/canopy/leaf/natsd"
	"github.com/canopy-iot/canopy/leaf/stream"
)

// readAll sends a replay request and collects the answer up to its end
// (or an error status).
func readAll(t *testing.T, nc *nats.Conn, subject, body string) (msgs []*nats.Msg, end *nats.Msg) {
	t.Helper()
	inbox := nats.NewInbox()
	sub, err := nc.SubscribeSync(inbox)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	if err := nc.PublishRequest(subject, inbox, []byte(body)); err != nil {
		t.Fatal(err)
	}
	for {
		m, err := sub.NextMsg(5 * time.Second)
		if err != nil {
			t.Fatalf("%s %s: %v after %d messages", subject, body, err, len(msgs))
		}
		if m.Header.Get("Status") != "" {
			return msgs, m
		}
		msgs = append(msgs, m)
	}
}

func TestLocalReplayAPI(t *testing.T) {
	_, log := testlog.New(0)
	n, err := leaf.New(leaf.Config{
		ServerName: "pi-001",
		DataDir:    t.TempDir(),
		NATS:       natsd.Config{Listen: "127.0.0.1:0"},
		Streams:    []stream.Config{{Name: "sensors", Subjects: []string{"sensors.>"}}},
	}, log)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	<-n.Ready()
	nc, err := nats.Connect(n.NATSURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	before := time.Now()
	for i := 1; i <= 10; i++ {
		if _, err := js.Publish(context.Background(), fmt.Sprintf("sensors.t%d", i), []byte(strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}

	m, err := nc.Request(stream.ReplayPrefix+"sensors.INFO", nil, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var info stream.StreamInfo
	if err := json.Unmarshal(m.Data, &info); err != nil || info.Msgs != 10 || info.LastSeq != 10 || info.Synced != 0 {
		t.Fatalf("INFO %s (err %v): want 10 messages, none synced", m.Data, err)
	}

	msgs, end := readAll(t, nc, stream.ReplayPrefix+"sensors.READ", `{"seq":3,"max":4}`)
	if len(msgs) != 4 || end.Header.Get("Status") != "204" || end.Header.Get("Canopy-Next-Seq") != "7" {
		t.Fatalf("READ from 3, max 4: %d messages, end %v", len(msgs), end.Header)
	}
	for i, m := range msgs {
		seq := i + 3
		if m.Header.Get("Canopy-Seq") != strconv.Itoa(seq) || m.Header.Get("Canopy-Subject") != fmt.Sprintf("sensors.t%d", seq) || string(m.Data) != strconv.Itoa(seq) {
			t.Fatalf("message %d: %v %q", i, m.Header, m.Data)
		}
	}
	msgs, _ = readAll(t, nc, stream.ReplayPrefix+"sensors.READ", fmt.Sprintf(`{"time":%q}`, before.Format(time.RFC3339Nano)))
	if len(msgs) != 10 {
		t.Fatalf("READ from a time before everything: %d messages, want 10", len(msgs))
	}
	for _, bad := range []string{`{"seq":"x"}`, `{"seq":1,"time":"2026-01-01T00:00:00Z"}`, `{"bogus":1}`} {
		if _, end := readAll(t, nc, stream.ReplayPrefix+"sensors.READ", bad); end.Header.Get("Status") != "400" || end.Header.Get("Canopy-Error") == "" {
			t.Errorf("%s: %v, want 400 with a reason", bad, end.Header)
		}
	}
}
