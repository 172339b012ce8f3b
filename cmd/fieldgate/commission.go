package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/fieldgate/fieldgate/adapters"
	"github.com/fieldgate/fieldgate/config"
	"github.com/fieldgate/fieldgate/internal/reading"
)

// The commissioning commands (scan, read, write) share their argument
// handling here, and the way read and write run one configured adapter.

// parseArgs parses fs's flags wherever they stand among args, as
// `fieldgate scan URL --units 1-5` puts them after the URL, and returns the
// other arguments in order. A negative number is an argument, not a flag
// (`fieldgate write boiler/setpoint -5`), and so is all after "--".
func parseArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	var flags, rest []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			rest = append(rest, args[i+1:]...)
			break
		}
		if _, err := strconv.ParseFloat(a, 64); err == nil || len(a) < 2 || a[0] != '-' {
			rest = append(rest, a)
			continue
		}
		flags = append(flags, a)
		name := strings.TrimLeft(a, "-")
		if strings.Contains(name, "=") {
			continue
		}
		// A flag that takes a value takes the next argument.
		if f := fs.Lookup(name); f != nil && !isBoolFlag(f) && i+1 < len(args) {
			i++
			flags = append(flags, args[i])
		}
	}
	return rest, fs.Parse(flags)
}

func isBoolFlag(f *flag.Flag) bool {
	b, ok := f.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

// lineFlags adds the serial line settings of an rtu:// url to fs, with the
// config's defaults.
func lineFlags(fs *flag.FlagSet) *config.Line {
	l := &config.Line{}
	fs.IntVar(&l.BaudRate, "baud", 9600, "rtu: baud `rate`")
	fs.StringVar(&l.Parity, "parity", "N", "rtu: parity N, E or O")
	fs.IntVar(&l.DataBits, "data-bits", 8, "rtu: data bits")
	fs.IntVar(&l.StopBits, "stop-bits", 1, "rtu: stop bits, 1 or 2")
	return l
}

// lineText is line as technicians write it: "9600 8N1".
func lineText(l *config.Line) string {
	return fmt.Sprintf("%d %d%s%d", l.BaudRate, l.DataBits, strings.ToUpper(l.Parity), l.StopBits)
}

// cliLogger logs what the adapters and buses have to say to stderr, errors
// only: the commands report faults themselves.
func cliLogger(stderr io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelError}))
}

// interruptible returns a context that SIGINT and SIGTERM end, so an
// interrupted scan still says what it found.
func interruptible() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
}

// findAdapter returns the adapter of cfg called name.
func findAdapter(cfg *config.Config, name string) (config.Adapter, error) {
	var names []string
	for _, a := range cfg.Adapters {
		if a.Name == name {
			return a, nil
		}
		names = append(names, a.Name)
	}
	return config.Adapter{}, fmt.Errorf("no adapter %q (the file has %s)", name, strings.Join(names, ", "))
}

// oneShot runs one configured adapter in this process, as the gateway
// runs it, for a one-off read or write: its readings and statuses come to
// the oneShot instead of the buffer and the brokers.
type oneShot struct {
	a      adapters.Adapter
	cancel context.CancelFunc
	done   chan struct{}

	mu        sync.Mutex
	readings  map[string]reading.Reading // the first of each point
	status    error                      // the latest status
	reported  bool                       // a status came
	described []reading.Point            // the points found at run time (SunSpec); nil until announced
	changed   chan struct{}              // capacity 1: something came
}

// startOneShot builds the adapter spec describes and runs it until stop.
// It gets no state directory: adapters that keep state (pulse counters)
// belong to the gateway and refuse to be built.
func startOneShot(spec config.Adapter, log *slog.Logger) (*oneShot, error) {
	a, err := adapters.New(spec, adapters.Env{Log: log.With("adapter", spec.Name)})
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	o := &oneShot{a: a, cancel: cancel, done: make(chan struct{}), readings: map[string]reading.Reading{}, changed: make(chan struct{}, 1)}
	go func() {
		defer close(o.done)
		if err := a.Run(ctx, o); err != nil {
			o.Status(err)
		}
	}()
	return o, nil
}

