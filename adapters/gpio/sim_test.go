//go:build gpiosim

// Tests against the kernel's GPIO simulator (gpio-sim) through the real
// character device. They need a kernel with CONFIG_GPIO_SIM and root:
// test/gpiovm/run.sh boots one in qemu with this package's test binary as
// /init; on a host with gpio-sim loaded, `go test -tags gpiosim` as root runs
// them directly.

package gpio

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/fieldgate/fieldgate/internal/reading"

	"github.com/warthog618/go-gpiocdev"
	"github.com/warthog618/go-gpiosim"
	"golang.org/x/sys/unix"

	"github.com/fieldgate/fieldgate/adapters"
	"github.com/fieldgate/fieldgate/adapters/adapterstest"
	"github.com/fieldgate/fieldgate/config"
)

// vmExitMarker precedes the exit code on the console; test/gpiovm waits for it.
const vmExitMarker = "GPIOVM-EXIT"

func TestMain(m *testing.M) {
	if os.Getpid() == 1 {
		vmInit(m)
	}
	os.Exit(m.Run())
}

// vmInit runs the tests as a VM's init process: it mounts what the tests
// need, runs them, reports the exit code to the host and reboots, which ends
// a qemu started with -no-reboot. An init that exits panics the kernel, so it
// never returns.
func vmInit(m *testing.M) {
	for _, fs := range []struct{ typ, dir string }{
		{"proc", "/proc"}, {"sysfs", "/sys"}, {"devtmpfs", "/dev"}, {"configfs", "/sys/kernel/config"},
	} {
		if err := os.MkdirAll(fs.dir, 0o755); err != nil {
			fmt.Println("vm init:", err)
		}
		if err := unix.Mount(fs.typ, fs.dir, fs.typ, 0, ""); err != nil {
			fmt.Printf("vm init: mount %s on %s: %v\n", fs.typ, fs.dir, err)
		}
	}
	code := m.Run()
	fmt.Printf("%s %d\n", vmExitMarker, code)
	_ = unix.IoctlSetInt(1, unix.TCSBRK, 1) // tcdrain: the console must send the marker before the reboot
	for {
		fmt.Println("vm init: reboot:", unix.Reboot(unix.LINUX_REBOOT_CMD_RESTART))
		time.Sleep(time.Second)
	}
}

var simCount atomic.Int32

// simLabel returns a chip label no other simulated chip of the test
// binary has.
func simLabel() string { return fmt.Sprintf("fg-sim-%d", simCount.Add(1)) }

// newSim creates a simulated chip of n lines with a label of its own and
// removes it when the test ends.
func newSim(t *testing.T, n int) (*gpiosim.Chip, string) {
	t.Helper()
	label := simLabel()
	return &newSimLabelled(t, n, label).Chips[0], label
}

// newSimLabelled creates a simulator of one chip of n lines labelled label
// and removes it when the test ends; closing it earlier unplugs the chip.
func newSimLabelled(t *testing.T, n int, label string) *gpiosim.Sim {
	t.Helper()
	s, err := gpiosim.NewSim(gpiosim.WithBank(gpiosim.NewBank(label, n)))
	if err != nil {
		t.Fatalf("gpio-sim: %v", err)
	}
	t.Cleanup(s.Close)
	return s
}

// start runs an adapter for chip with points, fast probe and retry, and
// waits until it reports the chip open.
func start(t *testing.T, chip string, points []PointConfig, opts ...option) (*Adapter, *adapterstest.Recorder, func()) {
	t.Helper()
	return startIn(t, "", chip, points, opts...)
}

// startIn is start with a state directory, for counters.
func startIn(t *testing.T, sdir, chip string, points []PointConfig, opts ...option) (*Adapter, *adapterstest.Recorder, func()) {
	t.Helper()
	a, rec, stop := startFailing(t, sdir, chip, points, opts...)
	if err := rec.NextStatus(t); err != nil {
		t.Fatalf("status %v, want ok", err)
	}
	return a, rec, stop
}

