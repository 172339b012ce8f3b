// Package gpio is the [[gpio]] adapter: digital inputs and outputs on one
// GPIO chip through the Linux GPIO character device (uAPI v2, Linux 5.10 or
// later; the kernel does edge detection, debounce, bias and active-low).
//
// Inputs publish a reading on every configured edge the moment the kernel
// reports it, stamped with the kernel's event time (CLOCK_MONOTONIC, taken
// in the interrupt handler, converted to wall-clock time when the event is
// handled, so clock steps after the edge do not move it and every reading of
// the gateway shares one time base), plus one every interval when set. Rising
// means inactive to active, so with active_low a falling voltage publishes
// true. Outputs are driven to initial when requested, written by commands and
// read back after each write. All points publish their level once each time
// the chip is opened.
//
// Lines are requested once and held until Run returns; another process
// cannot take them meanwhile. A missing chip, a line already in use and a
// chip that disappears (a USB GPIO expander unplugged) set the adapter's
// status to error, naming chip and line, and are retried with back-off.
// When the chip comes back, outputs are driven to the last level written,
// not to initial. Held lines are read every second to notice a vanished
// chip: the event reader of go-gpiocdev reports no errors.
//
// # Choosing the chip on a Raspberry Pi
//
// Lines are BCM GPIO numbers (GPIO17 is line 17, on header pin 11). Name the
// header's chip by its label, which is stable across kernels and models:
//
//   - Raspberry Pi 5: "pinctrl-rp1". Its number changed between kernels
//     (gpiochip4 on early 6.1 kernels, gpiochip0 since 6.6), so do not use it.
//   - Raspberry Pi 4, 400, CM4: "pinctrl-bcm2711" (gpiochip0).
//   - Raspberry Pi 3, Zero 2 W and older: "pinctrl-bcm2835" (gpiochip0).
//
// A name (gpiochip0) is tried first, then labels; gpioinfo (Debian package
// gpiod) lists both.
//
// # What outputs do when the gateway stops
//
// On a clean stop, or when the process dies, the kernel releases the lines
// and the pin controller driver decides what the pin does. Raspberry Pi OS
// kernels keep a released output driving its last level (pinctrl-bcm2835 and
// pinctrl-rp1 default to persist_gpio_outputs=y). With dtparam=strict_gpiod in
// config.txt, and on mainline kernels (Debian's and Ubuntu's generic arm64
// kernels), a released line reverts to an input, so the pin floats or follows
// its pull resistor. Wire relays and beacons so that the input (undriven) state
// is the safe one, and set strict_gpiod where a stopped gateway must not leave
// loads switched on.
//
// A gap in the kernel's per-line event sequence numbers (events lost to a
// full kernel buffer) is logged.
//
// # Pulse counters
//
// An input with counter = true (on edge "rising", its default, or "both")
// counts its rising edges, inactive to active, so active_low applies: water
// and energy meters' pulse outputs. It publishes the total, an unsigned
// integer, instead of the level: on each counted edge, every interval when
// set, and each time the chip is opened. Totals are kept by point name in
// the gateway's state directory (<buffer.dir>/state/gpio-<adapter>.counters)
// and continue across restarts, kill -9 and power cuts:
//
//   - Each counted edge's new total is on disk (written and fdatasync'ed)
//     before its reading is emitted, so no edge whose reading was emitted is
//     ever missing from a later total, and a crash between the two loses at
//     most that edge's reading: the next reading carries the total with it.
//     A power cut can lose the last fsync_interval of readings from the
//     buffer, never the counts they carried.
//   - Edges while the gateway is not running, while the chip is being
//     reopened after a fault, and those the kernel had queued but the
//     adapter not yet read when it stopped or died are seen by nobody and
//     not counted. Pulses shorter than debounce, or closer together than the
//     kernel's interrupt thread can separate, are one edge to the kernel.
//   - Each counted edge waits for the disk while the kernel queues the
//     line's next events, 16 at most (go-gpiocdev v0.9.1 does not pass
//     WithEventBufferSize on to the kernel): ample for meters' few pulses a
//     second unless an fdatasync stalls for long. Events the kernel had to
//     drop show as a gap in the line's sequence numbers: on edge "rising"
//     every one was a rising edge, so they are added to the total with a
//     warning; on "both" they cannot be told apart, and the error logged
//     says the total falls short.
//   - The file's two checksummed slots are written in turn, so a write torn
//     by a power cut leaves the total before it (whose edge had not been
//     published). A file with no valid slot is renamed to .bad, a warning is
//     logged and counting starts from 0; it never stops the adapter.
//   - While the file cannot be written, counting goes on in memory and the
//     readings are still published, but the adapter's status is error: the
//     totals since would be lost with the process.
//
// To reset counters, stop the gateway and delete the file. Totals of points
// no longer configured stay in it, so a point taken out and put back
// continues; a renamed point starts from 0.
package gpio

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"time"

	"github.com/fieldgate/fieldgate/internal/reading"
	"github.com/fieldgate/fieldgate/internal/statefile"

	"github.com/fieldgate/fieldgate/internal/backoff"

	"github.com/fieldgate/fieldgate/adapters"
)

