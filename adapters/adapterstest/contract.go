package adapterstest

import (
	"context"
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fieldgate/fieldgate/adapters"
	"github.com/fieldgate/fieldgate/internal/reading"
)

// StopWithin bounds how long Run may take to return once its context is
// cancelled, in the contract: a request already on the wire may finish
// first, so rigs keep their request timeouts at 1 s or less. The gateway
// gives all its adapters 10 s together to stop.
const StopWithin = 2 * time.Second

// Rig is an adapter under test wired to hardware the test controls (a
// Modbus server, a socat cable, the kernel's gpio-sim), with the hooks
// Contract needs to fault that hardware and to see what reached it. Every
// hook is called from the test's goroutine.
type Rig struct {
	// Adapter is built for this rig and not running yet. It must be an
	// adapters.Writer when Refusals are given.
	Adapter adapters.Adapter
	// Kinds holds every point the adapter publishes with the kind its
	// readings must carry; KindsOf derives it from the config.
	Kinds map[string]reading.Kind
	// Prompt, if set, makes the hardware send a reading of every point,
	// for an adapter that publishes only what a device sends by itself;
	// the suite calls it once the status is ok.
	Prompt func()
	// Break faults the hardware as in the field (the device stops, the
	// cable is pulled, the chip vanishes); Heal brings it back where the
	// adapter looks for it. Each is called at most once, Break first.
	Break, Heal func()

	// Refusals are writes the adapter must refuse, each with the error
	// its refusal must wrap: a point that does not exist, one that is not
	// writable, a value of the wrong type. None may reach the hardware.
	Refusals []Refusal
	// Accept is a write the adapter must carry out. Sent after the
	// refusals, it must be the first write the hardware sees: which also
	// shows that FirstWrite does see writes.
	Accept Command
	// FirstWrite waits, within Timeout, until the hardware has seen a
	// write since the rig was built, and describes the first (the request
	// a Modbus server stored, the line at the far end of a cable);
	// hardware that keeps no log describes what the writes changed (the
	// levels of the outputs). It fails the test if none arrives.
	FirstWrite func(t testing.TB) string
}

// Refusal is a write the adapter must refuse with an error wrapping Want
// (adapters.ErrNoPoint, ErrNotWritable or ErrBadValue).
type Refusal struct {
	Point string
	Value reading.Value
	Want  error
}

// Command is a write the adapter must carry out; Seen is how the rig's
// FirstWrite describes it once it has reached the hardware.
type Command struct {
	Point string
	Value reading.Value
	Seen  string
}

// KindsOf returns the kind each point's readings carry, by the rule every
// adapter follows: a bool is a KindBool, a string a KindString, a float a
// KindFloat; an integer keeps its signedness (KindInt, KindUint) unless a
// scale or offset makes it a KindFloat.
func KindsOf(points []reading.Point) map[string]reading.Kind {
	kinds := make(map[string]reading.Kind, len(points))
	for _, p := range points {
		exact := p.Scale == 1 && p.Offset == 0
		var k reading.Kind
		switch {
		case p.Type == "bool":
			k = reading.KindBool
		case p.Type == "string":
			k = reading.KindString
		case exact && strings.HasPrefix(p.Type, "int"):
			k = reading.KindInt
		case exact && strings.HasPrefix(p.Type, "uint"):
			k = reading.KindUint
		default:
			k = reading.KindFloat
		}
		kinds[p.Name] = k
	}
	return kinds
}

// Contract proves, as subtests of t, what every adapter promises the
// gateway, on a rig newRig builds for each subtest:
//
//   - RunReturnsOnCancel: Run returns nil within StopWithin of its
//     context's end, while the hardware works and again, called a second
//     time as the gateway's supervisor does, while it is broken.
//   - RefusedWriteTouchesNoHardware: each refusal, before Run and while it
//     runs, names the point and wraps its error, and the first write the
//     hardware sees is the accepted one, whose read-back carries its point's
//     kind.
//   - StatusErrorThenOK: a fault of the hardware turns the status to an
//     error naming the adapter; once healed it turns back to ok and
//     readings resume.
//   - ReadingsCarryPointKind: every point publishes, each reading with the
//     kind Kinds gives, the adapter's name and a time.
func Contract(t *testing.T, newRig func(t *testing.T) Rig) {
	t.Run("RunReturnsOnCancel", func(t *testing.T) { runReturnsOnCancel(t, newRig(t)) })
	t.Run("RefusedWriteTouchesNoHardware", func(t *testing.T) { refusedWriteTouchesNoHardware(t, newRig(t)) })
	t.Run("StatusErrorThenOK", func(t *testing.T) { statusErrorThenOK(t, newRig(t)) })
	t.Run("ReadingsCarryPointKind", func(t *testing.T) { readingsCarryPointKind(t, newRig(t)) })
}

