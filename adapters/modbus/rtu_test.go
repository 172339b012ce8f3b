package modbus

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fieldgate/fieldgate/adapters"
	"github.com/fieldgate/fieldgate/internal/reading"

	"github.com/fieldgate/fieldgate/adapters/adapterstest"
	"github.com/fieldgate/fieldgate/adapters/internal/serialport"
	"github.com/fieldgate/fieldgate/config"
	"github.com/fieldgate/fieldgate/test/peers"
	"github.com/fieldgate/fieldgate/test/rtuserver"
)

// TestRTUDecode polls every codec case over RTU from the real server, with
// the fixture the TCP test uses.
func TestRTUDecode(t *testing.T) {
	regs := rtuserver.Unit{}
	points, check := decodeFixture(regs.Seed)
	bus := rtuserver.StartBus(t, line8N1, map[byte]rtuserver.Unit{1: regs}, nil)
	cfg := rtuConfig(bus.URL, 1, time.Hour, points...)
	cfg.Name = "dev"
	_, rec := start(t, cfg)
	check(t, rec.NextCycle(t))
}

// soakDuration is how long TestRTUTwoUnitsSoak polls: 30 s, or
// FIELDGATE_RTU_SOAK (a Go duration) for a shorter local run.
func soakDuration(t *testing.T) time.Duration {
	s := os.Getenv("FIELDGATE_RTU_SOAK")
	if s == "" && testing.Short() {
		t.Skip("the 30 s soak is left out by -short (FIELDGATE_RTU_SOAK sets its length)")
	}
	if s == "" {
		return 30 * time.Second
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		t.Fatalf("FIELDGATE_RTU_SOAK: %v", err)
	}
	return d
}

// soakUnit is what TestRTUTwoUnitsSoak's unit u serves: ten holding
// registers, an int32 input and a coil, three requests a cycle, with values
// that tell the units apart.
func soakUnit(u byte) (rtuserver.Unit, []PointConfig, map[string]reading.Value) {
	regs := rtuserver.Unit{}
	var points []PointConfig
	want := map[string]reading.Value{}
	for i := range 10 {
		name := fmt.Sprintf("h%d", i)
		regs.Seed(HoldingRegister, i, []uint16{uint16(100*int(u) + i)})
		points = append(points, pt(name, HoldingRegister, i, "uint16"))
		want[name] = reading.Uint(uint64(100*int(u) + i))
	}
	regs.Seed(InputRegister, 0, []uint16{0, uint16(u)})
	regs.Seed(Coil, 7, []uint16{uint16(u % 2)})
	points = append(points, pt("i", InputRegister, 0, "int32"), pt("c", Coil, 7, "bool"))
	want["i"], want["c"] = reading.Int(int64(u)), reading.Bool(u%2 == 1)
	return regs, points, want
}

// TestRTUTwoUnitsSoak polls units 1 and 2 on one bus every 100 ms: not one
// cycle may fail (a collision on the bus garbles frames: CRC errors,
// timeouts) or return the other unit's values.
func TestRTUTwoUnitsSoak(t *testing.T) {
	d := soakDuration(t)
	units := map[byte]rtuserver.Unit{}
	points := map[byte][]PointConfig{}
	wants := map[byte]map[string]reading.Value{}
	for _, u := range []byte{1, 2} {
		units[u], points[u], wants[u] = soakUnit(u)
	}
	bus := rtuserver.StartBus(t, line8N1, units, nil)
	const interval = 100 * time.Millisecond
	var recs []*adapterstest.Recorder
	for _, u := range []byte{1, 2} {
		_, rec := start(t, rtuConfig(bus.URL, int(u), interval, points[u]...))
		recs = append(recs, rec)
	}
	time.Sleep(d) // the soak itself: every cycle is checked afterwards
	for i, rec := range recs {
		s := summarize(rec, wants[byte(i+1)])
		t.Logf("unit %d: %d cycles in %s, longest gap between readings %s", i+1, s.cycles, d, s.maxGap.Round(time.Millisecond))
		s.check(t, fmt.Sprintf("unit %d", i+1))
		if min := int(d / interval / 2); s.cycles < min {
			t.Errorf("unit %d: %d cycles in %s, want at least %d", i+1, s.cycles, d, min)
		}
	}
}