// stopTimeout bounds waiting for a one-off adapter to stop.
const stopTimeout = 5 * time.Second

// stop stops the adapter and waits for it, within stopTimeout.
func (o *oneShot) stop() {
	o.cancel()
	t := time.NewTimer(stopTimeout)
	defer t.Stop()
	select {
	case <-o.done:
	case <-t.C:
	}
}

// Emit implements adapters.Emitter.
func (o *oneShot) Emit(rs []reading.Reading) {
	o.mu.Lock()
	for _, r := range rs {
		if _, ok := o.readings[r.Point]; !ok {
			o.readings[r.Point] = r
		}
	}
	o.mu.Unlock()
	o.signal()
}

// Status implements adapters.Emitter.
func (o *oneShot) Status(err error) {
	o.mu.Lock()
	o.status, o.reported = err, true
	o.mu.Unlock()
	o.signal()
}

// Describe implements adapters.Emitter: it keeps the points the adapter
// found at run time (SunSpec), which a read waits for.
func (o *oneShot) Describe(ps []reading.Point) {
	o.mu.Lock()
	o.described = append(make([]reading.Point, 0, len(ps)), ps...)
	o.mu.Unlock()
	o.signal()
}

func (o *oneShot) signal() {
	select {
	case o.changed <- struct{}{}:
	default:
	}
}

// await waits until done, given the readings so far and the latest status
// (when one came), says so, or until timeout; it reports whether done did.
func (o *oneShot) await(timeout time.Duration, done func(rs map[string]reading.Reading, status error, reported bool) bool) bool {
	t := time.NewTimer(timeout)
	defer t.Stop()
	for {
		o.mu.Lock()
		ok := done(o.readings, o.status, o.reported)
		o.mu.Unlock()
		if ok {
			return true
		}
		select {
		case <-o.changed:
		case <-o.done:
			// Run returned (it failed): what came is all there is.
			o.mu.Lock()
			ok := done(o.readings, o.status, o.reported)
			o.mu.Unlock()
			return ok
		case <-t.C:
			return false
		}
	}
}

// command carries out a validated command on a: the adapter's Writer
// checks the value against the point, writes it and reads it back. The
// gateway does the same for commands from a broker.
func command(ctx context.Context, a adapters.Adapter, point string, v reading.Value) (reading.Value, reading.Reading, error) {
	w, ok := a.(adapters.Writer)
	if !ok {
		return reading.Value{}, reading.Reading{}, fmt.Errorf("adapter %q: %w", a.Name(), adapters.ErrNotWritable)
	}
	return w.Write(ctx, point, v)
}

// splitTarget splits ADAPTER/POINT; the point is optional when
// pointOptional is set.
func splitTarget(s string, pointOptional bool) (adapter, point string, err error) {
	adapter, point, _ = strings.Cut(s, "/")
	if adapter == "" || !pointOptional && point == "" || strings.Contains(point, "/") {
		if pointOptional {
			return "", "", fmt.Errorf("%q: want ADAPTER or ADAPTER/POINT", s)
		}
		return "", "", fmt.Errorf("%q: want ADAPTER/POINT", s)
	}
	return adapter, point, nil
}

// pointNames returns the names of an adapter's points, or only point when
// it is set, which must be one of them.
func pointNames(adapter string, points []reading.Point, point string) ([]string, error) {
	names := []string{}
	for _, p := range points {
		names = append(names, p.Name)
	}
	switch {
	case point == "":
		return names, nil
	case slices.Contains(names, point):
		return []string{point}, nil
	}
	return nil, fmt.Errorf("adapter %q has no point %q: %w", adapter, point, adapters.ErrNoPoint)
}
