package gpio_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	periph "periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpiotest"

	"github.com/canopy-iot/canopy/internal/config"
	"github.com/canopy-iot/canopy/internal/testlog"
	"github.com/canopy-iot/canopy/internal/wait"
	"github.com/canopy-iot/canopy/leaf/gpio"
	"github.com/canopy-iot/canopy/leaf/natsd"
)

// bus connects the bridge to a real local server through an internal
// client, as the leaf does.
type bus struct{ in *natsd.Internal }

func (b bus) Publish(subject string, payload []byte) {
	b.in.Publish([]byte(subject), nil, nil, payload)
}

func (b bus) Subscribe(subject string, fn func(subject, reply string, payload []byte)) (func(), error) {
	return b.in.Subscribe(subject, "", func(s, r, _, p []byte) { fn(string(s), string(r), p) })
}

// startNATS runs a local server on a kernel-picked port and returns it
// with a nats.go client connected to it.
func startNATS(t *testing.T) (*natsd.Server, *nats.Conn) {
	t.Helper()
	srv, err := natsd.New(natsd.Config{Listen: "127.0.0.1:0"}, "pi-001", nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("server: %v", err)
		}
	})
	select {
	case <-srv.Ready():
	case err := <-done:
		t.Fatal(err)
	}
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return srv, nc
}

// pins returns an Opener over gpiotest pins (periph's own test double).
func pins(ps ...*gpiotest.Pin) gpio.Opener {
	return func() (func(string) gpio.Pin, error) {
		return func(name string) gpio.Pin {
			for _, p := range ps {
				if p.N == name {
					return p
				}
			}
			return nil
		}, nil
	}
}

// inputPin is an input whose edges the test drives: a send on EdgesChan
// returns once the bridge's WaitForEdge took it.
func inputPin(name string) *gpiotest.Pin {
	return &gpiotest.Pin{N: name, EdgesChan: make(chan periph.Level)}
}

// runBridge runs a bridge until the test ends and waits until it is ready.
func runBridge(t *testing.T, srv *natsd.Server, cfg gpio.Config, open gpio.Opener) *testlog.Buffer {
	t.Helper()
	if err := cfg.WithDefaults().Validate(); err != nil {
		t.Fatal(err)
	}
	logs, log := testlog.New(slog.LevelDebug)
	b := gpio.New(cfg, bus{srv.NewInternal("gpio")}, gpio.Options{Open: open}, log)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("bridge: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("bridge did not stop within 5s")
		}
	})
	select {
	case <-b.Ready():
	case <-time.After(5 * time.Second):
		t.Fatal("bridge not ready")
	}
	return logs
}

func subscribe(t *testing.T, nc *nats.Conn, subject string) *nats.Subscription {
	t.Helper()
	sub, err := nc.SubscribeSync(subject)
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return sub
}

// next returns the next level document on sub.
func next(t *testing.T, sub *nats.Subscription) gpio.Level {
	t.Helper()
	m, err := sub.NextMsg(5 * time.Second)
	if err != nil {
		t.Fatalf("no message on %s: %v", sub.Subject, err)
	}
	var l gpio.Level
	if err := json.Unmarshal(m.Data, &l); err != nil {
		t.Fatalf("payload %q: %v", m.Data, err)
	}
	return l
}

func at(t *testing.T, l gpio.Level) time.Time {
	t.Helper()
	ts, err := time.Parse(time.RFC3339Nano, l.At)
	if err != nil {
		t.Fatalf("at %q: %v", l.At, err)
	}
	return ts
}

// quiet fails if sub gets a message within d.
func quiet(t *testing.T, sub *nats.Subscription, d time.Duration) {
	t.Helper()
	if m, err := sub.NextMsg(d); err == nil {
		t.Fatalf("unexpected message on %s: %s", m.Subject, m.Data)
	}
}

func debounce(d time.Duration) *config.Duration {
	c := config.Duration(d)
	return &c
}