// TestRTUDeadUnit polls a live unit and one nobody answers for on one bus:
// the dead unit's status says so, each of its cycles costs the bus one
// timeout (its second request is not sent), and the live unit keeps
// reading without an error: the port is not reopened for a silent unit.
func TestRTUDeadUnit(t *testing.T) {
	bus := rtuserver.StartBus(t, line8N1, map[byte]rtuserver.Unit{1: {"hr": {"0": {42}}}}, nil)
	const interval, deadTimeout = 100 * time.Millisecond, 250 * time.Millisecond
	_, liveRec := start(t, rtuConfig(bus.URL, 1, interval, pt("h", HoldingRegister, 0, "uint16")))
	cfg := rtuConfig(bus.URL, 7, interval, pt("a", HoldingRegister, 0, "uint16"), pt("b", InputRegister, 0, "uint16"))
	cfg.Timeout = config.Duration(deadTimeout)
	_, deadRec := start(t, cfg)
	for range 8 { // some 3 s, each cycle costing the dead unit's timeout; all are checked below
		deadRec.NextCycle(t)
	}
	live := summarize(liveRec, map[string]reading.Value{"h": reading.Uint(42)})
	dead := summarize(deadRec, nil)

	live.check(t, "live unit")
	if dead.cycles == 0 || len(dead.errs) != dead.cycles {
		t.Fatalf("dead unit: %d cycles, %d errors; want an error every cycle", dead.cycles, len(dead.errs))
	}
	err := dead.errs[0]
	if !errors.Is(err, ErrNoResponse) || !errors.Is(err, os.ErrDeadlineExceeded) || !strings.Contains(err.Error(), "1 of 2 requests not sent") {
		t.Errorf("dead unit status %q: want no response, with the second request skipped", err)
	}
	t.Logf("longest gap between the live unit's readings while its neighbour was dead: %s (live interval %s, dead unit's timeout %s; %d live cycles, %d dead)",
		live.maxGap.Round(time.Millisecond), interval, deadTimeout, live.cycles, dead.cycles)
	// Each turn of the dead unit costs its timeout and a drain; the live
	// unit is served in between. Starving would show as gaps of seconds.
	if bound := 4 * (deadTimeout + drainQuiet + interval); live.maxGap > bound {
		t.Errorf("live unit waited %s between readings, more than %s", live.maxGap, bound)
	}
}

// TestRTUFairness polls one unit flat out, three requests a cycle, and
// another every 100 ms: round-robin keeps the second on its interval.
func TestRTUFairness(t *testing.T) {
	units := map[byte]rtuserver.Unit{}
	points := map[byte][]PointConfig{}
	wants := map[byte]map[string]reading.Value{}
	for _, u := range []byte{1, 2} {
		units[u], points[u], wants[u] = soakUnit(u)
	}
	bus := rtuserver.StartBus(t, line8N1, units, nil)
	_, greedyRec := start(t, rtuConfig(bus.URL, 1, time.Millisecond, points[1]...))
	_, politeRec := start(t, rtuConfig(bus.URL, 2, 100*time.Millisecond, points[2]...))
	time.Sleep(2 * time.Second) // every cycle is checked afterwards
	greedy, polite := summarize(greedyRec, wants[1]), summarize(politeRec, wants[2])
	greedy.check(t, "greedy unit")
	polite.check(t, "polite unit")
	t.Logf("in 2s: the unit polled flat out made %d cycles, the one polled every 100ms %d, with its longest gap %s",
		greedy.cycles, polite.cycles, polite.maxGap.Round(time.Millisecond))
	if polite.cycles < 10 || polite.maxGap > time.Second {
		t.Errorf("the unit polled every 100ms made %d cycles in 2s, longest gap %s: starved", polite.cycles, polite.maxGap)
	}
}