// startFailing runs an adapter without waiting for its first status.
func startFailing(t *testing.T, sdir, chip string, points []PointConfig, opts ...option) (*Adapter, *adapterstest.Recorder, func()) {
	t.Helper()
	a := build(t, sdir, &Config{Name: "io", Chip: chip, Points: points}, opts...)
	rec := &adapterstest.Recorder{}
	stop := adapterstest.Run(t, a, rec)
	return a, rec, stop
}

// build makes an adapter for cfg that probes and retries quickly, with
// counters' totals in sdir unless it is empty.
func build(t *testing.T, sdir string, cfg *Config, opts ...option) *Adapter {
	t.Helper()
	opts = append([]option{withProbe(50 * time.Millisecond), withRetry(50*time.Millisecond, 200*time.Millisecond)}, opts...)
	var env adapters.Env
	if sdir != "" {
		env.State = stateDir(t, sdir)
	}
	return newWith(t, cfg, env, opts...)
}

// expect waits for the next reading and checks its point and value; it
// returns the reading and when Emit received it.
func expect(t *testing.T, rec *adapterstest.Recorder, point string, v bool) (reading.Reading, time.Time) {
	t.Helper()
	x, at := rec.NextReading(t)
	if x.Adapter != "io" || x.Point != point || x.Value != reading.Bool(v) {
		t.Fatalf("reading %s/%s = %v, want io/%s = %v", x.Adapter, x.Point, x.Value, point, v)
	}
	return x, at
}