func TestInputPublishesDebouncedEdges(t *testing.T) {
	srv, nc := startNATS(t)
	sub := subscribe(t, nc, "hw.gpio.GPIO17")
	pin := inputPin("GPIO17")
	const db = 100 * time.Millisecond
	runBridge(t, srv, gpio.Config{Inputs: []gpio.Input{{Pin: "GPIO17", Pull: "down", Debounce: debounce(db)}}}, pins(pin))

	// The level at start (pulled down).
	if l := next(t, sub); l.Pin != "GPIO17" || l.Level != "low" {
		t.Fatalf("initial level %+v", l)
	}
	if p := pin.Pull(); p != periph.PullDown {
		t.Fatalf("pull %v, want down", p)
	}

	// A bounce that comes back within the debounce time is no change.
	pin.EdgesChan <- periph.High
	pin.EdgesChan <- periph.Low
	pin.EdgesChan <- periph.High
	pin.EdgesChan <- periph.Low
	quiet(t, sub, 4*db)

	// A bouncing press counts once, when it has settled.
	start := time.Now()
	pin.EdgesChan <- periph.High
	pin.EdgesChan <- periph.Low
	pin.EdgesChan <- periph.High
	settled := time.Now()
	l := next(t, sub)
	if l.Level != "high" {
		t.Fatalf("after the press: %+v", l)
	}
	if got := time.Since(settled); got < db/2 {
		t.Errorf("published %v after the last edge, before the %v debounce", got, db)
	}
	if ts := at(t, l); ts.Before(start) || ts.After(time.Now()) {
		t.Errorf("at %v is not the time of the last edge (after %v)", ts, start)
	}
	pin.EdgesChan <- periph.Low
	if l := next(t, sub); l.Level != "low" {
		t.Fatalf("after the release: %+v", l)
	}
	quiet(t, sub, 2*db)
}

func TestInputEdgeFilter(t *testing.T) {
	srv, nc := startNATS(t)
	rising := subscribe(t, nc, "hw.gpio.GPIO5")
	falling := subscribe(t, nc, "hw.gpio.GPIO6")
	up, down := inputPin("GPIO5"), inputPin("GPIO6")
	runBridge(t, srv, gpio.Config{Inputs: []gpio.Input{
		{Pin: "GPIO5", Pull: "down", Edge: "rising", Debounce: debounce(0)},
		{Pin: "GPIO6", Pull: "up", Edge: "falling", Debounce: debounce(0)},
	}}, pins(up, down))
	// The level at start is published whatever the filter.
	if l := next(t, rising); l.Level != "low" {
		t.Fatalf("GPIO5 at start: %+v", l)
	}
	if l := next(t, falling); l.Level != "high" {
		t.Fatalf("GPIO6 at start: %+v", l)
	}
	for range 2 {
		up.EdgesChan <- periph.High
		up.EdgesChan <- periph.Low
		down.EdgesChan <- periph.Low
		down.EdgesChan <- periph.High
	}
	for range 2 {
		if l := next(t, rising); l.Level != "high" {
			t.Fatalf("rising: %+v", l)
		}
		if l := next(t, falling); l.Level != "low" {
			t.Fatalf("falling: %+v", l)
		}
	}
	quiet(t, rising, 100*time.Millisecond)
	quiet(t, falling, 10*time.Millisecond)
}