// TestRTUBadCRC has the server send one reply with a wrong CRC: that cycle
// fails with ErrCRC and emits nothing, and the next one reads normally, on
// the same open port.
func TestRTUBadCRC(t *testing.T) {
	bus := rtuserver.StartBus(t, line8N1, map[byte]rtuserver.Unit{1: {"hr": {"0": {42}}}}, nil)
	_, rec := start(t, rtuConfig(bus.URL, 1, 20*time.Millisecond, pt("h", HoldingRegister, 0, "uint16")))
	rec.AwaitCycle(t, "status ok", func(c adapterstest.Cycle) bool { return c.Err == nil })

	bus.Server.Command("corrupt 1")
	c := rec.AwaitCycle(t, "an error", func(c adapterstest.Cycle) bool { return c.Err != nil })
	if !errors.Is(c.Err, ErrCRC) || !strings.Contains(c.Err.Error(), "CRC") {
		t.Errorf("status %q: want a CRC error", c.Err)
	}
	if len(c.Readings) != 0 {
		t.Errorf("readings %+v from a reply with a bad CRC", c.Readings)
	}
	bus.Server.Out.Await(t, 5*time.Second, "corrupted 1") // the server did corrupt a reply
	c = rec.NextCycle(t)
	if v, _ := c.Value("h"); c.Err != nil || v != reading.Uint(42) {
		t.Errorf("the cycle after the bad frame: %v, %v; want 42 at once", v, c.Err)
	}
}

// TestRTUWriteWhilePolling writes to unit 2 while unit 1 is polled flat
// out on the same bus: the writes reach the server, their read-backs come
// back, and unit 1 never sees an error.
func TestRTUWriteWhilePolling(t *testing.T) {
	bus := rtuserver.StartBus(t, line8N1, map[byte]rtuserver.Unit{1: {"hr": {"0": {42}}}, 2: {}}, nil)
	_, busyRec := start(t, rtuConfig(bus.URL, 1, time.Millisecond, pt("h", HoldingRegister, 0, "uint16")))
	a, rec := start(t, rtuConfig(bus.URL, 2, time.Hour,
		pt("temp", HoldingRegister, 5, "int16", writable, scaled(0.1)),
		pt("valve", Coil, 3, "bool", writable)))
	rec.NextCycle(t)

	cases := []struct {
		point   string
		v       reading.Value
		written reading.Value
		get     string // server command
		want    string // its answer
	}{
		{"temp", reading.Float(-21.5), reading.Float(-215 * 0.1), "get 2 hr 5 1", fmt.Sprint("values ", 0x10000-215)},
		{"valve", reading.String("on"), reading.Bool(true), "get 2 co 3 1", "values 1"},
		{"temp", reading.Int(3), reading.Float(30 * 0.1), "get 2 hr 5 1", "values 30"},
	}
	for _, c := range cases {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		begin := time.Now()
		written, rb, err := a.Write(ctx, c.point, c.v)
		took := time.Since(begin)
		cancel()
		if err != nil {
			t.Fatalf("Write %s=%v: %v", c.point, c.v, err)
		}
		if written != c.written || rb.Value != c.written || rb.Point != c.point {
			t.Errorf("Write %s=%v: written %v, read back %+v; want %v", c.point, c.v, written, rb, c.written)
		}
		if got := bus.Server.Command(c.get); got != c.want {
			t.Errorf("server after writing %s=%v: %q, want %q", c.point, c.v, got, c.want)
		}
		t.Logf("write and read-back of %s took %s", c.point, took.Round(time.Microsecond))
	}
	busy := summarize(busyRec, map[string]reading.Value{"h": reading.Uint(42)})
	busy.check(t, "unit 1")
	if busy.cycles == 0 {
		t.Error("unit 1 was not polled during the writes")
	}
}