func init() { adapters.Register("gpio", New) }

// option adjusts an Adapter for tests.
type option func(*options)

type options struct {
	devDir   string
	probe    time.Duration
	retryMin time.Duration
	retryMax time.Duration
}

// withDevDir looks for chips in dir instead of /dev. The device nodes there
// must carry the kernel's names (gpiochipN): the library checks them against
// /sys/bus/gpio.
func withDevDir(dir string) option { return func(o *options) { o.devDir = dir } }

// withProbe sets how often held lines are read to notice a vanished chip.
func withProbe(every time.Duration) option { return func(o *options) { o.probe = every } }

// withRetry sets the back-off between attempts to open the chip, as
// backoff.New(first, limit) paces it.
func withRetry(first, limit time.Duration) option {
	return func(o *options) { o.retryMin, o.retryMax = first, limit }
}

// apply adjusts a new adapter, before Run.
func (a *Adapter) apply(opts ...option) error {
	o := a.opt
	for _, opt := range opts {
		opt(&o)
	}
	var err error
	if o.devDir, err = filepath.Abs(o.devDir); err != nil {
		return fmt.Errorf("gpio %q: dev dir: %w", a.name, err)
	}
	if o.probe <= 0 || o.retryMin <= 0 || o.retryMax < o.retryMin {
		return fmt.Errorf("gpio %q: probe and retry periods must be positive, the retry limit no less than the first", a.name)
	}
	a.opt = o
	return nil
}

// Adapter serves one [[gpio]] section: one chip and its points.
type Adapter struct {
	name   string
	chip   string
	points []*point
	byName map[string]*point
	log    *slog.Logger
	opt    options

	countsFile *statefile.File // the counters' totals; nil without counter points
	counts     *counterFile    // open while Run runs

	mu   sync.Mutex // guards sess and the points' output levels
	sess *session   // nil while the chip is not open
}

// New checks cfg and builds the adapter; it touches no hardware and no file
// until Run. Counter points need env.State.
func New(cfg *Config, env adapters.Env) (*Adapter, error) {
	points, err := parsePoints(cfg)
	if err != nil {
		return nil, err
	}
	a := &Adapter{name: cfg.Name, chip: cfg.Chip, points: points,
		byName: make(map[string]*point, len(points)), log: env.Logger(),
		opt: options{devDir: "/dev", probe: time.Second, retryMin: time.Second, retryMax: 30 * time.Second}}
	for _, p := range points {
		a.byName[p.name] = p
		if p.counter {
			if env.State == nil {
				return nil, fmt.Errorf("gpio %q: counter points need a state directory", cfg.Name)
			}
			a.countsFile = env.State.File("gpio-"+cfg.Name+".counters", counterFormat)
		}
	}
	return a, nil
}

// Name returns the adapter's configured name.
func (a *Adapter) Name() string { return a.name }

// Run holds the chip's lines and publishes their readings until ctx is done,
// reopening the chip with back-off after a fault. It releases every line
// before it returns. Counters' totals are loaded when it starts, not in New,
// so an adapter replaced on reload hands the file over once it has stopped.
func (a *Adapter) Run(ctx context.Context, e adapters.Emitter) error {
	if a.countsFile != nil {
		a.counts = openCounterFile(a.countsFile, a.log)
		defer func() {
			if err := a.counts.close(); err != nil {
				a.log.Warn("gpio counter state", "err", err)
			}
		}()
	}
	defer a.release()
	bo := backoff.New(a.opt.retryMin, a.opt.retryMax)
	for ctx.Err() == nil {
		s, err := a.connect(e)
		if err == nil {
			bo.Reset()
			if err = a.serve(ctx, s, e); err == nil {
				return nil
			}
		}
		a.release()
		err = fmt.Errorf("gpio %q: %w", a.name, err)
		e.Status(err)
		wait := bo.Next()
		a.log.Warn("gpio chip fault; retrying", "err", err, "retry_in", wait)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
		case <-t.C:
		}
	}
	return nil
}

