// Package adapterstest helps adapter tests: Run runs an adapter for the
// length of a test, and a Recorder, the Emitter it reports to, keeps every
// batch of readings, every status and every announcement of points in order
// and lets the test await them within a bounded time instead of sleeping.
// Contract is the suite every adapter runs against its real peers, through
// a Rig of hooks on them.
package adapterstest

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/fieldgate/fieldgate/internal/reading"

	"github.com/fieldgate/fieldgate/adapters"
)

// Timeout bounds every wait of a Recorder; a test that waits longer fails.
const Timeout = 10 * time.Second

// Run runs a until the test ends or stop is called, reporting to e. stop
// cancels Run's context and fails the test unless Run returns nil within
// Timeout; calls after the first do nothing.
func Run(t testing.TB, a adapters.Adapter, e adapters.Emitter) (stop func()) {
	t.Helper()
	s := run(t, a, e, Timeout)
	return func() { s() }
}

// run is Run with a bound of its own; stop returns how long Run took to
// return once cancelled, or 0 if it did not within the bound.
func run(t testing.TB, a adapters.Adapter, e adapters.Emitter, within time.Duration) (stop func() time.Duration) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx, e) }()
	var (
		once sync.Once
		took time.Duration
	)
	stop = func() time.Duration {
		once.Do(func() {
			cancel()
			begin := time.Now()
			select {
			case err := <-done:
				took = time.Since(begin)
				if err != nil {
					t.Errorf("%s: Run returned %v", a.Name(), err)
				}
			case <-time.After(within):
				t.Errorf("%s: Run did not return within %v of cancellation", a.Name(), within)
			}
		})
		return took
	}
	t.Cleanup(func() { stop() })
	return stop
}

// Recorder is an adapters.Emitter that records what an adapter emits. The
// zero value is ready to use; Emit, Status and Describe are safe for
// concurrent use.
//
// The test takes what was recorded, in order, through two cursors: one over
// readings (NextReading, NextBatch, Quiet) and one over statuses
// (NextStatus, AwaitStatus, NextCycle, AwaitCycle), where each status is
// taken with the readings emitted since the previous one as a Cycle. The
// cursors belong to the test goroutine. Announcements of points are
// awaited with AwaitPoints.
type Recorder struct {
	mu       sync.Mutex
	batches  []batch
	statuses []status
	points   [][]reading.Point // each Describe call
	changed  chan struct{}     // closed at the next record; nil until a wait needs it

	batch, offset int // the next reading to take: batches[batch].readings[offset]
	status        int // the next status to take
}

type batch struct {
	readings []reading.Reading
	at       time.Time // when Emit was called
}

type status struct {
	err     error
	batches int // batches recorded before it
}

// Cycle is one poll cycle as a polling adapter reports it: the readings
// emitted since the previous Status, and the Status that closed the cycle.
type Cycle struct {
	Readings []reading.Reading
	Err      error
}

// Value returns the value the cycle emitted for point, if any.
func (c Cycle) Value(point string) (reading.Value, bool) {
	for _, r := range c.Readings {
		if r.Point == point {
			return r.Value, true
		}
	}
	return reading.Value{}, false
}

// IsOK reports a status of health, for AwaitStatus.
func IsOK(err error) bool { return err == nil }

// IsError reports a status of a fault, for AwaitStatus.
func IsError(err error) bool { return err != nil }

// Emit records one batch of readings.
func (r *Recorder) Emit(rs []reading.Reading) {
	b := batch{readings: slices.Clone(rs), at: time.Now()}
	r.record(func() { r.batches = append(r.batches, b) })
}

// Status records one status.
func (r *Recorder) Status(err error) {
	r.record(func() { r.statuses = append(r.statuses, status{err: err, batches: len(r.batches)}) })
}

// Describe records one announcement of points.
func (r *Recorder) Describe(ps []reading.Point) {
	ps = slices.Clone(ps)
	r.record(func() { r.points = append(r.points, ps) })
}

// AwaitPoints waits for an announcement that satisfies ok, looking at every
// one recorded so far first, and returns it.
func (r *Recorder) AwaitPoints(t testing.TB, what string, ok func([]reading.Point) bool) []reading.Point {
	t.Helper()
	var found []reading.Point
	r.wait(t, what, func() bool {
		for _, ps := range r.points {
			if ok(ps) {
				found = ps
				return true
			}
		}
		return false
	})
	return found
}

func (r *Recorder) record(add func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	add()
	if r.changed != nil {
		close(r.changed)
		r.changed = nil
	}
}