func TestOutputFollowsSetCommands(t *testing.T) {
	srv, nc := startNATS(t)
	levels := subscribe(t, nc, "hw.gpio.GPIO27")
	pin := &gpiotest.Pin{N: "GPIO27"}
	logs := runBridge(t, srv, gpio.Config{Outputs: []gpio.Output{{Pin: "GPIO27", Initial: "high"}}}, pins(pin))
	if pin.Read() != periph.High {
		t.Fatal("initial: high not applied")
	}
	if l := next(t, levels); l.Level != "high" {
		t.Fatalf("initial level %+v", l)
	}

	for _, c := range []struct {
		payload string
		want    periph.Level
	}{
		{"low", periph.Low}, {"1", periph.High}, {"off", periph.Low}, {"ON", periph.High},
		{" 0\n", periph.Low}, {"High", periph.High}, {"high", periph.High},
	} {
		m, err := nc.Request("hw.gpio.GPIO27.set", []byte(c.payload), 5*time.Second)
		if err != nil {
			t.Fatalf("set %q: %v", c.payload, err)
		}
		var l gpio.Level
		if err := json.Unmarshal(m.Data, &l); err != nil || l.Pin != "GPIO27" || l.Level != strings.ToLower(c.want.String()) {
			t.Fatalf("set %q: answer %s (%v)", c.payload, m.Data, err)
		}
		if got := pin.Read(); got != c.want {
			t.Fatalf("set %q: pin is %v", c.payload, got)
		}
	}
	// Each change was published, and only the changes (the last "high"
	// changed nothing).
	for _, want := range []string{"low", "high", "low", "high", "low", "high"} {
		if l := next(t, levels); l.Level != want {
			t.Fatalf("published %+v, want %s", l, want)
		}
	}
	quiet(t, levels, 50*time.Millisecond)

	// Anything else is refused, logged and answered with the reason.
	for _, bad := range []string{"blink", "", "2", `{"level":"high"}`} {
		m, err := nc.Request("hw.gpio.GPIO27.set", []byte(bad), 5*time.Second)
		if err != nil {
			t.Fatalf("set %q: %v", bad, err)
		}
		var refusal struct{ Pin, Error string }
		if err := json.Unmarshal(m.Data, &refusal); err != nil || refusal.Pin != "GPIO27" || !strings.Contains(refusal.Error, "not a GPIO level") {
			t.Fatalf("set %q: answer %s", bad, m.Data)
		}
	}
	if pin.Read() != periph.High {
		t.Fatal("a refused command changed the pin")
	}
	// Without a reply subject the refusal is only logged, once in a
	// while however many there are.
	nc.Publish("hw.gpio.GPIO27.set", []byte("toggle"))
	nc.Flush()
	wait.For(t, 5*time.Second, func() error {
		return logs.Contains(`msg="GPIO command refused" component=gpio pin=GPIO27 err="not a GPIO level: \"blink\"`)
	})
	if n := logs.Count("GPIO command refused"); n != 1 {
		t.Errorf("%d refusal warnings for 5 refusals in a row, want 1:\n%s", n, logs)
	}
	quiet(t, levels, 10*time.Millisecond)
}

func TestGetAnswersTheLevel(t *testing.T) {
	srv, nc := startNATS(t)
	in, out := inputPin("GPIO17"), &gpiotest.Pin{N: "GPIO27"}
	runBridge(t, srv, gpio.Config{
		Inputs:  []gpio.Input{{Pin: "GPIO17", Pull: "up", Debounce: debounce(0)}},
		Outputs: []gpio.Output{{Pin: "GPIO27"}},
	}, pins(in, out))
	get := func(pin string) gpio.Level {
		t.Helper()
		m, err := nc.Request("hw.gpio."+pin+".get", nil, 5*time.Second)
		if err != nil {
			t.Fatalf("get %s: %v", pin, err)
		}
		var l gpio.Level
		if err := json.Unmarshal(m.Data, &l); err != nil {
			t.Fatal(err)
		}
		return l
	}
	if l := get("GPIO17"); l.Level != "high" || l.Pin != "GPIO17" {
		t.Fatalf("input: %+v", l)
	}
	if l := get("GPIO27"); l.Level != "low" {
		t.Fatalf("output (initial low by default): %+v", l)
	}
	in.EdgesChan <- periph.Low
	wait.For(t, 5*time.Second, func() error {
		if l := get("GPIO17"); l.Level != "low" {
			return errors.New("input still high")
		}
		return nil
	})
	// An input takes no set command: nobody answers.
	if _, err := nc.Request("hw.gpio.GPIO17.set", []byte("high"), 5*time.Second); !errors.Is(err, nats.ErrNoResponders) {
		t.Fatalf("set on an input: %v, want no responders", err)
	}
}

// Without GPIO hardware, or without the configured pins, the bridge says
// so once and returns; nothing is subscribed.
func TestNoHardware(t *testing.T) {
	cfg := gpio.Config{
		Inputs:  []gpio.Input{{Pin: "GPIO17"}},
		Outputs: []gpio.Output{{Pin: "GPIO27"}},
	}
	for _, c := range []struct {
		name string
		open gpio.Opener
		log  string
	}{
		{"no driver", func() (func(string) gpio.Pin, error) { return nil, errors.New("no GPIO chips found") }, `msg="no GPIO hardware; GPIO bridge off" component=gpio err="no GPIO chips found"`},
		{"no such pins", pins(), `msg="no GPIO hardware for the configured pins; GPIO bridge off" component=gpio pins=GPIO27,GPIO17`},
		// periph's real driver on this machine: no /dev/gpiochip* (or
		// none with these line names) in a test container.
		{"periph", nil, `GPIO bridge off`},
	} {
		t.Run(c.name, func(t *testing.T) {
			srv, nc := startNATS(t)
			logs := runBridge(t, srv, cfg, c.open)
			if logs.Count("\n") != 1 || !strings.Contains(logs.String(), c.log) {
				t.Fatalf("log:\n%s\nwant once: %s", logs, c.log)
			}
			if _, err := nc.Request("hw.gpio.GPIO27.set", []byte("high"), 5*time.Second); !errors.Is(err, nats.ErrNoResponders) {
				t.Fatalf("set without hardware: %v, want no responders", err)
			}
		})
	}
}

