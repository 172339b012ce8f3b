package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync/atomic"
	"time"

	"github.com/fieldgate/fieldgate/adapters"
	"github.com/fieldgate/fieldgate/config"
	"github.com/fieldgate/fieldgate/internal/backoff"
	"github.com/fieldgate/fieldgate/internal/ratelog"
	"github.com/fieldgate/fieldgate/internal/reading"
)

// runningAdapter is one adapter goroutine and how to stop it.
type runningAdapter struct {
	spec   config.Adapter
	a      adapters.Adapter
	em     *emitter
	cancel context.CancelFunc
	done   chan struct{}
	// restartFirst and restartMax pace restarts after a failure.
	restartFirst, restartMax time.Duration
	// runSince is when the current Run started (UnixNano), 0 between runs:
	// how long a paced adapter has been silent counts from it too.
	runSince atomic.Int64
}

// start launches one adapter under supervision; g.mu must be held.
func (g *gateway) start(spec config.Adapter) {
	log := g.log.With("adapter", spec.Name)
	em := &emitter{name: spec.Name, g: g, log: log, quiet: ratelog.New(log, statusLogInterval)}
	a, err := adapters.New(spec, adapters.Env{Log: log, State: g.state})
	if err != nil {
		// Validation passed, so this is a fault the operator must see on
		// the status topic too; the other adapters carry on.
		log.Error("cannot create adapter", "err", err)
		em.Status(err)
		return
	}
	ctx, cancel := context.WithCancel(g.ctx)
	r := &runningAdapter{spec: spec, a: a, em: em, cancel: cancel, done: make(chan struct{}),
		restartFirst: g.opt.restartFirst, restartMax: g.opt.restartMax}
	g.run[spec.Name] = r
	go r.supervise(ctx)
}

// supervise runs the adapter until ctx ends, restarting it after a panic or
// an error return so one adapter's bug never takes the gateway down.
func (r *runningAdapter) supervise(ctx context.Context) {
	defer close(r.done)
	bo := backoff.New(r.restartFirst, r.restartMax)
	for {
		err := r.runOnce(ctx)
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			err = errors.New("adapter stopped unexpectedly")
		}
		delay := bo.Next()
		r.em.log.Error("adapter failed; restarting", "err", err, "in", delay.Round(time.Second))
		r.em.Status(err)
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

func (r *runningAdapter) runOnce(ctx context.Context) (err error) {
	r.runSince.Store(time.Now().UnixNano())
	defer r.runSince.Store(0)
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic: %v", p)
			r.em.log.Error("adapter panicked", "panic", p, "stack", string(debug.Stack()))
		}
	}()
	return r.a.Run(ctx, r.em)
}

// progressing reports whether the adapter shows the progress its pace calls
// for (see adapters.Pacer): a status within the pace of the last one, or of
// the start of its Run. One that does not is marked stalled. Adapters
// without a pace, and adapters between runs, count as progressing.
func (r *runningAdapter) progressing(now time.Time) bool {
	p, ok := r.a.(adapters.Pacer)
	since := r.runSince.Load()
	if !ok || since == 0 {
		return true
	}
	pace := p.Pace()
	if pace <= 0 {
		return true
	}
	silent := now.Sub(time.Unix(0, max(since, r.em.lastStatus.Load())))
	if silent <= pace {
		return true
	}
	r.em.stall(fmt.Errorf("stalled: no poll result for %s, more than its pace of %s", silent.Round(time.Second), pace))
	return false
}

// Command implements bridge.Commander: it routes a validated command to the
// adapter, and stores the read-back reading like any other.
func (g *gateway) Command(ctx context.Context, adapter, point string, v reading.Value) (reading.Value, error) {
	g.mu.Lock()
	r, ok := g.run[adapter]
	g.mu.Unlock()
	if !ok {
		return reading.Value{}, fmt.Errorf("adapter %q: %w", adapter, adapters.ErrNoPoint)
	}
	written, back, err := command(ctx, r.a, point, v) // the bridge bounds ctx
	if err != nil {
		return reading.Value{}, err
	}
	r.em.Emit([]reading.Reading{back})
	return written, nil
}

// statusLogInterval is how often at most an adapter's status changes are
// logged each way: a device that flaps between ok and a fault every poll
// would otherwise log twice a poll.
const statusLogInterval = 10 * time.Second

// emitter stores one adapter's readings and forwards its status.
type emitter struct {
	name  string
	g     *gateway
	log   *slog.Logger
	quiet *ratelog.Limiter // status changes

	readings   atomic.Uint64
	status     atomic.Pointer[string] // the fault; "" when ok, nil until the first status
	lastStatus atomic.Int64           // UnixNano of the adapter's last Status call
	stalled    atomic.Bool            // marked stalled since its last Status
}

// Emit implements adapters.Emitter.
func (e *emitter) Emit(rs []reading.Reading) {
	if len(rs) == 0 {
		return
	}
	e.g.bridge.Observe(rs) // current values, for Sparkplug births, even if the buffer refuses them
	if _, _, err := e.g.buf.Append(rs); err != nil {
		// Logged when appends start failing, not for every poll of a full disk;
		// the metrics count every one.
		e.g.appendErrors.Add(1)
		if !e.g.appendFailing.Swap(true) {
			e.log.Error("buffer append failed; readings are being lost", "readings", len(rs), "err", err)
		}
		return
	}
	if e.g.appendFailing.Swap(false) {
		e.log.Info("buffer appends work again")
	}
	e.readings.Add(uint64(len(rs)))
}

// Status implements adapters.Emitter; changes are logged.
func (e *emitter) Status(err error) {
	e.lastStatus.Store(time.Now().UnixNano())
	e.stalled.Store(false)
	e.report(err)
}

// stall marks the adapter stalled, once until its next Status.
func (e *emitter) stall(err error) {
	if !e.stalled.Swap(true) {
		e.report(err)
	}
}

// report records a status and publishes a change.
func (e *emitter) report(err error) {
	msg := ""
	if err != nil {
		msg = err.Error()
	}
	e.status.Store(&msg)
	if !e.g.bridge.SetStatus(e.name, err) {
		return
	}
	if err != nil {
		e.quiet.Log(slog.LevelWarn, "fault", "adapter fault", "err", err)
	} else {
		e.quiet.Log(slog.LevelInfo, "ok", "adapter ok")
	}
}

// Describe implements adapters.Emitter: the bridge adds the points to its
// payloads, Home Assistant discovery and Sparkplug births.
func (e *emitter) Describe(ps []reading.Point) { e.g.bridge.SetPoints(e.name, ps) }

// fault returns the adapter's current fault, "" when it is ok; reported is
// false until it has reported a status.
func (e *emitter) fault() (fault string, reported bool) {
	if p := e.status.Load(); p != nil {
		return *p, true
	}
	return "", false
}
