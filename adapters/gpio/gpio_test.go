package gpio

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/fieldgate/fieldgate/internal/reading"

	"github.com/warthog618/go-gpiocdev"
	"golang.org/x/sys/unix"

	"github.com/fieldgate/fieldgate/adapters"
	"github.com/fieldgate/fieldgate/adapters/adapterstest"
	"github.com/fieldgate/fieldgate/config"
)

func dur(d time.Duration) config.Duration { return config.Duration(d) }

func TestParsePoints(t *testing.T) {
	tests := []struct {
		name  string
		point PointConfig
		want  string // substring of the error; "" for valid
	}{
		{"defaults", PointConfig{Name: "door", Line: 17}, ""},
		{"full input", PointConfig{Name: "door", Line: 17, Direction: "input", Edge: "falling",
			Debounce: dur(20 * time.Millisecond), Bias: "pull_up", ActiveLow: true, Interval: dur(time.Second)}, ""},
		{"output", PointConfig{Name: "relay", Line: 5, Direction: "output", Initial: true, Bias: "disabled"}, ""},
		{"output edge none", PointConfig{Name: "relay", Line: 5, Direction: "output", Edge: "none"}, ""},
		{"bad direction", PointConfig{Name: "p", Direction: "in"}, `unknown direction "in"`},
		{"bad edge", PointConfig{Name: "p", Edge: "bth"}, `unknown edge "bth"`},
		{"bad bias", PointConfig{Name: "p", Bias: "pullup"}, `unknown bias "pullup"`},
		{"negative line", PointConfig{Name: "p", Line: -1}, "negative"},
		{"negative debounce", PointConfig{Name: "p", Debounce: dur(-time.Second)}, "negative"},
		{"initial on input", PointConfig{Name: "p", Initial: true}, "outputs only"},
		{"edge on output", PointConfig{Name: "p", Direction: "output", Edge: "both"}, "inputs only"},
		{"interval on output", PointConfig{Name: "p", Direction: "output", Interval: dur(time.Second)}, "inputs only"},
		{"counter", PointConfig{Name: "water", Line: 4, Counter: true, Edge: "both", ActiveLow: true, Interval: dur(time.Minute)}, ""},
		{"counter on output", PointConfig{Name: "p", Direction: "output", Counter: true}, "inputs only"},
		{"counter on falling edges", PointConfig{Name: "p", Counter: true, Edge: "falling"}, "edge must be rising or both"},
		{"counter without edges", PointConfig{Name: "p", Counter: true, Edge: "none"}, "edge must be rising or both"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ps, err := parsePoints(&Config{Name: "io", Chip: "gpiochip0", Points: []PointConfig{tt.point}})
			if tt.want == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				if got := ps[0]; got.output != (tt.point.Direction == "output") || got.level != tt.point.Initial {
					t.Errorf("parsed %+v from %+v", got, tt.point)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), `gpio "io" point "p"`) {
				t.Fatalf("error %v, want one naming the point and saying %q", err, tt.want)
			}
		})
	}
}

func TestParsePointsReportsEveryProblem(t *testing.T) {
	_, err := parsePoints(&Config{Name: "io", Points: []PointConfig{
		{Name: "a", Line: 1, Edge: "up"},
		{Name: "a", Line: 1},
	}})
	for _, want := range []string{"chip is required", `unknown edge "up"`, "duplicate point name", `line 1 is already point "a"`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not say %q", err, want)
		}
	}
}

