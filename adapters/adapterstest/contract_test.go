package adapterstest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fieldgate/fieldgate/adapters"
	"github.com/fieldgate/fieldgate/internal/reading"
)

// The contract suite tested on itself: an adapter of in-memory hardware
// passes it, and each flaw the suite exists to catch fails the subtest that
// names it. Only the suite's logic is under test here, so the hardware is
// a fake; the real adapters run the suite against real peers.

// flaw is a way an adapter breaks the contract; "" keeps it.
type flaw string

const (
	sound      flaw = ""
	slowStop   flaw = "slow-stop"   // Run does not return once cancelled
	writeFirst flaw = "write-first" // writes reach the hardware before they are checked
	wrongError flaw = "wrong-error" // a read-only point refuses with ErrBadValue
	deaf       flaw = "deaf"        // the status stays ok while the hardware is broken
	wrongKind  flaw = "wrong-kind"  // a float point publishes an int
	anonymous  flaw = "anonymous"   // errors do not say whose they are
)

// bench is the fake hardware: a fault switch and a log of what was written.
type bench struct {
	mu     sync.Mutex
	broken bool
	writes []string
}

func (b *bench) setBroken(v bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.broken = v
}

func (b *bench) write(s string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.writes = append(b.writes, s)
}

// fake polls the bench every 5 ms: points level (float), count (int),
// label (string) and the writable on (bool).
type fake struct {
	b    *bench
	flaw flaw
}

func (f *fake) Name() string { return "fake" }

func (f *fake) Run(ctx context.Context, e adapters.Emitter) error {
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		f.b.mu.Lock()
		broken := f.b.broken
		f.b.mu.Unlock()
		switch {
		case broken && f.flaw != deaf:
			e.Status(f.identify("fake", errors.New("bench broken")))
		case broken:
			e.Status(nil)
		default:
			level := reading.Float(1.5)
			if f.flaw == wrongKind {
				level = reading.Int(1)
			}
			now := time.Now()
			e.Emit([]reading.Reading{
				{Adapter: "fake", Point: "level", Time: now, Value: level},
				{Adapter: "fake", Point: "count", Time: now, Value: reading.Int(-2)},
				{Adapter: "fake", Point: "label", Time: now, Value: reading.String("x")},
				{Adapter: "fake", Point: "on", Time: now, Value: reading.Bool(false)},
			})
			e.Status(nil)
		}
		select {
		case <-ctx.Done():
			if f.flaw == slowStop {
				select {} // the test process ends with it
			}
			return nil
		case <-tick.C:
		}
	}
}

func (f *fake) Write(_ context.Context, point string, v reading.Value) (reading.Value, reading.Reading, error) {
	if f.flaw == writeFirst {
		f.b.write(fmt.Sprintf("%s=%v", point, v))
	}
	refuse := func(err error) (reading.Value, reading.Reading, error) {
		return reading.Value{}, reading.Reading{}, f.identify(fmt.Sprintf("fake point %q", point), err)
	}
	switch point {
	case "on":
	case "level", "count", "label":
		if f.flaw == wrongError {
			return refuse(adapters.ErrBadValue)
		}
		return refuse(adapters.ErrNotWritable)
	default:
		return refuse(adapters.ErrNoPoint)
	}
	on, err := adapters.AsBool(v)
	if err != nil {
		return refuse(err)
	}
	if f.flaw != writeFirst {
		f.b.write(fmt.Sprintf("%s=%v", point, v))
	}
	return reading.Bool(on), reading.Reading{Adapter: "fake", Point: point, Time: time.Now(), Value: reading.Bool(on)}, nil
}

// identify wraps err with whose it is, unless the flaw is to forget.
func (f *fake) identify(who string, err error) error {
	if f.flaw == anonymous {
		return err
	}
	return fmt.Errorf("%s: %w", who, err)
}

