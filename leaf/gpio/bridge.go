package gpio

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"periph.io/x/conn/v3/driver/driverreg"
	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpioreg"

	// The Linux GPIO character device driver; see the package doc for why
	// it is the only one (host.Init would register them all).
	_ "periph.io/x/host/v3/gpioioctl"

	"github.com/canopy-iot/canopy/internal/logging"
)

// Pin is what the bridge needs of a GPIO pin. periph's pins (gpio.PinIO)
// have it, and so do its test doubles (gpiotest.Pin).
type Pin interface {
	Name() string
	In(pull gpio.Pull, edge gpio.Edge) error
	Read() gpio.Level
	WaitForEdge(timeout time.Duration) bool
	Out(l gpio.Level) error
	// Halt interrupts a WaitForEdge in progress.
	Halt() error
}

var _ Pin = gpio.PinIO(nil)

// Opener initializes the GPIO drivers and returns the lookup of pins by
// name (nil when there is no such pin), or why there is no GPIO hardware.
type Opener func() (lookup func(name string) Pin, err error)

// Bus is the bridge's view of the local NATS server (and the streams
// that keep its subjects).
type Bus interface {
	Publish(subject string, payload []byte)
	// Subscribe calls fn for every message on subject until unsubscribe
	// is called. fn runs on the publisher's goroutine and must not block.
	Subscribe(subject string, fn func(subject, reply string, payload []byte)) (unsubscribe func(), err error)
}

// Options are the bridge's dependencies besides its configuration.
type Options struct {
	// Open returns the pins. Default: periph's GPIO character device
	// driver (/dev/gpiochipN).
	Open Opener
}

// Timing.
const (
	// idleWait bounds one wait for an edge, so that a pin whose driver
	// ignores Halt still notices the end of Run.
	idleWait = 250 * time.Millisecond
	// commandQueue is how many commands may wait for the bridge.
	commandQueue = 64
	// refusalLogEvery rate-limits the warnings about refused commands.
	refusalLogEvery = 10 * time.Second
)

// Bridge runs the configured pins.
type Bridge struct {
	cfg   Config
	bus   Bus
	open  Opener
	log   *slog.Logger
	ready chan struct{}
	cmds  chan command

	// Filled before the pins run: outputs are then the worker's alone;
	// each input's level is written by its watcher, read by the worker.
	outputs  map[string]*output
	inputs   map[string]*input
	refusals logging.Every // refused commands logged
}

// New returns a bridge for cfg (after defaults), publishing on bus. It
// touches no hardware before Run. A nil log discards logs.
func New(cfg Config, bus Bus, opts Options, log *slog.Logger) *Bridge {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if opts.Open == nil {
		opts.Open = openHost
	}
	return &Bridge{
		cfg:   cfg.WithDefaults(),
		bus:   bus,
		open:  opts.Open,
		log:   log.With("component", "gpio"),
		ready: make(chan struct{}),
		cmds:  make(chan command, commandQueue),

		refusals: logging.Every{Interval: refusalLogEvery},
	}
}

// Ready is closed once the pins are set up, their first levels published
// and the command subjects subscribed, or once it is clear that there is
// no GPIO hardware to set up.
func (b *Bridge) Ready() <-chan struct{} { return b.ready }

// openHost initializes periph's registered drivers (the GPIO character
// device only) and looks pins up in its registry.
func openHost() (func(string) Pin, error) {
	st, err := driverreg.Init()
	if err != nil {
		return nil, err
	}
	if len(st.Loaded) == 0 {
		var why []string
		for _, f := range append(st.Skipped, st.Failed...) {
			why = append(why, f.String())
		}
		return nil, fmt.Errorf("no GPIO driver loaded: %s", strings.Join(why, "; "))
	}
	return func(name string) Pin {
		if p := gpioreg.ByName(name); p != nil {
			return p
		}
		return nil
	}, nil
}

type input struct {
	cfg      Input
	pin      Pin
	want     gpio.Edge // the changes published
	debounce time.Duration

	mu    sync.Mutex // guards level and at
	level gpio.Level
	at    time.Time
}

type output struct {
	pin   Pin
	level gpio.Level
	at    time.Time
}

type command struct {
	pin     string
	set     bool // false: get
	reply   string
	payload string
}

// pull and edge read the settings of an input (valid after Validate).
func pull(s string) gpio.Pull {
	switch s {
	case "up":
		return gpio.PullUp
	case "down":
		return gpio.PullDown
	}
	return gpio.Float
}

func edge(s string) gpio.Edge {
	switch s {
	case "rising":
		return gpio.RisingEdge
	case "falling":
		return gpio.FallingEdge
	}
	return gpio.BothEdges
}