func TestParsePointsDefaults(t *testing.T) {
	ps, err := parsePoints(&Config{Name: "io", Chip: "gpiochip0", Points: []PointConfig{
		{Name: "door", Line: 3},
		{Name: "water", Line: 4, Counter: true},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if p := ps[0]; p.output || p.counter || p.edge != gpiocdev.WithBothEdges || p.bias != gpiocdev.WithBiasAsIs {
		t.Errorf("defaults: %+v, want an input on both edges with bias as is", p)
	}
	if p := ps[1]; !p.counter || p.edge != gpiocdev.WithRisingEdge {
		t.Errorf("counter defaults: %+v, want a counter on rising edges", p)
	}
}

func TestCdevPath(t *testing.T) {
	tests := []struct{ in, want string }{
		{"/dev/gpiochip0", "/dev/gpiochip0"},
		{"/dev/sub/gpiochip1", "/dev/sub/gpiochip1"},
		{"/tmp/x/gpiochip2", "/dev/../tmp/x/gpiochip2"},
		{"/devices/gpiochip3", "/dev/../devices/gpiochip3"},
	}
	for _, tt := range tests {
		if got := cdevPath(tt.in); got != tt.want {
			t.Errorf("cdevPath(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestMonoToWall(t *testing.T) {
	wall := time.Date(2026, 11, 21, 23, 0, 0, 0, time.UTC)
	tests := []struct {
		event, now time.Duration
		want       time.Time
	}{
		{100 * time.Second, 100 * time.Second, wall},
		{99*time.Second + 877*time.Millisecond, 100 * time.Second, wall.Add(-123 * time.Millisecond)},
		{5 * time.Microsecond, 7 * time.Microsecond, wall.Add(-2 * time.Microsecond)},
	}
	for _, tt := range tests {
		if got := monoToWall(tt.event, tt.now, wall); !got.Equal(tt.want) {
			t.Errorf("monoToWall(%v, %v) = %v, want %v", tt.event, tt.now, got, tt.want)
		}
	}
}

func TestWallClockNow(t *testing.T) {
	before := time.Now()
	got := wallClock(monotonicNow(t))
	after := time.Now()
	if got.Before(before) || got.After(after) {
		t.Errorf("wallClock(now) = %v, want within [%v, %v]", got, before, after)
	}
}

func TestNextBeat(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		now  time.Time
		want time.Time
	}{
		{"on time", t0.Add(time.Millisecond), t0.Add(time.Second)},
		{"late within a period", t0.Add(900 * time.Millisecond), t0.Add(time.Second)},
		{"stalled past the next", t0.Add(2500 * time.Millisecond), t0.Add(3500 * time.Millisecond)},
	}
	for _, tt := range tests {
		if got := nextBeat(t0, time.Second, tt.now); !got.Equal(tt.want) {
			t.Errorf("%s: nextBeat = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestApplyRejectsBadOptions(t *testing.T) {
	cfg := &Config{Name: "io", Chip: "gpiochip0", Points: []PointConfig{{Name: "door"}}}
	for _, opt := range []option{withProbe(0), withRetry(0, time.Second), withRetry(time.Second, time.Millisecond)} {
		a, err := New(cfg, adapters.Env{})
		if err != nil {
			t.Fatal(err)
		}
		if err := a.apply(opt); err == nil {
			t.Error("apply accepted a non-positive probe or retry period")
		}
	}
}

// newWith is New with test options applied.
func newWith(t testing.TB, cfg *Config, env adapters.Env, opts ...option) *Adapter {
	t.Helper()
	a, err := New(cfg, env)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.apply(opts...); err != nil {
		t.Fatal(err)
	}
	return a
}

func TestWriteRefusals(t *testing.T) {
	a, err := New(&Config{Name: "io", Chip: "gpiochip0", Points: []PointConfig{
		{Name: "door", Line: 1},
		{Name: "relay", Line: 2, Direction: "output"},
	}}, adapters.Env{})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		point string
		v     reading.Value
		want  error
	}{
		{"nope", reading.Bool(true), adapters.ErrNoPoint},
		{"door", reading.Bool(true), adapters.ErrNotWritable},
		{"relay", reading.String("maybe"), adapters.ErrBadValue},
		{"relay", reading.Int(2), adapters.ErrBadValue},
		{"relay", reading.String("ON"), errNotOpen}, // valid, but Run has not opened the chip
	}
	for _, tt := range tests {
		if _, _, err := a.Write(context.Background(), tt.point, tt.v); !errors.Is(err, tt.want) {
			t.Errorf("Write(%q, %v) = %v, want %v", tt.point, tt.v, err, tt.want)
		}
	}
}

func TestRegistered(t *testing.T) {
	cfg := &Config{Name: "io", Chip: "gpiochip0", Points: []PointConfig{{Name: "door"}}}
	a, err := adapters.New(config.Adapter{Kind: "gpio", Name: "io", Config: cfg}, adapters.Env{})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := a.(adapters.Writer); !ok || a.Name() != "io" {
		t.Errorf("adapters.New(gpio) = %T named %q, want a Writer named io", a, a.Name())
	}
	if _, err := adapters.New(config.Adapter{Kind: "gpio", Config: &otherConfig{}}, adapters.Env{}); err == nil {
		t.Error("the factory accepted a config of the wrong type")
	}
}

// TestMissingChip runs against an empty device directory, which every host
// has: the adapter reports the missing chip, keeps retrying, and stops.
func TestMissingChip(t *testing.T) {
	a := newWith(t, &Config{Name: "io", Chip: "pinctrl-rp1", Points: []PointConfig{{Name: "door"}}}, adapters.Env{},
		withDevDir(t.TempDir()), withRetry(10*time.Millisecond, 20*time.Millisecond))
	rec := &adapterstest.Recorder{}
	adapterstest.Run(t, a, rec)
	for range 3 { // the first failure and two retries
		err := rec.NextStatus(t)
		if !errors.Is(err, ErrChipNotFound) || !strings.Contains(err.Error(), `gpio "io"`) || !strings.Contains(err.Error(), `"pinctrl-rp1"`) {
			t.Fatalf("status %v, want chip-not-found naming adapter and chip", err)
		}
	}
}

// monotonicNow reads CLOCK_MONOTONIC, the clock of the kernel's event timestamps.
func monotonicNow(t *testing.T) time.Duration {
	t.Helper()
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		t.Fatal(err)
	}
	return time.Duration(ts.Nano())
}

// otherConfig is an adapter config of another kind.
type otherConfig struct{ Config }
