package adapterstest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/fieldgate/fieldgate/internal/reading"

	"github.com/fieldgate/fieldgate/adapters"
)

func newReading(point string, v int64) reading.Reading {
	return reading.Reading{Adapter: "a", Point: point, Value: reading.Int(v)}
}

// TestCycles: each status closes a cycle holding the readings emitted since
// the previous one; statuses are taken in order, one cursor for both views.
func TestCycles(t *testing.T) {
	fault := errors.New("fault")
	var r Recorder
	r.Emit([]reading.Reading{newReading("x", 1)})
	r.Status(nil)
	r.Emit([]reading.Reading{newReading("x", 2)})
	r.Emit([]reading.Reading{newReading("y", 3)})
	r.Status(fault)
	r.Status(nil)

	want := "[{[x=1] <nil>} {[x=2 y=3] fault} {[] <nil>}]"
	if got := show(r.Cycles()); got != want {
		t.Errorf("Cycles = %s, want %s", got, want)
	}
	if c := r.NextCycle(t); show([]Cycle{c}) != "[{[x=1] <nil>}]" {
		t.Errorf("NextCycle = %s", show([]Cycle{c}))
	}
	if v, ok := r.AwaitCycle(t, "y", func(c Cycle) bool { _, ok := c.Value("y"); return ok }).Value("y"); !ok || v != reading.Int(3) {
		t.Errorf("AwaitCycle: y = %v, %v", v, ok)
	}
	if err := r.NextStatus(t); err != nil {
		t.Errorf("NextStatus = %v, want the last, nil", err)
	}
	if len(r.Cycles()) != 3 {
		t.Error("taking cycles changed what Cycles returns")
	}
}

// TestReadings: the reading cursor walks readings one by one or batch by
// batch, skipping empty batches, independently of the status cursor.
func TestReadings(t *testing.T) {
	var r Recorder
	r.Emit([]reading.Reading{newReading("x", 1), newReading("x", 2)})
	r.Status(nil)
	r.Emit(nil)
	r.Emit([]reading.Reading{newReading("y", 3)})

	if x, at := r.NextReading(t); x.Value != reading.Int(1) || at.IsZero() {
		t.Errorf("NextReading = %v at %v", x.Value, at)
	}
	if b := r.NextBatch(t); len(b) != 1 || b[0].Value != reading.Int(2) {
		t.Errorf("NextBatch = %v, want the rest of the first batch", b)
	}
	if x, _ := r.NextReading(t); x.Value != reading.Int(3) {
		t.Errorf("NextReading = %v, want 3 past the empty batch", x.Value)
	}
	if err := r.AwaitStatus(t, "ok", IsOK); err != nil {
		t.Errorf("AwaitStatus = %v", err)
	}
	r.Quiet(t, time.Millisecond)
}

// TestWaits: a wait returns as soon as another goroutine records what it
// awaits.
func TestWaits(t *testing.T) {
	var r Recorder
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() {
		r.Status(errors.New("first"))
		r.Emit([]reading.Reading{newReading("x", 1)})
		r.Status(nil)
	})
	if err := r.AwaitStatus(t, "ok", IsOK); err != nil {
		t.Errorf("AwaitStatus = %v", err)
	}
	if b := r.NextBatch(t); len(b) != 1 {
		t.Errorf("NextBatch = %v", b)
	}
}

// blocker is an adapter that reports one status and runs until its context
// ends.
type blocker struct{ stopped chan struct{} }

func (b blocker) Name() string { return "blocker" }

func (b blocker) Run(ctx context.Context, e adapters.Emitter) error {
	e.Status(nil)
	<-ctx.Done()
	close(b.stopped)
	return nil
}

// TestRun: the adapter runs until stop, which returns once Run has.
func TestRun(t *testing.T) {
	var r Recorder
	b := blocker{stopped: make(chan struct{})}
	stop := Run(t, b, &r)
	r.AwaitStatus(t, "running", IsOK)
	stop()
	select {
	case <-b.stopped:
	default:
		t.Fatal("stop returned before Run did")
	}
	stop() // a no-op
}

func show(cs []Cycle) string {
	out := make([]string, len(cs))
	for i, c := range cs {
		rs := make([]string, len(c.Readings))
		for j, r := range c.Readings {
			rs[j] = fmt.Sprintf("%s=%v", r.Point, r.Value)
		}
		out[i] = fmt.Sprintf("{%v %v}", rs, c.Err)
	}
	return fmt.Sprint(out)
}
