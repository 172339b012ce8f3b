// Package adapters holds the contracts between field hardware and the rest of
// fieldgate: an Adapter polls one device (or bus) and emits Readings; an
// adapter that accepts commands also implements Writer. Implementations live
// in sub-packages (adapters/modbus, …) and register a Factory here, so the
// gateway wires a new kind of hardware with one registration line and the
// bridge never imports an implementation.
package adapters

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/fieldgate/fieldgate/config"
	"github.com/fieldgate/fieldgate/internal/reading"
	"github.com/fieldgate/fieldgate/internal/statefile"
)

// Emitter receives what an adapter observes. Implementations must be safe for
// concurrent use and must not block on the network: readings go to the disk
// buffer, never straight to a broker.
type Emitter interface {
	// Emit hands over the readings of one poll cycle; they are stored
	// together and numbered in order. rs is lent: Emit must not keep it
	// once it returns, as adapters reuse it for the next cycle.
	Emit(rs []reading.Reading)
	// Status reports the adapter's health: nil for ok, the fault otherwise.
	// Adapters call it after every poll; the emitter publishes changes only.
	Status(err error)
	// Describe announces the points an adapter learns of at run time,
	// which its config's PointInfo cannot list (those SunSpec discovery
	// finds), before it emits their first readings. Each call replaces the
	// adapter's previous announcement; points of the config are not
	// repeated.
	Describe(points []reading.Point)
}

// Adapter polls one piece of hardware until ctx is done. Run returns nil on
// cancellation; hardware faults are reported through Emitter.Status and
// retried inside Run, never returned.
type Adapter interface {
	// Name is the adapter's configured name, unique in the gateway.
	Name() string
	Run(ctx context.Context, e Emitter) error
}

// Writer is implemented by adapters whose points accept commands. Write
// validates v against the point (returning an error wrapping ErrNoPoint,
// ErrNotWritable, ErrBadValue or ErrTooSoon without touching the hardware when it does not
// fit), writes it, reads the point back and returns the value written and the
// read-back reading.
type Writer interface {
	Write(ctx context.Context, point string, v reading.Value) (written reading.Value, readBack reading.Reading, err error)
}

// Pacer is implemented by adapters that report a Status at a steady pace,
// after every poll: Pace is the longest time between two Status calls
// while Run works, faults included. The gateway takes an adapter silent
// for longer for stalled: it marks it in error and stops feeding the
// systemd watchdog. Adapters that report only on events (a GPIO edge, a
// line a device sends) do not implement it.
type Pacer interface {
	Pace() time.Duration
}

// Errors a Writer wraps so callers can classify refusals with errors.Is.
var (
	ErrNoPoint     = errors.New("no such point")
	ErrNotWritable = errors.New("point is not writable")
	ErrBadValue    = errors.New("value does not fit the point")
	ErrTooSoon     = errors.New("too soon after the previous write")
)

// Refusals are the errors above: a write refused before it reached the
// hardware.
var Refusals = []error{ErrNoPoint, ErrNotWritable, ErrBadValue, ErrTooSoon}

// Env is what the gateway lends every adapter it builds, beyond its config.
type Env struct {
	// Log is the adapter's logger, already tagged with its name; nil
	// discards.
	Log *slog.Logger
	// State holds small state files that must outlive the process (a
	// pulse counter's total), shared by all adapters: each names its files
	// after itself. nil means none: adapters that need one refuse to be
	// built.
	State *statefile.Dir
}

// Logger returns env's logger, one that discards if it has none.
func (e Env) Logger() *slog.Logger {
	if e.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return e.Log
}

// build makes an adapter from a config of its kind.
type build func(cfg config.AdapterConfig, env Env) (Adapter, error)

var (
	regMu    sync.Mutex
	registry = map[string]build{}
)

// Register makes a kind of adapter available: its config table [[kind]],
// decoded into a C, and its constructor. It is the one line an adapter
// package's init needs, such as
//
//	adapters.Register("modbus", New) // New(*Config, Env) (*Adapter, error)
//
// It panics on a duplicate, a programming error caught at start-up.
func Register[C any, PC interface {
	*C
	config.AdapterConfig
}, A Adapter](kind string, newAdapter func(PC, Env) (A, error)) {
	regMu.Lock()
	defer regMu.Unlock()
	if _, dup := registry[kind]; dup {
		panic("adapters: duplicate registration of " + kind)
	}
	config.RegisterKind(kind, func() config.AdapterConfig { return PC(new(C)) })
	registry[kind] = func(cfg config.AdapterConfig, env Env) (Adapter, error) {
		c, ok := cfg.(PC)
		if !ok {
			return nil, fmt.Errorf("%s: config is %T, want %T", kind, cfg, c)
		}
		a, err := newAdapter(c, env)
		if err != nil {
			return nil, err
		}
		return a, nil
	}
}

// New builds the adapter a config table describes.
func New(a config.Adapter, env Env) (Adapter, error) {
	regMu.Lock()
	f, ok := registry[a.Kind]
	regMu.Unlock()
	if !ok {
		return nil, fmt.Errorf("no adapter registered for %q (kinds: %v)", a.Kind, config.Kinds())
	}
	return f(a.Config, env)
}