// connect opens the chip, requests every line and publishes their levels.
func (a *Adapter) connect(e adapters.Emitter) (*session, error) {
	a.mu.Lock()
	s, err := a.open(e)
	a.sess = s
	a.mu.Unlock()
	if err != nil {
		return nil, err
	}
	a.log.Info("gpio chip open", "chip", s.chip, "label", s.label, "lines", len(s.lines))
	e.Status(nil)
	return s, s.emitLevels(e, a.points)
}

// serve runs the heartbeats and the probe until ctx is done (nil) or a line
// cannot be read (the fault).
func (a *Adapter) serve(ctx context.Context, s *session, e adapters.Emitter) error {
	now := time.Now()
	probe := now.Add(a.opt.probe)
	beats := make([]time.Time, len(a.points)) // next heartbeat; zero for none
	for i, p := range a.points {
		if p.interval > 0 {
			beats[i] = now.Add(p.interval)
		}
	}
	t := time.NewTimer(a.opt.probe)
	defer t.Stop()
	var due []*point
	for {
		next := probe
		for _, b := range beats {
			if !b.IsZero() && b.Before(next) {
				next = b
			}
		}
		t.Reset(time.Until(next))
		select {
		case <-ctx.Done():
			return nil
		case now = <-t.C:
		}
		due = due[:0]
		for i, b := range beats {
			if !b.IsZero() && !now.Before(b) {
				due = append(due, a.points[i])
				beats[i] = nextBeat(b, a.points[i].interval, now)
			}
		}
		if len(due) > 0 {
			if err := s.emitLevels(e, due); err != nil {
				return err
			}
		}
		if !now.Before(probe) {
			probe = now.Add(a.opt.probe)
			if _, err := s.levels(a.points); err != nil {
				return err
			}
		}
	}
}

// nextBeat returns the heartbeat after one due at last, skipping beats
// missed while the process was stalled rather than publishing them in a burst.
func nextBeat(last time.Time, every time.Duration, now time.Time) time.Time {
	next := last.Add(every)
	if next.After(now) {
		return next
	}
	return now.Add(every)
}

// release closes the session, if any, giving the lines back to the kernel.
func (a *Adapter) release() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.sess != nil {
		a.sess.close()
		a.sess = nil
	}
}

// errNotOpen refuses writes while the chip is not open (a fault is being
// retried); commands are never queued for later.
var errNotOpen = errors.New("chip not open")

// Write drives an output point to v (a boolean in any form
// adapters.AsBool accepts) and reads it back. The caller publishes the
// read-back reading.
func (a *Adapter) Write(ctx context.Context, name string, v reading.Value) (reading.Value, reading.Reading, error) {
	p, ok := a.byName[name]
	switch {
	case !ok:
		return reading.Value{}, reading.Reading{}, fmt.Errorf("gpio %q point %q: %w", a.name, name, adapters.ErrNoPoint)
	case !p.output:
		return reading.Value{}, reading.Reading{}, fmt.Errorf("gpio %q point %q: %w: it is an input", a.name, name, adapters.ErrNotWritable)
	}
	b, err := adapters.AsBool(v)
	if err != nil {
		return reading.Value{}, reading.Reading{}, fmt.Errorf("gpio %q point %q: %w", a.name, name, err)
	}
	if err := ctx.Err(); err != nil {
		return reading.Value{}, reading.Reading{}, fmt.Errorf("gpio %q point %q: %w", a.name, name, err)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.sess == nil {
		return reading.Value{}, reading.Reading{}, fmt.Errorf("gpio %q point %q: %w", a.name, name, errNotOpen)
	}
	if err := p.gate.Pass(time.Now()); err != nil {
		return reading.Value{}, reading.Reading{}, fmt.Errorf("gpio %q point %q: %w", a.name, name, err)
	}
	if err := a.sess.set(p, b); err != nil {
		return reading.Value{}, reading.Reading{}, fmt.Errorf("gpio %q: %w", a.name, err)
	}
	p.level = b
	rs, err := a.sess.levels([]*point{p})
	if err != nil {
		return reading.Value{}, reading.Reading{}, fmt.Errorf("gpio %q: %w", a.name, err)
	}
	return reading.Bool(b), rs[0], nil
}