func level(t testing.TB, c *gpiosim.Chip, offset int) int {
	t.Helper()
	v, err := c.Level(offset)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestEdges(t *testing.T) {
	tests := []struct {
		edge string
		want []bool // readings for the pulls up, down, up
	}{
		{"both", []bool{true, false, true}},
		{"rising", []bool{true, true}},
		{"falling", []bool{false}},
	}
	for _, tt := range tests {
		t.Run(tt.edge, func(t *testing.T) {
			c, label := newSim(t, 4)
			_, rec, _ := start(t, label, []PointConfig{{Name: "door", Line: 2, Edge: tt.edge}})
			expect(t, rec, "door", false) // the level when opened
			begin := time.Now()
			for i, pull := range []int{1, 0, 1} {
				if err := c.SetPull(2, pull); err != nil {
					t.Fatalf("pull %d: %v", i, err)
				}
			}
			prev := begin
			for _, v := range tt.want {
				x, at := expect(t, rec, "door", v)
				if x.Time.Before(prev) || x.Time.After(at) {
					t.Errorf("edge time %v, want after %v and before its Emit at %v", x.Time, prev, at)
				}
				prev = x.Time
			}
			rec.Quiet(t, 300*time.Millisecond)
		})
	}
}

// TestEdgeLatency measures, on the emulated machine, how long an edge takes
// from the simulator's pull write to Emit, and checks each kernel timestamp
// falls between the two once converted to wall-clock time.
func TestEdgeLatency(t *testing.T) {
	const n = 50
	c, label := newSim(t, 1)
	_, rec, _ := start(t, label, []PointConfig{{Name: "door", Line: 0}})
	expect(t, rec, "door", false)
	total := make([]time.Duration, n)  // pull write to Emit
	kernel := make([]time.Duration, n) // kernel timestamp to Emit
	for i := range n {
		up := i%2 == 0
		before := time.Now()
		if err := c.SetPull(0, boolInt(up)); err != nil {
			t.Fatal(err)
		}
		x, at := expect(t, rec, "door", up)
		if x.Time.Before(before) || x.Time.After(at) {
			t.Errorf("edge %d: kernel time %v outside [%v, %v]", i, x.Time, before, at)
		}
		total[i], kernel[i] = at.Sub(before), at.Sub(x.Time)
	}
	slices.Sort(total)
	slices.Sort(kernel)
	clock, _ := os.ReadFile("/sys/devices/system/clocksource/clocksource0/current_clocksource")
	t.Logf("edge-to-Emit latency over %d edges (sim pull write to Emit, clocksource %s): min %v, median %v, p90 %v, max %v",
		n, strings.TrimSpace(string(clock)), total[0], total[n/2], total[n*9/10], total[n-1])
	t.Logf("kernel-timestamp-to-Emit over %d edges: min %v, median %v, p90 %v, max %v",
		n, kernel[0], kernel[n/2], kernel[n*9/10], kernel[n-1])
}

func TestDebounce(t *testing.T) {
	const debounce = 500 * time.Millisecond // long enough that a stalled test cannot bounce slower than it
	c, label := newSim(t, 1)
	_, rec, _ := start(t, label, []PointConfig{{Name: "float", Line: 0, Debounce: dur(debounce)}})
	expect(t, rec, "float", false)
	// Chatter, settling high; last is taken just before the last bounce.
	var last time.Time
	for _, pull := range []int{1, 0, 1, 0, 1} {
		last = time.Now()
		if err := c.SetPull(0, pull); err != nil {
			t.Fatal(err)
		}
	}
	// The kernel reports the level once it has been stable for the debounce
	// period, counted in jiffies (4 ms here), and stamps it then.
	x, _ := expect(t, rec, "float", true)
	if x.Time.Sub(last) < debounce-5*time.Millisecond {
		t.Errorf("debounced edge stamped %v after the last bounce, want at least the %v debounce", x.Time.Sub(last), debounce)
	}
	rec.Quiet(t, 2*debounce)
	if err := c.SetPull(0, 0); err != nil {
		t.Fatal(err)
	}
	expect(t, rec, "float", false)
}

func TestBias(t *testing.T) {
	tests := []struct {
		bias    string
		simPull int // the simulated outside world before the line is requested
		want    bool
		wantSim int // the pull the simulator reports afterwards
	}{
		{"pull_up", 0, true, 1},
		{"pull_down", 1, false, 0},
		{"as_is", 1, true, 1},
		{"disabled", 1, true, 1}, // gpio-sim cannot disable bias; the kernel ignores that
	}
	for _, tt := range tests {
		t.Run(tt.bias, func(t *testing.T) {
			c, label := newSim(t, 2)
			if err := c.SetPull(1, tt.simPull); err != nil {
				t.Fatal(err)
			}
			_, rec, _ := start(t, label, []PointConfig{{Name: "sw", Line: 1, Edge: "none", Bias: tt.bias}})
			expect(t, rec, "sw", tt.want)
			if p, err := c.Pull(1); err != nil || p != tt.wantSim {
				t.Errorf("simulator pull %d (%v), want %d", p, err, tt.wantSim)
			}
		})
	}
}

func TestActiveLow(t *testing.T) {
	c, label := newSim(t, 2)
	if err := c.Pullup(0); err != nil { // contact open, line pulled high: inactive
		t.Fatal(err)
	}
	a, rec, _ := start(t, label, []PointConfig{
		{Name: "door", Line: 0, Edge: "rising", ActiveLow: true},
		{Name: "beacon", Line: 1, Direction: "output", ActiveLow: true, Initial: true},
	})
	expect(t, rec, "door", false)
	expect(t, rec, "beacon", true)
	if v := level(t, c, 1); v != 0 {
		t.Errorf("active-low output driven active: level %d, want 0", v)
	}
	if err := c.Pulldown(0); err != nil { // contact closes to ground: a rising edge of the active state
		t.Fatal(err)
	}
	expect(t, rec, "door", true)
	if _, rb, err := a.Write(t.Context(), "beacon", reading.Bool(false)); err != nil || rb.Value != reading.Bool(false) {
		t.Fatalf("Write(beacon, false) = %v, %v", rb.Value, err)
	}
	if v := level(t, c, 1); v != 1 {
		t.Errorf("active-low output driven inactive: level %d, want 1", v)
	}
}

func TestHeartbeat(t *testing.T) {
	const interval = 100 * time.Millisecond
	c, label := newSim(t, 1)
	_, rec, _ := start(t, label, []PointConfig{{Name: "tank", Line: 0, Edge: "none", Interval: dur(interval)}})
	opened, _ := expect(t, rec, "tank", false)
	beats := 0
	// beat waits for the next heartbeat: the k-th is due k intervals after
	// the chip was opened, and may come late but never early.
	beat := func() reading.Reading {
		t.Helper()
		beats++
		x, _ := rec.NextReading(t)
		if x.Point != "tank" {
			t.Fatalf("reading of %s, want tank", x.Point)
		}
		if since, due := x.Time.Sub(opened.Time), time.Duration(beats)*interval; since < due {
			t.Errorf("heartbeat %d came %v after opening, before it was due at %v", beats, since, due)
		}
		return x
	}
	for range 3 {
		if x := beat(); x.Value != reading.Bool(false) {
			t.Fatalf("heartbeat %v before the pull", x.Value)
		}
	}
	if err := c.Pullup(0); err != nil { // no edge detection: only heartbeats tell
		t.Fatal(err)
	}
	for i := 0; beat().Value != reading.Bool(true); i++ { // beats read before the pull may be queued
		if i == 50 {
			t.Fatal("heartbeats do not follow the level")
		}
	}
	for range 2 {
		if x := beat(); x.Value != reading.Bool(true) {
			t.Fatalf("heartbeat %v after the pull", x.Value)
		}
	}
}

func TestOutputs(t *testing.T) {
	c, label := newSim(t, 3)
	a, rec, _ := start(t, label, []PointConfig{
		{Name: "relay", Line: 0, Direction: "output", Initial: true},
		{Name: "pump", Line: 1, Direction: "output"},
		{Name: "door", Line: 2},
	})
	expect(t, rec, "relay", true)
	expect(t, rec, "pump", false)
	expect(t, rec, "door", false)
	if l0, l1 := level(t, c, 0), level(t, c, 1); l0 != 1 || l1 != 0 {
		t.Errorf("initial levels %d %d, want 1 0", l0, l1)
	}
	for _, cmd := range []reading.Value{reading.Bool(true), reading.String("off"), reading.Int(1),
		reading.String("FALSE"), reading.Float(1), reading.String(" On "), reading.Uint(0)} {
		want, _ := adapters.AsBool(cmd)
		written, rb, err := a.Write(t.Context(), "pump", cmd)
		if err != nil {
			t.Fatalf("Write(pump, %v): %v", cmd, err)
		}
		if written != reading.Bool(want) || rb.Point != "pump" || rb.Value != reading.Bool(want) {
			t.Errorf("Write(pump, %v) = %v, read back %s = %v; want %v", cmd, written, rb.Point, rb.Value, want)
		}
		if v := level(t, c, 1); v != boolInt(want) {
			t.Errorf("after Write(pump, %v) the line is at %d", cmd, v)
		}
	}
	for _, bad := range []struct {
		point string
		v     reading.Value
		want  error
	}{
		{"pump", reading.String("maybe"), adapters.ErrBadValue},
		{"door", reading.Bool(true), adapters.ErrNotWritable},
		{"fan", reading.Bool(true), adapters.ErrNoPoint},
	} {
		if _, _, err := a.Write(t.Context(), bad.point, bad.v); !errors.Is(err, bad.want) {
			t.Errorf("Write(%s, %v) = %v, want %v", bad.point, bad.v, err, bad.want)
		}
	}
	if v := level(t, c, 1); v != 0 {
		t.Errorf("refused writes changed the line to %d", v)
	}
	rec.Quiet(t, 100*time.Millisecond) // the caller publishes read-backs, not the adapter
}

func TestLineInUse(t *testing.T) {
	c, label := newSim(t, 4)
	other, err := gpiocdev.RequestLine(c.DevPath(), 3, gpiocdev.WithConsumer("other-owner"), gpiocdev.AsInput)
	if err != nil {
		t.Fatal(err)
	}
	_, rec, _ := startFailing(t, "", label, []PointConfig{{Name: "free", Line: 1}, {Name: "taken", Line: 3}},
		withRetry(2*time.Second, 2*time.Second)) // no retry, at least 1 s away, holds line 1 while it is checked below
	err = rec.NextStatus(t)
	if !errors.Is(err, syscall.EBUSY) {
		t.Fatalf("status %v, want EBUSY", err)
	}
	for _, want := range []string{`gpio "io"`, c.ChipName(), label, `line 3 ("taken")`, `"other-owner"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("status %q does not name %s", err, want)
		}
	}
	if used := lineUsed(t, c, 1); used {
		t.Error("line 1 is held while the adapter cannot have all its lines")
	}
	other.Close()
	for err != nil { // retries fail until the line is free
		err = rec.NextStatus(t)
	}
	expect(t, rec, "free", false)
	expect(t, rec, "taken", false)
}

func lineUsed(t *testing.T, c *gpiosim.Chip, offset int) bool {
	t.Helper()
	chip, err := gpiocdev.NewChip(c.DevPath())
	if err != nil {
		t.Fatal(err)
	}
	defer chip.Close()
	info, err := chip.LineInfo(offset)
	if err != nil {
		t.Fatal(err)
	}
	return info.Used
}

func TestLineOutOfRange(t *testing.T) {
	_, label := newSim(t, 8)
	_, rec, _ := startFailing(t, "", label, []PointConfig{{Name: "far", Line: 40}})
	err := rec.NextStatus(t)
	if !errors.Is(err, gpiocdev.ErrInvalidOffset) || !strings.Contains(err.Error(), "has 8 lines") {
		t.Fatalf("status %v, want invalid offset on an 8-line chip", err)
	}
}

// TestChipVanishes removes the chip under a running adapter, as unplugging a
// USB GPIO expander does, then brings a chip with the same label back.
func TestChipVanishes(t *testing.T) {
	const label = "fg-vanishing"
	sim := newSimLabelled(t, 2, label)
	first := sim.Chips[0].ChipName()
	a, rec, _ := start(t, label, []PointConfig{
		{Name: "door", Line: 0},
		{Name: "relay", Line: 1, Direction: "output"},
	})
	expect(t, rec, "door", false)
	expect(t, rec, "relay", false)
	if _, _, err := a.Write(t.Context(), "relay", reading.String("on")); err != nil {
		t.Fatal(err)
	}
	sim.Close()
	err := rec.NextStatus(t)
	if !errors.Is(err, syscall.ENODEV) || !strings.Contains(err.Error(), first) || !strings.Contains(err.Error(), "line 0") {
		t.Fatalf("status %v, want ENODEV naming %s line 0", err, first)
	}
	if _, _, err := a.Write(t.Context(), "relay", reading.Bool(false)); !errors.Is(err, errNotOpen) {
		t.Errorf("Write while the chip is gone = %v, want %v", err, errNotOpen)
	}
	if err := rec.NextStatus(t); !errors.Is(err, ErrChipNotFound) { // the retries
		t.Fatalf("status %v, want chip not found", err)
	}

	c := &newSimLabelled(t, 2, label).Chips[0]
	for err != nil {
		err = rec.NextStatus(t)
	}
	expect(t, rec, "door", false)
	expect(t, rec, "relay", true) // the last commanded level, not initial
	if v := level(t, c, 1); v != 1 {
		t.Errorf("relay on the new chip at %d, want the commanded 1", v)
	}
	if err := c.Pullup(0); err != nil {
		t.Fatal(err)
	}
	expect(t, rec, "door", true)
}

// TestDevDir opens chips from a device directory other than /dev.
func TestDevDir(t *testing.T) {
	c, label := newSim(t, 2)
	var st unix.Stat_t
	if err := unix.Stat(c.DevPath(), &st); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := unix.Mknod(filepath.Join(dir, c.ChipName()), unix.S_IFCHR|0o600, int(st.Rdev)); err != nil {
		t.Fatal(err)
	}
	for _, chip := range []string{c.ChipName(), label} {
		t.Run(chip, func(t *testing.T) {
			_, rec, _ := start(t, chip, []PointConfig{{Name: "door", Line: 1}}, withDevDir(dir))
			expect(t, rec, "door", false)
		})
	}
}

func TestReleaseOnStop(t *testing.T) {
	c, label := newSim(t, 2)
	_, rec, stop := start(t, label, []PointConfig{
		{Name: "door", Line: 0},
		{Name: "relay", Line: 1, Direction: "output", Initial: true},
	})
	expect(t, rec, "door", false)
	expect(t, rec, "relay", true)
	if !lineUsed(t, c, 0) || !lineUsed(t, c, 1) {
		t.Fatal("lines not held while running")
	}
	stop()
	if lineUsed(t, c, 0) || lineUsed(t, c, 1) {
		t.Error("lines still held after Run returned")
	}
}

// pulse drives n pulses into line offset of c: to active and back, where
// active is the pull given.
func pulse(t *testing.T, c *gpiosim.Chip, offset, n, active int) {
	t.Helper()
	for i := range n {
		for _, pull := range []int{active, 1 - active} {
			if err := c.SetPull(offset, pull); err != nil {
				t.Fatalf("pulse %d: %v", i, err)
			}
		}
	}
}

// awaitCount takes readings of point until one carries want, failing on a
// total that does not grow or overshoots: a missed or a double count.
func awaitCount(t *testing.T, rec *adapterstest.Recorder, point string, from, want uint64) {
	t.Helper()
	prev := from
	for prev != want {
		x, _ := rec.NextReading(t)
		if x.Point != point || x.Value.Kind() != reading.KindUint {
			t.Fatalf("reading %s = %v, want a count of %s", x.Point, x.Value, point)
		}
		if got := x.Value.Bits(); got < prev || got > want {
			t.Fatalf("count %d after %d, want growing to %d", got, prev, want)
		} else {
			prev = got
		}
	}
}

// stateTotal returns the total the adapter io's state file in dir holds for point.
func stateTotal(t *testing.T, dir, point string) uint64 {
	t.Helper()
	return onDisk(t, filepath.Join(dir, "gpio-io.counters"))[point]
}

// TestCounter counts pulses exactly: a quick burst on rising edges, and on
// both edges pulses one at a time, of which only the rising edges count.
func TestCounter(t *testing.T) {
	tests := []struct {
		edge   string
		pulses uint64
		paced  bool // wait for each pulse's reading before the next
	}{
		{"rising", 300, false},
		{"both", 50, true},
	}
	for _, tt := range tests {
		t.Run(tt.edge, func(t *testing.T) {
			c, label := newSim(t, 2)
			dir := t.TempDir()
			_, rec, _ := startIn(t, dir, label, []PointConfig{{Name: "water", Line: 1, Counter: true, Edge: tt.edge}})
			if x, _ := rec.NextReading(t); x.Value != reading.Uint(0) {
				t.Fatalf("opening reading %v, want the total 0", x.Value)
			}
			if tt.paced {
				for i := range tt.pulses {
					pulse(t, c, 1, 1, 1)
					awaitCount(t, rec, "water", i, i+1)
				}
			} else {
				pulse(t, c, 1, int(tt.pulses), 1)
				awaitCount(t, rec, "water", 0, tt.pulses)
			}
			rec.Quiet(t, 200*time.Millisecond)
			if got := stateTotal(t, dir, "water"); got != tt.pulses {
				t.Errorf("state file holds %d, want %d", got, tt.pulses)
			}
		})
	}
}

// heldEmitter blocks the adapter in Emit once held, as a stalled disk
// would, so the kernel's event queue overflows.
type heldEmitter struct {
	adapterstest.Recorder
	held    atomic.Bool
	entered chan struct{} // receives once Emit blocks
	release chan struct{} // closed to let it go
}

func (h *heldEmitter) Emit(rs []reading.Reading) {
	if h.held.CompareAndSwap(true, false) {
		h.entered <- struct{}{}
		<-h.release
	}
	h.Recorder.Emit(rs)
}

// TestCounterOverflow holds the adapter inside its first counted edge's
// Emit (its total already on disk) while a burst overflows the kernel's
// event queue: on rising edges the dropped events are counted from their
// sequence numbers; on both edges they cannot be, and an error says so.
func TestCounterOverflow(t *testing.T) {
	const burst = 50
	tests := []struct {
		edge    string
		exact   bool
		wantLog string
	}{
		{"rising", true, `level=WARN msg="gpio edge events lost (kernel buffer overflow); counted from their sequence numbers"`},
		{"both", false, `level=ERROR msg="gpio edge events lost (kernel buffer overflow); the counter misses`},
	}
	for _, tt := range tests {
		t.Run(tt.edge, func(t *testing.T) {
			c, label := newSim(t, 1)
			dir := t.TempDir()
			log, lb := newLog()
			a := newWith(t, &Config{Name: "io", Chip: label, Points: []PointConfig{{Name: "water", Line: 0, Counter: true, Edge: tt.edge}}},
				adapters.Env{Log: log, State: stateDir(t, dir)}, withProbe(50*time.Millisecond))
			e := &heldEmitter{entered: make(chan struct{}, 1), release: make(chan struct{})}
			var once sync.Once
			release := func() { once.Do(func() { close(e.release) }) }
			stop := adapterstest.Run(t, a, e)
			t.Cleanup(release) // before the adapter stops: cleanups run last first
			if x, _ := e.NextReading(t); x.Value != reading.Uint(0) {
				t.Fatalf("opening reading %v, want 0", x.Value)
			}

			e.held.Store(true)
			pulse(t, c, 0, 1, 1)
			select {
			case <-e.entered:
			case <-time.After(adapterstest.Timeout):
				t.Fatal("the first pulse was not emitted")
			}
			if got := stateTotal(t, dir, "water"); got != 1 {
				t.Fatalf("while its reading is being emitted, the state file holds %d, want 1", got)
			}
			pulse(t, c, 0, burst, 1)
			release()
			lb.await(t, tt.wantLog)

			if tt.exact {
				awaitCount(t, &e.Recorder, "water", 0, burst+1)
				e.Quiet(t, 200*time.Millisecond)
			} else {
				stop()
			}
			if got := stateTotal(t, dir, "water"); tt.exact != (got == burst+1) || got > burst+1 {
				t.Errorf("total %d after %d pulses", got, burst+1)
			}
		})
	}
}

// TestCounterContinues stops the adapter and starts a new one on the same
// state directory, as a restart of the gateway does.
func TestCounterContinues(t *testing.T) {
	c, label := newSim(t, 1)
	dir := t.TempDir()
	points := []PointConfig{{Name: "energy", Line: 0, Counter: true}}
	_, rec, stop := startIn(t, dir, label, points)
	pulse(t, c, 0, 25, 1)
	awaitCount(t, rec, "energy", 0, 25)
	stop()

	pulse(t, c, 0, 4, 1) // while nobody holds the line: not seen
	_, rec, _ = startIn(t, dir, label, points)
	if x, _ := rec.NextReading(t); x.Value != reading.Uint(25) {
		t.Fatalf("opening reading after the restart %v, want the saved 25", x.Value)
	}
	pulse(t, c, 0, 10, 1)
	awaitCount(t, rec, "energy", 25, 35)
	rec.Quiet(t, 200*time.Millisecond)
}

// TestCounterActiveLow counts a contact closing to ground, and publishes
// the total on the heartbeat.
func TestCounterActiveLow(t *testing.T) {
	c, label := newSim(t, 1)
	if err := c.Pullup(0); err != nil { // contact open: inactive
		t.Fatal(err)
	}
	dir := t.TempDir()
	_, rec, _ := startIn(t, dir, label, []PointConfig{
		{Name: "water", Line: 0, Counter: true, ActiveLow: true, Interval: dur(100 * time.Millisecond)}})
	pulse(t, c, 0, 3, 0)
	awaitCount(t, rec, "water", 0, 3)
	for range 2 {
		if x, _ := rec.NextReading(t); x.Value != reading.Uint(3) {
			t.Fatalf("heartbeat %v, want the total 3", x.Value)
		}
	}
	if got := stateTotal(t, dir, "water"); got != 3 {
		t.Errorf("state file holds %d, want 3", got)
	}
}

// TestContract runs the adapter contract against gpio-sim: removing the
// chip is the fault, as unplugging a USB GPIO expander, and a chip with the
// same label coming back the cure.
func TestContract(t *testing.T) {
	adapterstest.Contract(t, func(t *testing.T) adapterstest.Rig {
		const lines = 3
		label := simLabel()
		sim := newSimLabelled(t, lines, label)
		chip := &sim.Chips[0]
		cfg := &Config{Name: "io", Chip: label, Points: []PointConfig{
			{Name: "door", Line: 0},
			{Name: "relay", Line: 1, Direction: "output"},
			{Name: "water", Line: 2, Counter: true},
		}}
		return adapterstest.Rig{
			Adapter: build(t, t.TempDir(), cfg),
			Kinds:   adapterstest.KindsOf(cfg.PointInfo()),
			Break:   sim.Close,
			Heal:    func() { chip = &newSimLabelled(t, lines, label).Chips[0] },
			Refusals: []adapterstest.Refusal{
				{Point: "fan", Value: reading.Bool(true), Want: adapters.ErrNoPoint},
				{Point: "door", Value: reading.Bool(true), Want: adapters.ErrNotWritable},
				{Point: "water", Value: reading.Uint(0), Want: adapters.ErrNotWritable},
				{Point: "relay", Value: reading.String("maybe"), Want: adapters.ErrBadValue},
				{Point: "relay", Value: reading.Int(2), Want: adapters.ErrBadValue},
			},
			Accept: adapterstest.Command{Point: "relay", Value: reading.String("on"), Seen: "line 1 high"},
			// gpio-sim keeps no log of writes, but every line starts low
			// (the simulator pulls down, the relay's initial level is
			// off) and a write has set its level when Write returns.
			FirstWrite: func(t testing.TB) string {
				var high []string
				for offset := range lines {
					if level(t, chip, offset) == 1 {
						high = append(high, fmt.Sprintf("line %d high", offset))
					}
				}
				if len(high) == 0 {
					t.Fatal("no line was driven high")
				}
				return strings.Join(high, ", ")
			},
		}
	})
}

// TestOutputWriteInterval: a command to an output sooner than its
// min_write_interval after the last one is refused and leaves the line as
// it is.
func TestOutputWriteInterval(t *testing.T) {
	c, label := newSim(t, 1)
	a, rec, _ := start(t, label, []PointConfig{
		{Name: "relay", Line: 0, Direction: "output", MinWriteInterval: config.Duration(time.Hour)},
	})
	expect(t, rec, "relay", false)
	if _, _, err := a.Write(t.Context(), "relay", reading.Bool(true)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := a.Write(t.Context(), "relay", reading.Bool(false)); !errors.Is(err, adapters.ErrTooSoon) {
		t.Errorf("second write within the interval: %v, want ErrTooSoon", err)
	}
	if v := level(t, c, 0); v != 1 {
		t.Errorf("line at %d after the refused write, want 1", v)
	}
}