func fakeRig(fl flaw) func(t *testing.T) Rig {
	return func(t *testing.T) Rig {
		b := &bench{}
		return Rig{
			Adapter: &fake{b: b, flaw: fl},
			Kinds: KindsOf([]reading.Point{
				{Name: "level", Type: "float64", Scale: 1},
				{Name: "count", Type: "int64", Scale: 1},
				{Name: "label", Type: "string", Scale: 1},
				{Name: "on", Type: "bool", Scale: 1, Writable: true},
			}),
			Break: func() { b.setBroken(true) },
			Heal:  func() { b.setBroken(false) },
			Refusals: []Refusal{
				{"nope", reading.Bool(true), adapters.ErrNoPoint},
				{"level", reading.Float(2), adapters.ErrNotWritable},
				{"on", reading.String("maybe"), adapters.ErrBadValue},
			},
			Accept: Command{"on", reading.String("on"), "on=on"},
			FirstWrite: func(t testing.TB) string {
				b.mu.Lock()
				defer b.mu.Unlock()
				if len(b.writes) == 0 {
					t.Fatal("no write reached the bench")
				}
				return b.writes[0]
			},
		}
	}
}

func TestContract(t *testing.T) { Contract(t, fakeRig(sound)) }

// flawEnv names the flaw TestFlawedAdapter gives its adapter.
const flawEnv = "FIELDGATE_CONTRACT_FLAW"

// TestContractCatchesFlaws runs the suite on a flawed adapter in a child
// process, one per flaw, and checks that the subtest for that flaw fails.
func TestContractCatchesFlaws(t *testing.T) {
	for fl, subtest := range map[flaw]string{
		slowStop:   "RunReturnsOnCancel",
		writeFirst: "RefusedWriteTouchesNoHardware",
		wrongError: "RefusedWriteTouchesNoHardware",
		deaf:       "StatusErrorThenOK",
		wrongKind:  "ReadingsCarryPointKind",
		anonymous:  "StatusErrorThenOK",
	} {
		t.Run(string(fl), func(t *testing.T) {
			t.Parallel()
			cmd := exec.Command(os.Args[0], "-test.run=^TestFlawedAdapter$/^"+subtest+"$", "-test.v", "-test.count=1", "-test.timeout=1m")
			cmd.Env = append(os.Environ(), flawEnv+"="+string(fl))
			out, err := cmd.CombinedOutput()
			var exit *exec.ExitError
			if !errors.As(err, &exit) {
				t.Fatalf("the suite passed an adapter with flaw %s (%v):\n%s", fl, err, out)
			}
			if !strings.Contains(string(out), "--- FAIL: TestFlawedAdapter/"+subtest+" (") {
				t.Errorf("%s did not fail on flaw %s:\n%s", subtest, fl, out)
			}
		})
	}
}

// TestFlawedAdapter runs the suite on an adapter with the flaw flawEnv
// names, in the child process TestContractCatchesFlaws starts; without it
// there is nothing to run.
func TestFlawedAdapter(t *testing.T) {
	fl := os.Getenv(flawEnv)
	if fl == "" {
		return
	}
	Contract(t, fakeRig(flaw(fl)))
}

func TestKindsOf(t *testing.T) {
	got := KindsOf([]reading.Point{
		{Name: "b", Type: "bool", Scale: 1},
		{Name: "s", Type: "string", Scale: 1},
		{Name: "f32", Type: "float32", Scale: 1},
		{Name: "f64", Type: "float64", Scale: 2},
		{Name: "i16", Type: "int16", Scale: 1},
		{Name: "u64", Type: "uint64", Scale: 1},
		{Name: "scaled", Type: "int16", Scale: 0.1},
		{Name: "offset", Type: "uint32", Scale: 1, Offset: -50},
	})
	want := map[string]reading.Kind{
		"b": reading.KindBool, "s": reading.KindString, "f32": reading.KindFloat, "f64": reading.KindFloat,
		"i16": reading.KindInt, "u64": reading.KindUint, "scaled": reading.KindFloat, "offset": reading.KindFloat,
	}
	if !maps.Equal(got, want) {
		t.Errorf("KindsOf = %v, want %v", got, want)
	}
}