func runReturnsOnCancel(t *testing.T, rig Rig) {
	rec := &Recorder{}
	stop := run(t, rig.Adapter, rec, StopWithin)
	rec.AwaitStatus(t, "status ok", IsOK)
	if took := stop(); took > 0 {
		t.Logf("Run returned %v after cancellation", took.Round(time.Microsecond))
	}

	rig.Break()
	rec = &Recorder{}
	stop = run(t, rig.Adapter, rec, StopWithin)
	rec.AwaitStatus(t, "status error with the hardware broken", IsError)
	if took := stop(); took > 0 {
		t.Logf("Run, started again with the hardware broken, returned %v after cancellation", took.Round(time.Microsecond))
	}
}

func refusedWriteTouchesNoHardware(t *testing.T, rig Rig) {
	if len(rig.Refusals) == 0 {
		t.Skip("the rig gives no writes to refuse")
	}
	w, ok := rig.Adapter.(adapters.Writer)
	if !ok {
		t.Fatalf("%T takes no writes, but the rig gives writes to refuse", rig.Adapter)
	}
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	refuse := func(when string) {
		t.Helper()
		for _, r := range rig.Refusals {
			_, _, err := w.Write(ctx, r.Point, r.Value)
			if !errors.Is(err, r.Want) || !strings.Contains(err.Error(), r.Point) {
				t.Errorf("%s: Write(%s, %v) = %v, want an error naming the point and wrapping %q", when, r.Point, r.Value, err, r.Want)
			}
		}
	}
	refuse("before Run")
	rec := &Recorder{}
	stop := Run(t, rig.Adapter, rec)
	defer stop()
	rec.AwaitStatus(t, "status ok", IsOK)
	refuse("while running")

	a := rig.Accept
	written, back, err := w.Write(ctx, a.Point, a.Value)
	if err != nil {
		t.Fatalf("Write(%s, %v): %v", a.Point, a.Value, err)
	}
	want := rig.Kinds[a.Point]
	if written.Kind() != want || back.Value.Kind() != want || back.Point != a.Point || back.Adapter != rig.Adapter.Name() {
		t.Errorf("Write(%s, %v) = %v (%s), read back %s/%s = %v (%s); want %s values of %s/%s",
			a.Point, a.Value, written, written.Kind(), back.Adapter, back.Point, back.Value, back.Value.Kind(),
			want, rig.Adapter.Name(), a.Point)
	}
	if got := rig.FirstWrite(t); got != a.Seen {
		t.Errorf("the first write at the hardware was %q, want the accepted %q: a refused write reached it", got, a.Seen)
	}
}

func statusErrorThenOK(t *testing.T, rig Rig) {
	rec := &Recorder{}
	stop := Run(t, rig.Adapter, rec)
	defer stop() // before the rig's hardware goes, healed or not
	rec.AwaitStatus(t, "status ok", IsOK)
	rig.Break()
	err := rec.AwaitStatus(t, "status error after the fault", IsError)
	if !strings.Contains(err.Error(), rig.Adapter.Name()) {
		t.Errorf("status %q does not name the adapter", err)
	}
	t.Logf("status while broken: %v", err)
	healed := time.Now()
	rig.Heal()
	rec.AwaitStatus(t, "status ok once healed", IsOK)
	t.Logf("status ok %v after healing", time.Since(healed).Round(time.Millisecond))
	awaitEveryPoint(t, rig, rec, healed)
}

func readingsCarryPointKind(t *testing.T, rig Rig) {
	rec := &Recorder{}
	stop := Run(t, rig.Adapter, rec)
	defer stop()
	rec.AwaitStatus(t, "status ok", IsOK)
	awaitEveryPoint(t, rig, rec, time.Time{})
}

// awaitEveryPoint prompts the hardware if the rig says how, then takes
// readings emitted since since until every point of rig.Kinds had one,
// checking each on the way; it fails the test if that takes over Timeout.
func awaitEveryPoint(t *testing.T, rig Rig, rec *Recorder, since time.Time) {
	t.Helper()
	if rig.Prompt != nil {
		rig.Prompt()
	}
	missing := make(map[string]bool, len(rig.Kinds))
	for p := range rig.Kinds {
		missing[p] = true
	}
	wrong := map[string]bool{} // points reported already
	deadline := time.Now().Add(Timeout)
	for len(missing) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("no reading of %v within %v", slices.Sorted(maps.Keys(missing)), Timeout)
		}
		r, at := rec.NextReading(t)
		if at.Before(since) {
			continue
		}
		delete(missing, r.Point)
		want, known := rig.Kinds[r.Point]
		switch {
		case wrong[r.Point]:
		case !known:
			t.Errorf("reading of %q, a point the rig does not know", r.Point)
		case r.Value.Kind() != want:
			t.Errorf("%s = %v has kind %s, want %s", r.Point, r.Value, r.Value.Kind(), want)
		case r.Adapter != rig.Adapter.Name() || r.Time.IsZero():
			t.Errorf("reading %+v: want adapter %q and a time", r, rig.Adapter.Name())
		default:
			continue
		}
		wrong[r.Point] = true
	}
}