// NextReading takes the next reading, waiting for it, and returns it with
// the time Emit handed it over.
func (r *Recorder) NextReading(t testing.TB) (reading.Reading, time.Time) {
	t.Helper()
	var rd reading.Reading
	var at time.Time
	r.wait(t, "reading", func() bool {
		if !r.skipTaken() {
			return false
		}
		b := r.batches[r.batch]
		rd, at = b.readings[r.offset], b.at
		r.offset++
		return true
	})
	return rd, at
}

// NextBatch takes the readings of the next Emit call, or what NextReading
// left of it, waiting for them. Emit calls without readings are skipped.
func (r *Recorder) NextBatch(t testing.TB) []reading.Reading {
	t.Helper()
	var rs []reading.Reading
	r.wait(t, "batch of readings", func() bool {
		if !r.skipTaken() {
			return false
		}
		rs = r.batches[r.batch].readings[r.offset:]
		r.batch, r.offset = r.batch+1, 0
		return true
	})
	return rs
}

// skipTaken moves the reading cursor past batches taken whole or empty and
// reports whether a reading is there to take.
func (r *Recorder) skipTaken() bool {
	for r.batch < len(r.batches) && r.offset == len(r.batches[r.batch].readings) {
		r.batch, r.offset = r.batch+1, 0
	}
	return r.batch < len(r.batches)
}

// Quiet fails the test if a reading is there to take or arrives within d:
// how long an absence must last to count is the test's judgement.
func (r *Recorder) Quiet(t testing.TB, d time.Duration) {
	t.Helper()
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		r.mu.Lock()
		pending := r.skipTaken()
		var rd reading.Reading
		if pending {
			rd = r.batches[r.batch].readings[r.offset]
		}
		changed := r.changedLocked()
		r.mu.Unlock()
		if pending {
			t.Fatalf("unexpected reading %s = %v", rd.Point, rd.Value)
		}
		select {
		case <-changed:
		case <-timer.C:
			return
		}
	}
}

// NextStatus takes the next status, waiting for it.
func (r *Recorder) NextStatus(t testing.TB) error {
	t.Helper()
	return r.NextCycle(t).Err
}

// AwaitStatus takes statuses until one satisfies ok, and returns it.
func (r *Recorder) AwaitStatus(t testing.TB, what string, ok func(error) bool) error {
	t.Helper()
	return r.AwaitCycle(t, what, func(c Cycle) bool { return ok(c.Err) }).Err
}

// NextCycle takes the next status as the cycle it closed, waiting for it.
func (r *Recorder) NextCycle(t testing.TB) Cycle {
	t.Helper()
	return r.AwaitCycle(t, "status", func(Cycle) bool { return true })
}

// AwaitCycle takes cycles until one satisfies ok, and returns it.
func (r *Recorder) AwaitCycle(t testing.TB, what string, ok func(Cycle) bool) Cycle {
	t.Helper()
	var found Cycle
	r.wait(t, what, func() bool {
		for r.status < len(r.statuses) {
			c := r.cycle(r.status)
			r.status++
			if ok(c) {
				found = c
				return true
			}
		}
		return false
	})
	return found
}

// Cycles returns every cycle recorded so far, taken or not.
func (r *Recorder) Cycles() []Cycle {
	r.mu.Lock()
	defer r.mu.Unlock()
	cs := make([]Cycle, len(r.statuses))
	for i := range cs {
		cs[i] = r.cycle(i)
	}
	return cs
}

// cycle returns the cycle closed by status i.
func (r *Recorder) cycle(i int) Cycle {
	from := 0
	if i > 0 {
		from = r.statuses[i-1].batches
	}
	var rs []reading.Reading
	for _, b := range r.batches[from:r.statuses[i].batches] {
		rs = append(rs, b.readings...)
	}
	return Cycle{Readings: rs, Err: r.statuses[i].err}
}

// wait calls take under the lock, at once and after every record, until it
// reports that it took what the test awaits; it fails the test after
// Timeout.
func (r *Recorder) wait(t testing.TB, what string, take func() bool) {
	t.Helper()
	timer := time.NewTimer(Timeout)
	defer timer.Stop()
	for {
		r.mu.Lock()
		done := take()
		changed := r.changedLocked()
		r.mu.Unlock()
		if done {
			return
		}
		select {
		case <-changed:
		case <-timer.C:
			t.Fatalf("no %s within %v (%s)", what, Timeout, r.summary())
		}
	}
}

func (r *Recorder) changedLocked() <-chan struct{} {
	if r.changed == nil {
		r.changed = make(chan struct{})
	}
	return r.changed
}

// summary describes what was recorded, for a failure message.
func (r *Recorder) summary() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := fmt.Sprintf("%d batches and %d statuses recorded", len(r.batches), len(r.statuses))
	if n := len(r.statuses); n > 0 {
		s += fmt.Sprintf(", the last %v", r.statuses[n-1].err)
	}
	return s
}