// Run sets the pins up and bridges them until ctx ends. Without GPIO
// hardware, or when none of the pins exists, it logs that once and
// returns nil: the rest of the leaf runs on. Outputs keep their level
// when Run returns.
func (b *Bridge) Run(ctx context.Context) error {
	ready := false
	defer func() {
		if !ready {
			close(b.ready)
		}
	}()
	if !b.cfg.On() {
		return nil
	}
	lookup, err := b.open()
	if err != nil {
		b.log.Warn("no GPIO hardware; GPIO bridge off", "err", err)
		return nil
	}
	b.setUp(lookup)
	if len(b.inputs)+len(b.outputs) == 0 {
		return nil
	}
	var unsubs []func()
	defer func() {
		for _, u := range unsubs {
			u()
		}
	}()
	subscribe := func(pin, suffix string, set bool) error {
		u, err := b.bus.Subscribe(Subject(pin)+suffix, func(_, reply string, payload []byte) {
			b.enqueue(command{pin: pin, set: set, reply: reply, payload: string(payload)})
		})
		if err != nil {
			return fmt.Errorf("gpio %s: %w", pin, err)
		}
		unsubs = append(unsubs, u)
		return nil
	}
	for name := range b.outputs {
		if err := subscribe(name, SetSuffix, true); err != nil {
			return err
		}
		if err := subscribe(name, GetSuffix, false); err != nil {
			return err
		}
	}
	for name := range b.inputs {
		if err := subscribe(name, GetSuffix, false); err != nil {
			return err
		}
	}
	// The first levels: a stream on hw.gpio.> starts from a known state.
	for _, cfg := range b.cfg.Outputs {
		if out := b.outputs[cfg.Pin]; out != nil {
			b.publish(Subject(cfg.Pin), cfg.Pin, out.level, out.at)
		}
	}
	for _, cfg := range b.cfg.Inputs {
		if in := b.inputs[cfg.Pin]; in != nil {
			level, at := in.get()
			b.publish(Subject(cfg.Pin), cfg.Pin, level, at)
		}
	}
	close(b.ready)
	ready = true

	var wg sync.WaitGroup
	for _, in := range b.inputs {
		wg.Go(func() { b.watch(ctx, in) })
	}
	// Halt wakes a watcher blocked in WaitForEdge at once.
	stopHalting := context.AfterFunc(ctx, func() {
		for _, in := range b.inputs {
			in.pin.Halt()
		}
	})
	defer stopHalting()
	for {
		select {
		case <-ctx.Done():
			wg.Wait()
			return nil
		case c := <-b.cmds:
			b.handle(c)
		}
	}
}

// setUp finds and configures the pins; one that fails is left out, with
// one log line for all the missing ones.
func (b *Bridge) setUp(lookup func(string) Pin) {
	b.inputs = map[string]*input{}
	b.outputs = map[string]*output{}
	var missing []string
	for _, cfg := range b.cfg.Outputs {
		p := lookup(cfg.Pin)
		if p == nil {
			missing = append(missing, cfg.Pin)
			continue
		}
		level := cfg.Initial == levelHigh
		if err := p.Out(gpio.Level(level)); err != nil {
			b.log.Warn("GPIO output not set up; left out", "pin", cfg.Pin, "err", err)
			continue
		}
		b.outputs[cfg.Pin] = &output{pin: p, level: gpio.Level(level), at: time.Now()}
	}
	for _, cfg := range b.cfg.Inputs {
		p := lookup(cfg.Pin)
		if p == nil {
			missing = append(missing, cfg.Pin)
			continue
		}
		in := &input{cfg: cfg, pin: p, want: edge(cfg.Edge), debounce: cfg.Debounce.Std()}
		// Both edges in hardware, whatever is published: debouncing
		// must see the bounces back.
		if err := p.In(pull(cfg.Pull), gpio.BothEdges); err != nil {
			b.log.Warn("GPIO input not set up; left out", "pin", cfg.Pin, "err", err)
			continue
		}
		in.level, in.at = p.Read(), time.Now()
		b.inputs[cfg.Pin] = in
	}
	switch {
	case len(missing) > 0 && len(b.inputs)+len(b.outputs) == 0:
		b.log.Warn("no GPIO hardware for the configured pins; GPIO bridge off", "pins", strings.Join(missing, ","))
	case len(missing) > 0:
		b.log.Warn("GPIO pins not found; left out", "pins", strings.Join(missing, ","))
	}
}

func (in *input) get() (gpio.Level, time.Time) {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.level, in.at
}

func (in *input) set(l gpio.Level, at time.Time) {
	in.mu.Lock()
	in.level, in.at = l, at
	in.mu.Unlock()
}