// TestRTUUnplug pulls the cable (socat exits, both PTYs vanish) under a
// running adapter and plugs it back at the same path: the status goes to
// error, and polling resumes without a restart.
func TestRTUUnplug(t *testing.T) {
	bus := rtuserver.StartBus(t, line8N1, map[byte]rtuserver.Unit{1: {"hr": {"0": {42}}}}, nil)
	_, rec := start(t, rtuConfig(bus.URL, 1, 20*time.Millisecond, pt("h", HoldingRegister, 0, "uint16")))
	rec.AwaitCycle(t, "first reading", func(c adapterstest.Cycle) bool { v, _ := c.Value("h"); return c.Err == nil && v == reading.Uint(42) })

	bus.Cable.Stop()
	c := rec.AwaitCycle(t, "status error", func(c adapterstest.Cycle) bool { return c.Err != nil })
	t.Logf("status after unplugging: %v", c.Err)
	bus.Server.Command("set 1 hr 0 43")
	bus.Cable.Start()
	rec.AwaitCycle(t, "reading after replug", func(c adapterstest.Cycle) bool { v, _ := c.Value("h"); return c.Err == nil && v == reading.Uint(43) })
}

// TestRTUOverTCP reaches two units of the RTU server through a transparent
// TCP-to-serial bridge, as an Ethernet–RS-485 converter: polls, a write, a
// bad CRC rejected, and a reconnection after the converter restarted.
func TestRTUOverTCP(t *testing.T) {
	rtuserver.Need(t)
	cable := peers.StartSocat(t, t.TempDir())
	srv := rtuserver.Start(t, cable.B, line8N1, map[byte]rtuserver.Unit{1: {"hr": {"0": {11}}}, 2: {"hr": {"0": {22}}}}, nil)
	addr := peers.FreeAddr(t)
	bridge := rtuserver.StartTCPBridge(t, addr, cable.A)
	url := "rtu+tcp://" + addr
	_, rec1 := start(t, rtuConfig(url, 1, 20*time.Millisecond, pt("h", HoldingRegister, 0, "uint16")))
	a2, rec2 := start(t, rtuConfig(url, 2, time.Hour, pt("h", HoldingRegister, 0, "uint16", writable)))
	rec1.AwaitCycle(t, "unit 1", func(c adapterstest.Cycle) bool { v, _ := c.Value("h"); return c.Err == nil && v == reading.Uint(11) })
	if c := rec2.NextCycle(t); c.Err != nil {
		t.Fatalf("unit 2: %v", c.Err)
	} else if v, _ := c.Value("h"); v != reading.Uint(22) {
		t.Fatalf("unit 2 h = %v, want 22", v)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, rb, err := a2.Write(ctx, "h", reading.Int(23)); err != nil || rb.Value != reading.Uint(23) {
		t.Errorf("write to unit 2: %v, %v", rb.Value, err)
	}
	if got := srv.Command("get 2 hr 0 1"); got != "values 23" {
		t.Errorf("server after the write: %q", got)
	}

	srv.Command("corrupt 1")
	c := rec1.AwaitCycle(t, "an error", func(c adapterstest.Cycle) bool { return c.Err != nil })
	if !errors.Is(c.Err, ErrCRC) || len(c.Readings) != 0 {
		t.Errorf("status %v with %d readings: want a CRC error and none", c.Err, len(c.Readings))
	}
	rec1.AwaitCycle(t, "status ok", func(c adapterstest.Cycle) bool { return c.Err == nil })

	bridge.Stop()
	c = rec1.AwaitCycle(t, "status error", func(c adapterstest.Cycle) bool { return c.Err != nil })
	t.Logf("status with the converter down: %v", c.Err)
	srv.Command("set 1 hr 0 12")
	rtuserver.StartTCPBridge(t, addr, cable.A)
	rec1.AwaitCycle(t, "reading after reconnection", func(c adapterstest.Cycle) bool { v, _ := c.Value("h"); return c.Err == nil && v == reading.Uint(12) })
}

// TestBusRegistry: adapters on one serial device share one link; one with
// other line settings is refused while it is open; the last to detach
// closes it, and a new link on the device waits for the old one.
func TestBusRegistry(t *testing.T) {
	cable := peers.StartSocat(t, t.TempDir())
	url := "rtu://" + cable.A
	attach := func(unit int, edit func(*Config)) (*member, error) {
		cfg := rtuConfig(url, unit, time.Second)
		if edit != nil {
			edit(cfg)
		}
		a, err := New(cfg, adapters.Env{})
		if err != nil {
			t.Fatal(err)
		}
		return a.attach()
	}
	m1, err := attach(1, nil)
	if err != nil {
		t.Fatal(err)
	}
	m2, err := attach(2, nil)
	if err != nil {
		t.Fatal(err)
	}
	if m1.l != m2.l {
		t.Fatal("two units on one device got two links")
	}
	if _, err := attach(3, func(c *Config) { c.Parity = "E" }); err == nil || !strings.Contains(err.Error(), "line settings") {
		t.Errorf("attach with other line settings: %v", err)
	}
	m1.detach()
	if err := m1.do(context.Background(), 1, false, nil); !errors.Is(err, errStopped) {
		t.Errorf("request after detach: %v, want errStopped", err)
	}
	buses.mu.Lock()
	open := buses.links[m2.l.key] == m2.l
	buses.mu.Unlock()
	if !open {
		t.Fatal("the link closed while a member was attached")
	}
	m2.detach()
	select {
	case <-m2.l.done:
	default:
		t.Fatal("the last detach did not wait for the owner goroutine")
	}
	m3, err := attach(3, func(c *Config) { c.Parity = "E" })
	if err != nil {
		t.Fatalf("attach after the bus closed: %v", err)
	}
	defer m3.detach()
	if m3.l == m2.l || m3.l.after != m2.l.done {
		t.Error("the new link does not wait for the old one")
	}
}

// TestTakeOrder checks the bus scheduler: one request per member in turn,
// urgent ones first.
func TestTakeOrder(t *testing.T) {
	for _, c := range []struct {
		queues []string // per member A, B, C…: p for a poll, u for an urgent request, in queue order
		want   string
	}{
		{[]string{"ppp", "p", "pp"}, "Ap Bp Cp Ap Cp Ap"},
		{[]string{"pppppp", "p"}, "Ap Bp Ap Ap Ap Ap Ap"},
		{[]string{"pp", "u", "p"}, "Bu Cp Ap Ap"},
		{[]string{"pup", "up", ""}, "Au Bu Ap Bp Ap"},
		{[]string{"", "", "uuu"}, "Cu Cu Cu"},
		{nil, ""},
	} {
		l := &link{}
		label := map[*call]string{}
		for i, q := range c.queues {
			m := &member{l: l}
			for _, k := range q {
				cl := &call{m: m}
				label[cl] = string(rune('A'+i)) + string(k)
				if k == 'u' {
					m.urgent = append(m.urgent, cl)
				} else {
					m.polls = append(m.polls, cl)
				}
			}
			l.members = append(l.members, m)
		}
		var got []string
		for cl := l.take(); cl != nil; cl = l.take() {
			got = append(got, label[cl])
		}
		if g := strings.Join(got, " "); g != c.want {
			t.Errorf("queues %q: served %q, want %q", c.queues, g, c.want)
		}
	}
}

// summary is what an adapter's cycles showed, checked against want (every
// point with its value; nil for none): how many, their errors and wrong
// values, and the longest gap between readings.
type summary struct {
	cycles int
	errs   []error
	wrong  []string
	maxGap time.Duration
}

func summarize(rec *adapterstest.Recorder, want map[string]reading.Value) summary {
	var s summary
	var last time.Time
	for _, c := range rec.Cycles() {
		s.cycles++
		if c.Err != nil {
			s.errs = append(s.errs, c.Err)
		}
		for name, v := range want {
			if got, ok := c.Value(name); c.Err == nil && got != v {
				s.wrong = append(s.wrong, fmt.Sprintf("cycle %d: %s = %v (present %v), want %v", s.cycles, name, got, ok, v))
			}
		}
		if len(c.Readings) > 0 {
			at := c.Readings[0].Time
			if !last.IsZero() {
				s.maxGap = max(s.maxGap, at.Sub(last))
			}
			last = at
		}
	}
	return s
}

// check fails the test if any cycle failed or read a wrong value.
func (s summary) check(t *testing.T, who string) {
	t.Helper()
	for i, err := range s.errs {
		if i == 3 {
			t.Errorf("%s: … %d errors in all", who, len(s.errs))
			break
		}
		t.Errorf("%s: status %v", who, err)
	}
	for _, w := range s.wrong[:min(len(s.wrong), 3)] {
		t.Errorf("%s: %s", who, w)
	}
}

// BenchmarkRTUBus measures requests per second on one bus with two units,
// each of its two adapters reading ten holding registers in a loop, at 9600
// and 115200 baud 8N1. A PTY moves bytes at no baud rate, so the figures
// show the gateway's own cost, the inter-frame gaps it keeps and the
// server's; theory_req/s is what a real line at that speed allows: request
// (8 bytes) and reply (25 bytes) at 10 bits a character, plus two 3.5
// character gaps.
func BenchmarkRTUBus(b *testing.B) {
	for _, baud := range []int{9600, 115200} {
		b.Run(fmt.Sprint(baud), func(b *testing.B) {
			line := config.Line{BaudRate: baud, DataBits: 8, Parity: "N", StopBits: 1}
			units := map[byte]rtuserver.Unit{}
			for u := range byte(2) {
				units[u+1] = rtuserver.Unit{"hr": {"0": {1, 2, 3, 4, 5, 6, 7, 8, 9, 10}}}
			}
			bus := rtuserver.StartBus(b, line, units, nil)
			var members []*member
			var as []*Adapter
			for u := 1; u <= 2; u++ {
				cfg := rtuConfig(bus.URL, u, time.Second, pt("h", HoldingRegister, 0, "uint16"))
				cfg.Line = line
				a, err := New(cfg, adapters.Env{})
				if err != nil {
					b.Fatal(err)
				}
				m, err := a.attach()
				if err != nil {
					b.Fatal(err)
				}
				defer m.detach()
				as, members = append(as, a), append(members, m)
			}
			const perUnit = 50
			ctx := context.Background()
			begin := time.Now()
			for b.Loop() {
				var wg sync.WaitGroup
				errs := make(chan error, 2)
				for i, a := range as {
					wg.Go(func() {
						for range perUnit {
							if _, _, err := a.read(ctx, members[i], false, holdingRegisters, 0, 10); err != nil {
								errs <- err
								return
							}
						}
					})
				}
				wg.Wait()
				close(errs)
				for err := range errs {
					b.Fatal(err)
				}
			}
			elapsed := time.Since(begin)
			chars := 10 * (8 + 25)
			exchange := time.Duration(chars)*time.Second/time.Duration(baud) + 2*serialport.FrameGap(baud, 8, "N", 1)
			b.ReportMetric(float64(2*perUnit*b.N)/elapsed.Seconds(), "req/s")
			b.ReportMetric(float64(time.Second)/float64(exchange), "theory_req/s")
		})
	}
}

// TestRTUPortThatStopsDraining: a bus whose port stops draining fails each
// request at its deadline, so the bus owner never wedges: both units show
// the port fault, and both are ok again once the port drains.
func TestRTUPortThatStopsDraining(t *testing.T) {
	bus := rtuserver.StartBus(t, line8N1, map[byte]rtuserver.Unit{1: {"hr": {"0": {42}}}, 2: {"hr": {"0": {43}}}}, nil)
	var recs []*adapterstest.Recorder
	for _, u := range []int{1, 2} {
		cfg := rtuConfig(bus.URL, u, 100*time.Millisecond, pt("h", HoldingRegister, 0, "uint16"))
		cfg.Timeout = config.Duration(300 * time.Millisecond)
		_, rec := start(t, cfg)
		rec.AwaitStatus(t, "ok", adapterstest.IsOK)
		recs = append(recs, rec)
	}
	unclog := bus.Cable.Clog()
	notDraining := func(err error) bool { return errors.Is(err, serialport.ErrNotDraining) }
	for _, rec := range recs {
		rec.AwaitStatus(t, "the port fault", notDraining)
	}
	unclog()
	for _, rec := range recs {
		rec.AwaitStatus(t, "ok after the port drains", adapterstest.IsOK)
	}
}