// A pin that is missing is left out; the others run.
func TestSomePinsMissing(t *testing.T) {
	srv, nc := startNATS(t)
	out := &gpiotest.Pin{N: "GPIO27"}
	logs := runBridge(t, srv, gpio.Config{
		Inputs:  []gpio.Input{{Pin: "GPIO99"}},
		Outputs: []gpio.Output{{Pin: "GPIO27"}, {Pin: "GPIO98"}},
	}, pins(out))
	if !strings.Contains(logs.String(), `msg="GPIO pins not found; left out" component=gpio pins=GPIO98,GPIO99`) {
		t.Fatalf("log:\n%s", logs)
	}
	if _, err := nc.Request("hw.gpio.GPIO27.set", []byte("high"), 5*time.Second); err != nil || out.Read() != periph.High {
		t.Fatalf("the pin that exists: %v, level %v", err, out.Read())
	}
}

func TestConfigValidate(t *testing.T) {
	good := gpio.Config{
		Inputs:  []gpio.Input{{Pin: "GPIO17", Pull: "up", Edge: "falling", Debounce: debounce(20 * time.Millisecond)}, {Pin: "P1_11"}},
		Outputs: []gpio.Output{{Pin: "GPIO27", Initial: "high"}},
	}
	if err := good.WithDefaults().Validate(); err != nil {
		t.Fatalf("valid config: %v", err)
	}
	bad := gpio.Config{
		Inputs: []gpio.Input{
			{Pin: "GPIO.17", Pull: "sideways", Edge: "any", Debounce: debounce(time.Minute)},
			{Pin: "GPIO27"},
		},
		Outputs: []gpio.Output{{Pin: "GPIO27", Initial: "on"}, {Pin: ""}},
	}
	var got []string
	for _, e := range config.Flatten(bad.WithDefaults().Validate()) {
		got = append(got, e.Error())
	}
	want := []string{
		`inputs[0].pin: "GPIO.17": want a pin name such as GPIO17 (letters, digits, '-' and '_')`,
		`inputs[0].pull: "sideways": want one of up, down, none`,
		`inputs[0].edge: "any": want one of both, rising, falling`,
		`inputs[0].debounce: must be at most 10s`,
		`outputs[0].pin: GPIO27 is configured twice`,
		`outputs[0].initial: "on": want one of low, high`,
		`outputs[1].pin: "": want a pin name such as GPIO17 (letters, digits, '-' and '_')`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	d := gpio.Config{Inputs: []gpio.Input{{Pin: "GPIO17"}}, Outputs: []gpio.Output{{Pin: "GPIO27"}}}.WithDefaults()
	if in := d.Inputs[0]; in.Pull != "none" || in.Edge != "both" || in.Debounce.Std() != 20*time.Millisecond || d.Outputs[0].Initial != "low" {
		t.Fatalf("defaults: %+v %+v", d.Inputs[0], d.Outputs[0])
	}
}

func TestParseLevel(t *testing.T) {
	for in, want := range map[string]periph.Level{"high": periph.High, "ON": periph.High, "1": periph.High, "low": periph.Low, "Off": periph.Low, "0": periph.Low, " high\r\n": periph.High} {
		if got, err := gpio.ParseLevel(in); err != nil || got != want {
			t.Errorf("ParseLevel(%q) = %v, %v", in, got, err)
		}
	}
	for _, in := range []string{"", "true", "hi", "11", strings.Repeat("x", 100)} {
		if _, err := gpio.ParseLevel(in); !errors.Is(err, gpio.ErrBadLevel) {
			t.Errorf("ParseLevel(%q): %v", in, err)
		}
	}
}