// watch publishes the input's debounced changes until ctx ends. A change
// counts once the level has held for the debounce time: every edge
// before that restarts the wait, and a level that comes back to where it
// was is no change at all.
func (b *Bridge) watch(ctx context.Context, in *input) {
	stable, _ := in.get()
	for ctx.Err() == nil {
		start := time.Now()
		if !in.pin.WaitForEdge(idleWait) {
			if time.Since(start) < idleWait/4 {
				// The driver failed rather than waited: do not spin.
				sleep(ctx, idleWait)
			}
			continue
		}
		settled := time.Now()
		for in.debounce > 0 && ctx.Err() == nil && in.pin.WaitForEdge(in.debounce) {
			settled = time.Now()
		}
		if ctx.Err() != nil {
			return
		}
		level := in.pin.Read()
		if level == stable {
			continue // a bounce that came back
		}
		stable = level
		in.set(level, settled)
		if in.want == gpio.BothEdges || (in.want == gpio.RisingEdge) == bool(level) {
			b.publish(Subject(in.cfg.Pin), in.cfg.Pin, level, settled)
		}
	}
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// enqueue hands a command to the worker; it runs on the publisher's
// goroutine, so it neither blocks nor publishes: a command that finds the
// queue full is dropped and logged, and a requester's request times out.
func (b *Bridge) enqueue(c command) {
	select {
	case b.cmds <- c:
	default:
		b.warnRefused(c, errBusy)
	}
}

var errBusy = errors.New("too many GPIO commands waiting; dropped")

// handle carries out one command and answers it when it has a reply
// subject.
func (b *Bridge) handle(c command) {
	if !c.set {
		var level gpio.Level
		var at time.Time
		if out := b.outputs[c.pin]; out != nil {
			level, at = out.level, out.at
		} else if in := b.inputs[c.pin]; in != nil {
			level, at = in.get()
		}
		if c.reply != "" {
			b.publish(c.reply, c.pin, level, at)
		}
		return
	}
	out := b.outputs[c.pin]
	level, err := ParseLevel(c.payload)
	if err == nil {
		if err = out.pin.Out(level); err != nil {
			err = fmt.Errorf("set %s: %w", c.pin, err)
		}
	}
	if err != nil {
		b.refuse(c, err)
		return
	}
	changed := out.level != level
	out.level, out.at = level, time.Now()
	b.log.Debug("GPIO output set", "pin", c.pin, "level", levelName(level))
	if c.reply != "" {
		b.publish(c.reply, c.pin, level, out.at)
	}
	if changed {
		b.publish(Subject(c.pin), c.pin, level, out.at)
	}
}

// refuse logs a refused command (rate-limited) and answers it with the
// reason when it has a reply subject.
func (b *Bridge) refuse(c command, err error) {
	b.warnRefused(c, err)
	if c.reply != "" {
		payload, _ := json.Marshal(struct {
			Pin   string `json:"pin"`
			Error string `json:"error"`
		}{c.pin, err.Error()})
		b.bus.Publish(c.reply, payload)
	}
}

// warnRefused logs a refused command, rate-limited.
func (b *Bridge) warnRefused(c command, err error) {
	if ok, suppressed := b.refusals.Allow(); ok {
		b.log.Warn("GPIO command refused", "pin", c.pin, "err", err, "refused", suppressed+1)
	}
}

// ParseLevel reads a set command's payload: high, on or 1 for high; low,
// off or 0 for low (any case, surrounding white space ignored).
func ParseLevel(payload string) (gpio.Level, error) {
	switch strings.ToLower(strings.TrimSpace(payload)) {
	case "high", "on", "1":
		return gpio.High, nil
	case "low", "off", "0":
		return gpio.Low, nil
	}
	shown := payload
	if len(shown) > 32 {
		shown = shown[:32] + "…"
	}
	return gpio.Low, fmt.Errorf("%w: %q (want high, low, on, off, 1 or 0)", ErrBadLevel, shown)
}

// ErrBadLevel refuses a set command whose payload is no level.
var ErrBadLevel = errors.New("not a GPIO level")

// Level is the payload published on hw.gpio.<pin> and in answers.
type Level struct {
	Pin   string `json:"pin"`
	Level string `json:"level"` // "high" or "low"
	// At is when the pin settled at this level (its last edge), or when
	// it was read or set, in RFC 3339 with nanoseconds.
	At string `json:"at"`
}

func levelName(l gpio.Level) string {
	if l {
		return levelHigh
	}
	return levelLow
}

func (b *Bridge) publish(subject, pin string, l gpio.Level, at time.Time) {
	payload, _ := json.Marshal(Level{Pin: pin, Level: levelName(l), At: at.UTC().Format(time.RFC3339Nano)})
	b.bus.Publish(subject, payload)
}
