package modbus

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/fieldgate/fieldgate/internal/reading"

	gmb "github.com/goburrow/modbus"
	sim "github.com/simonvetter/modbus"

	"github.com/fieldgate/fieldgate/adapters"
	"github.com/fieldgate/fieldgate/adapters/adapterstest"
	"github.com/fieldgate/fieldgate/config"
	"github.com/fieldgate/fieldgate/test/modbussim"
)

// Function codes as the tap sees them.
const (
	fcReadCoils     = gmb.FuncCodeReadCoils
	fcReadDiscrete  = gmb.FuncCodeReadDiscreteInputs
	fcReadHolding   = gmb.FuncCodeReadHoldingRegisters
	fcReadInput     = gmb.FuncCodeReadInputRegisters
	fcWriteCoil     = gmb.FuncCodeWriteSingleCoil
	fcWriteRegister = gmb.FuncCodeWriteSingleRegister
	fcWriteMultiple = gmb.FuncCodeWriteMultipleRegisters
	fcWriteCoils    = gmb.FuncCodeWriteMultipleCoils
)

// TestDecodeThroughServer puts every codec case into a real server's
// registers and checks one poll cycle reads them all back as the unit tests
// expect.
func TestDecodeThroughServer(t *testing.T) {
	dev := modbussim.NewBank()
	srv := serve(t, dev, "127.0.0.1:0").Addr
	points, check := decodeFixture(seeder(dev))
	_, rec := start(t, deviceConfig("tcp://"+srv, time.Hour, points...))
	check(t, rec.NextCycle(t))
}

// decodeFixture lays every codec case out in registers, alternating holding
// and input registers, plus 20 coils and 20 discrete inputs, for a
// transport test to poll in one cycle. seed is told what the server must
// hold (bits as 0 and 1); check asserts the cycle's readings.
func decodeFixture(seed func(table string, addr int, vals []uint16)) ([]PointConfig, func(*testing.T, adapterstest.Cycle)) {
	var points []PointConfig
	next := map[string]int{}
	cases := codecCases()
	for i, c := range cases {
		tbl := HoldingRegister
		if i%2 == 1 {
			tbl = InputRegister
		}
		addr := next[tbl]
		next[tbl] += len(c.regs)
		seed(tbl, addr, c.regs)
		p := c.point()
		p.Table, p.Address = tbl, addr
		points = append(points, p)
	}
	bit := func(b bool) []uint16 {
		if b {
			return []uint16{1}
		}
		return []uint16{0}
	}
	for i := range 20 {
		seed(Coil, 100+i, bit(i%3 == 0))
		seed(DiscreteInput, i, bit(i%4 == 1))
		points = append(points,
			pt(fmt.Sprintf("coil%d", i), Coil, 100+i, "bool"),
			pt(fmt.Sprintf("input%d", i), DiscreteInput, i, "bool"))
	}
	before := time.Now()
	check := func(t *testing.T, c adapterstest.Cycle) {
		t.Helper()
		if c.Err != nil {
			t.Fatalf("status: %v", c.Err)
		}
		if len(c.Readings) != len(points) {
			t.Errorf("%d readings, want %d", len(c.Readings), len(points))
		}
		for _, r := range c.Readings {
			if r.Adapter != "dev" || r.Time.Before(before) || r.Time.After(time.Now()) {
				t.Errorf("reading %+v: wrong adapter or time", r)
			}
		}
		for _, cc := range cases {
			if got, ok := c.Value(cc.name); !ok || !same(got, cc.want) {
				t.Errorf("%s: got %v (%s), want %v (%s)", cc.name, got, got.Kind(), cc.want, cc.want.Kind())
			}
		}
		for i := range 20 {
			if got, _ := c.Value(fmt.Sprintf("coil%d", i)); got != reading.Bool(i%3 == 0) {
				t.Errorf("coil%d = %v", i, got)
			}
			if got, _ := c.Value(fmt.Sprintf("input%d", i)); got != reading.Bool(i%4 == 1) {
				t.Errorf("input%d = %v", i, got)
			}
		}
	}
	return points, check
}

// TestCoalescingAtServer counts the read requests of one cycle on the wire.
func TestCoalescingAtServer(t *testing.T) {
	dev := modbussim.NewBank()
	srv := serve(t, dev, "127.0.0.1:0").Addr
	tp := newTap(t, srv)
	bit := func(n int) func(*PointConfig) { return func(p *PointConfig) { p.Bit = &n } }
	str := func(n int) func(*PointConfig) { return func(p *PointConfig) { p.Length = n } }

	points := []PointConfig{
		// Holding: [0, 18) merges a gap of exactly max_gap (7 → 17); 29 is
		// max_gap+1 away and starts a request, shared by two bits.
		pt("h0", HoldingRegister, 0, "uint16"),
		pt("h1", HoldingRegister, 1, "uint16"),
		pt("h5", HoldingRegister, 5, "float32"),
		pt("h17", HoldingRegister, 17, "uint16"),
		pt("h29", HoldingRegister, 29, "uint16"),
		pt("h29b3", HoldingRegister, 29, "bool", bit(3)),
		pt("h29b4", HoldingRegister, 29, "bool", bit(4)),
		// Input: [0, 125) exactly fills one request, 125 starts the next;
		// 322 would straddle the 125 limit of the request at 200.
		pt("i0", InputRegister, 0, "string", str(100)),
		pt("i100", InputRegister, 100, "float64"),
		pt("i104", InputRegister, 104, "uint16"),
		pt("i105", InputRegister, 105, "string", str(20)),
		pt("i125", InputRegister, 125, "uint16"),
		pt("i200", InputRegister, 200, "string", str(120)),
		pt("i322", InputRegister, 322, "int64"),
		// Discrete inputs: one request.
		pt("d0", DiscreteInput, 0, "bool"),
		pt("d5", DiscreteInput, 5, "bool"),
	}
	// Coils every 10 bits up to 1999 fill exactly 2000 bits; 2000 is one
	// more request.
	for a := 0; a < 2000; a += 10 {
		points = append(points, pt(fmt.Sprintf("c%d", a), Coil, a, "bool"))
	}
	points = append(points, pt("c1999", Coil, 1999, "bool"), pt("c2000", Coil, 2000, "bool"))
	dev.SetCoil(1999, true)
	dev.SetHolding(29, 1<<4)

	_, rec := start(t, deviceConfig(tp.url(), time.Hour, points...))
	c := rec.NextCycle(t)
	if c.Err != nil {
		t.Fatalf("status: %v", c.Err)
	}
	if len(c.Readings) != len(points) {
		t.Errorf("%d readings, want %d", len(c.Readings), len(points))
	}
	want := map[byte]int{fcReadCoils: 2, fcReadDiscrete: 1, fcReadHolding: 2, fcReadInput: 4}
	if got := tp.counts(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("requests per function code: %v, want %v", got, want)
	}
	for name, v := range map[string]reading.Value{"c1999": reading.Bool(true), "c2000": reading.Bool(false), "h29b3": reading.Bool(false), "h29b4": reading.Bool(true)} {
		if got, _ := c.Value(name); got != v {
			t.Errorf("%s = %v, want %v", name, got, v)
		}
	}
}

// TestExceptionThenRecovery: an exception on one request is a typed error in
// the status, the other request's readings still arrive, the connection is
// kept, and the next good cycle clears the status.
func TestExceptionThenRecovery(t *testing.T) {
	dev := modbussim.NewBank()
	srv := serve(t, dev, "127.0.0.1:0").Addr
	tp := newTap(t, srv)
	dev.SetHolding(0, 11)
	dev.SetInput(0, 22)
	dev.SetTableFault(HoldingRegister, sim.ErrIllegalDataAddress)
	_, rec := start(t, deviceConfig(tp.url(), 10*time.Millisecond,
		pt("h", HoldingRegister, 0, "uint16"), pt("i", InputRegister, 0, "uint16")))

	c := rec.NextCycle(t)
	var exc *gmb.ModbusError
	if !errors.As(c.Err, &exc) || exc.ExceptionCode != gmb.ExceptionCodeIllegalDataAddress {
		t.Fatalf("status %v: want a *modbus.ModbusError with illegal data address", c.Err)
	}
	if !strings.Contains(c.Err.Error(), "illegal data address") || !strings.Contains(c.Err.Error(), `"dev"`) {
		t.Errorf("status %q does not name the exception and the adapter", c.Err)
	}
	if v, ok := c.Value("i"); !ok || v != reading.Uint(22) {
		t.Errorf("input register reading %v, %v; want 22 despite the failed request", v, ok)
	}
	if _, ok := c.Value("h"); ok {
		t.Error("reading emitted for the failed request")
	}

	dev.SetTableFault(HoldingRegister, nil)
	c = rec.AwaitCycle(t, "status ok", func(c adapterstest.Cycle) bool { return c.Err == nil })
	if v, _ := c.Value("h"); v != reading.Uint(11) {
		t.Errorf("h = %v after recovery, want 11", v)
	}
	if n := tp.connections(); n != 1 {
		t.Errorf("%d connections; an exception must not drop the connection", n)
	}
}

// TestServerRestart stops the server under a running adapter and starts it
// again on the same port: the status goes to error and back to ok, and
// polling resumes without restarting the adapter.
func TestServerRestart(t *testing.T) {
	dev := modbussim.NewBank()
	srv := serve(t, dev, "127.0.0.1:0")
	addr := srv.Addr
	dev.SetHolding(3, 1)
	_, rec := start(t, deviceConfig("tcp://"+addr, 10*time.Millisecond, pt("h", HoldingRegister, 3, "uint16")))

	rec.AwaitCycle(t, "first reading", func(c adapterstest.Cycle) bool { v, _ := c.Value("h"); return c.Err == nil && v == reading.Uint(1) })
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	rec.AwaitCycle(t, "status error", func(c adapterstest.Cycle) bool { return c.Err != nil && len(c.Readings) == 0 })
	c := rec.AwaitCycle(t, "not connected", func(c adapterstest.Cycle) bool { return errors.Is(c.Err, errNotConnected) })
	t.Logf("status while down: %v", c.Err)

	dev.SetHolding(3, 2)
	serve(t, dev, addr)
	rec.AwaitCycle(t, "reading after restart", func(c adapterstest.Cycle) bool { v, _ := c.Value("h"); return c.Err == nil && v == reading.Uint(2) })
}

// TestTimeoutReconnects: a device that stops answering times out each
// request; the adapter drops the connection and reconnects once it answers.
func TestTimeoutReconnects(t *testing.T) {
	dev := modbussim.NewBank()
	srv := serve(t, dev, "127.0.0.1:0").Addr
	tp := newTap(t, srv)
	dev.SetHolding(0, 5)
	cfg := deviceConfig(tp.url(), 10*time.Millisecond, pt("h", HoldingRegister, 0, "uint16"))
	cfg.Timeout = config.Duration(100 * time.Millisecond)
	_, rec := start(t, cfg)
	rec.AwaitCycle(t, "status ok", func(c adapterstest.Cycle) bool { return c.Err == nil })

	resume := dev.Stall()
	t.Cleanup(resume)
	c := rec.AwaitCycle(t, "timeout", func(c adapterstest.Cycle) bool { return c.Err != nil })
	if !errors.Is(c.Err, os.ErrDeadlineExceeded) {
		t.Errorf("status %v: want a timeout", c.Err)
	}
	resume()
	rec.AwaitCycle(t, "status ok again", func(c adapterstest.Cycle) bool { v, _ := c.Value("h"); return c.Err == nil && v == reading.Uint(5) })
	if n := tp.connections(); n < 2 {
		t.Errorf("%d connections; want a reconnection after the timeout", n)
	}
}

// TestSlowAnswerCostsOneRetry: a device that answers one request late costs
// that request one more try on a new connection, not the poll's block: the
// cycle reads every point and reports ok.
func TestSlowAnswerCostsOneRetry(t *testing.T) {
	dev := modbussim.NewBank()
	srv := serve(t, dev, "127.0.0.1:0").Addr
	tp := newTap(t, srv)
	dev.SetHolding(0, 5)
	dev.SetInput(0, 6)
	dev.SlowNext(time.Second)
	cfg := deviceConfig(tp.url(), time.Hour, pt("h", HoldingRegister, 0, "uint16"), pt("i", InputRegister, 0, "uint16"))
	cfg.Timeout = config.Duration(200 * time.Millisecond)
	_, rec := start(t, cfg)
	c := rec.NextCycle(t)
	h, okH := c.Value("h")
	i, okI := c.Value("i")
	if c.Err != nil || !okH || !okI || h != reading.Uint(5) || i != reading.Uint(6) {
		t.Fatalf("first cycle %v with %v, %v: want both points and ok after one retry", c.Err, h, i)
	}
	if n := tp.connections(); n != 2 {
		t.Errorf("%d connections, want 2: the retry's", n)
	}
}

// TestSameFaultSameStatus: a device that stops answering is reported in the
// same words at every reconnection (no local port in them), so its status
// changes once, not at every retry.
func TestSameFaultSameStatus(t *testing.T) {
	dev := modbussim.NewBank()
	srv := serve(t, dev, "127.0.0.1:0").Addr
	t.Cleanup(dev.Stall())
	cfg := deviceConfig("tcp://"+srv, 50*time.Millisecond, pt("h", HoldingRegister, 0, "uint16"))
	cfg.Timeout = config.Duration(100 * time.Millisecond)
	_, rec := start(t, cfg)
	first, second := rec.NextCycle(t), rec.NextCycle(t)
	if first.Err == nil || second.Err == nil || first.Err.Error() != second.Err.Error() {
		t.Fatalf("status %v, then %v: want the same fault in the same words", first.Err, second.Err)
	}
}

// TestWrites writes every writable kind while polling runs, and checks the
// function code on the wire, the registers at the server and the read-back.
func TestWrites(t *testing.T) {
	dev := modbussim.NewBank()
	srv := serve(t, dev, "127.0.0.1:0").Addr
	tp := newTap(t, srv)
	points := []PointConfig{
		pt("valve", Coil, 3, "bool", writable),
		pt("setpoint", HoldingRegister, 10, "uint16", writable),
		pt("temp", HoldingRegister, 11, "int16", writable, scaled(0.1)),
		pt("enable", HoldingRegister, 12, "bool", writable),
		pt("flow", HoldingRegister, 20, "float32", writable, func(p *PointConfig) { p.ByteOrder = "CDAB" }),
		pt("total", HoldingRegister, 30, "uint64", writable),
		pt("offset", HoldingRegister, 34, "int32", writable, scaled(0.01), func(p *PointConfig) { p.Offset = -50 }),
		pt("label", HoldingRegister, 40, "string", writable, func(p *PointConfig) { p.Length = 4 }),
	}
	a, rec := start(t, deviceConfig(tp.url(), 5*time.Millisecond, points...))
	rec.NextCycle(t)

	// As the adapter computes it: raw*scale + offset at run time.
	eng := func(raw, scale, offset float64) reading.Value { return reading.Float(raw*scale + offset) }
	cases := []struct {
		point   string
		v       reading.Value
		fc      byte
		written reading.Value
		regs    []uint16 // at the server; nil for the coil
	}{
		{"valve", reading.String("on"), fcWriteCoil, reading.Bool(true), nil},
		{"setpoint", reading.Float(1234), fcWriteRegister, reading.Uint(1234), []uint16{1234}},
		{"temp", reading.Float(21.54), fcWriteRegister, eng(215, 0.1, 0), []uint16{215}},
		{"temp", reading.Int(-3), fcWriteRegister, eng(-30, 0.1, 0), []uint16{0xffe2}},
		{"enable", reading.Bool(true), fcWriteRegister, reading.Bool(true), []uint16{1}},
		{"flow", reading.Float(1.5), fcWriteMultiple, reading.Float(1.5), []uint16{0, 0x3fc0}},
		{"total", reading.Uint(1<<64 - 2), fcWriteMultiple, reading.Uint(1<<64 - 2), []uint16{0xffff, 0xffff, 0xffff, 0xfffe}},
		{"offset", reading.Float(-49.99), fcWriteMultiple, eng(1, 0.01, -50), []uint16{0, 1}},
		{"label", reading.String("pump-1"), fcWriteMultiple, reading.String("pump-1"), []uint16{0x7075, 0x6d70, 0x2d31, 0}},
	}
	for _, c := range cases {
		t.Run(c.point, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			before := tp.counts()
			written, rb, err := a.Write(ctx, c.point, c.v)
			if err != nil {
				t.Fatalf("Write(%v): %v", c.v, err)
			}
			after := tp.counts()
			for _, fc := range []byte{fcWriteCoil, fcWriteRegister, fcWriteMultiple, fcWriteCoils} {
				want := 0
				if fc == c.fc {
					want = 1
				}
				if n := after[fc] - before[fc]; n != want {
					t.Errorf("function code %d sent %d times, want %d", fc, n, want)
				}
			}
			if written != c.written {
				t.Errorf("written %v (%s), want %v (%s)", written, written.Kind(), c.written, c.written.Kind())
			}
			if rb.Adapter != "dev" || rb.Point != c.point || rb.Value != c.written || rb.Time.IsZero() {
				t.Errorf("read-back %+v, want %v", rb, c.written)
			}
			if c.regs != nil {
				p := a.points.Load().byName[c.point]
				if got := dev.Holding(uint16(p.addr), len(c.regs)); fmt.Sprint(got) != fmt.Sprint(c.regs) {
					t.Errorf("server registers %04x, want %04x", got, c.regs)
				}
			} else {
				if !dev.Coil(3) {
					t.Error("coil not set at the server")
				}
			}
		})
	}
}

// TestWriteRefusals: every refusal is classified and no request reaches the
// server.
func TestWriteRefusals(t *testing.T) {
	dev := modbussim.NewBank()
	srv := serve(t, dev, "127.0.0.1:0").Addr
	tp := newTap(t, srv)
	three := 3
	hourly := func(p *PointConfig) { p.MinWriteInterval = config.Duration(time.Hour) }
	points := []PointConfig{
		pt("input", InputRegister, 0, "uint16", writable),
		pt("discrete", DiscreteInput, 0, "bool", writable),
		pt("locked", HoldingRegister, 0, "uint16"),
		pt("flag", HoldingRegister, 1, "bool", writable, func(p *PointConfig) { p.Bit = &three }),
		pt("temp", HoldingRegister, 2, "int16", writable, scaled(0.1), hourly),
		pt("valve", Coil, 0, "bool", writable, hourly),
	}
	a, rec := start(t, deviceConfig(tp.url(), time.Hour, points...))
	rec.NextCycle(t) // the only poll cycle

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, _, err := a.Write(ctx, "valve", reading.Bool(true)); err != nil {
		t.Fatalf("first write: %v", err)
	}
	cases := []struct {
		point string
		v     reading.Value
		want  error
	}{
		{"nope", reading.Int(1), adapters.ErrNoPoint},
		{"input", reading.Int(1), adapters.ErrNotWritable},
		{"discrete", reading.Bool(true), adapters.ErrNotWritable},
		{"locked", reading.Int(1), adapters.ErrNotWritable},
		{"flag", reading.Bool(true), adapters.ErrNotWritable},
		{"temp", reading.String("abc"), adapters.ErrBadValue},
		{"temp", reading.Bool(true), adapters.ErrBadValue},
		{"temp", reading.Float(3276.8), adapters.ErrBadValue},
		{"temp", reading.Float(-3276.9), adapters.ErrBadValue},
		{"valve", reading.String("maybe"), adapters.ErrBadValue},
		{"valve", reading.Bool(false), adapters.ErrTooSoon},
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("%s=%v", c.point, c.v), func(t *testing.T) {
			before := tp.counts()
			_, _, err := a.Write(ctx, c.point, c.v)
			if !errors.Is(err, c.want) {
				t.Fatalf("err %v, want %v", err, c.want)
			}
			if !strings.Contains(err.Error(), fmt.Sprintf("%q", c.point)) {
				t.Errorf("error %q does not name the point", err)
			}
			if after := tp.counts(); fmt.Sprint(after) != fmt.Sprint(before) {
				t.Errorf("requests reached the server: %v → %v", before, after)
			}
		})
	}
	// Refused writes do not count for min_write_interval: temp, refused
	// above, is still writable.
	if _, _, err := a.Write(ctx, "temp", reading.Float(1)); err != nil {
		t.Errorf("write after refusals: %v", err)
	}
}

// TestOnChange: an unchanging on_change point is emitted once, then again
// when it changes, while a plain point is emitted every cycle.
func TestOnChange(t *testing.T) {
	dev := modbussim.NewBank()
	srv := serve(t, dev, "127.0.0.1:0").Addr
	dev.SetHolding(0, 4, 9)
	_, rec := start(t, deviceConfig("tcp://"+srv, 5*time.Millisecond,
		pt("steady", HoldingRegister, 0, "uint16", func(p *PointConfig) { p.OnChange = true }),
		pt("always", HoldingRegister, 1, "uint16")))

	c := rec.NextCycle(t)
	if v, _ := c.Value("steady"); v != reading.Uint(4) {
		t.Fatalf("first cycle steady = %v, want 4", v)
	}
	for range 5 {
		c := rec.NextCycle(t)
		if _, ok := c.Value("always"); !ok || c.Err != nil {
			t.Fatalf("cycle without the plain point: %+v", c)
		}
		if v, ok := c.Value("steady"); ok {
			t.Fatalf("unchanged on_change point emitted again: %v", v)
		}
	}
	dev.SetHolding(0, 7)
	rec.AwaitCycle(t, "the change", func(c adapterstest.Cycle) bool { v, _ := c.Value("steady"); return v == reading.Uint(7) })
}

// TestWriteFeedsOnChange: a write's read-back is published by the caller,
// so the polls after it do not publish the unchanged value again.
func TestWriteFeedsOnChange(t *testing.T) {
	dev := modbussim.NewBank()
	srv := serve(t, dev, "127.0.0.1:0").Addr
	dev.SetHolding(0, 4)
	a, rec := start(t, deviceConfig("tcp://"+srv, 5*time.Millisecond,
		pt("sp", HoldingRegister, 0, "uint16", writable, func(p *PointConfig) { p.OnChange = true })))
	rec.AwaitCycle(t, "first reading", func(c adapterstest.Cycle) bool { v, _ := c.Value("sp"); return v == reading.Uint(4) })

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, rb, err := a.Write(ctx, "sp", reading.Int(7)); err != nil || rb.Value != reading.Uint(7) {
		t.Fatalf("Write: %v, %v", rb.Value, err)
	}
	for range 10 {
		c := rec.NextCycle(t)
		if v, ok := c.Value("sp"); ok || c.Err != nil {
			t.Fatalf("poll after the write published %v (status %v); the read-back had", v, c.Err)
		}
	}
}

// TestRunLifecycle: writes fail fast while Run is not running, a concurrent
// second Run is refused, and Run can be started again after it returned, as
// the gateway's supervisor does after a failure.
func TestRunLifecycle(t *testing.T) {
	dev := modbussim.NewBank()
	srv := serve(t, dev, "127.0.0.1:0").Addr
	a, err := New(deviceConfig("tcp://"+srv, time.Hour, pt("h", HoldingRegister, 0, "uint16", writable)), adapters.Env{})
	if err != nil {
		t.Fatal(err)
	}
	wctx, wcancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer wcancel()
	if _, _, err := a.Write(wctx, "h", reading.Int(1)); !errors.Is(err, errStopped) {
		t.Errorf("write before Run: %v, want errStopped", err)
	}
	for round := range 2 {
		ctx, cancel := context.WithCancel(context.Background())
		rec := &adapterstest.Recorder{}
		done := make(chan error, 1)
		go func() { done <- a.Run(ctx, rec) }()
		if c := rec.NextCycle(t); c.Err != nil {
			t.Fatalf("round %d: status %v", round, c.Err)
		}
		if err := a.Run(ctx, rec); err == nil {
			t.Errorf("round %d: concurrent Run did not fail", round)
		}
		if _, rb, err := a.Write(wctx, "h", reading.Int(int64(round+1))); err != nil || rb.Value != reading.Uint(uint64(round+1)) {
			t.Errorf("round %d: write: %v, %v", round, rb.Value, err)
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("round %d: Run: %v", round, err)
		}
		if _, _, err := a.Write(wctx, "h", reading.Int(1)); !errors.Is(err, errStopped) {
			t.Errorf("round %d: write after Run: %v, want errStopped", round, err)
		}
	}
}

func TestNewRejects(t *testing.T) {
	bit := func(n int) func(*PointConfig) { return func(p *PointConfig) { p.Bit = &n } }
	cases := []struct {
		name string
		edit func(*Config)
	}{
		{"url scheme", func(c *Config) { c.URL = "udp://127.0.0.1:502" }},
		{"url path", func(c *Config) { c.URL = "tcp://127.0.0.1:502/x" }},
		{"unit id", func(c *Config) { c.UnitID = 256 }},
		{"interval", func(c *Config) { c.Interval = 0 }},
		{"table", func(c *Config) { c.Points[0].Table = "holding" }},
		{"type", func(c *Config) { c.Points[0].Type = "flaot32" }},
		{"byte order", func(c *Config) { c.Points[0].ByteOrder = "ABDC" }},
		{"scale 0", func(c *Config) { zero := 0.0; c.Points[0].Scale = &zero }},
		{"coil of int16", func(c *Config) { c.Points[0].Table = Coil; c.Points[0].Type = "int16" }},
		{"string without length", func(c *Config) { c.Points[0].Type = "string" }},
		{"string over 125", func(c *Config) { c.Points[0].Type = "string"; c.Points[0].Length = 126 }},
		{"past 65535", func(c *Config) { c.Points[0].Address = 65535; c.Points[0].Type = "int32" }},
		{"bit of int16", func(c *Config) { bit(3)(&c.Points[0]) }},
		{"bit 16", func(c *Config) { c.Points[0].Type = "bool"; bit(16)(&c.Points[0]) }},
		{"bit of coil", func(c *Config) {
			c.Points[0].Table = Coil
			c.Points[0].Type = "bool"
			bit(1)(&c.Points[0])
		}},
		{"duplicate", func(c *Config) { c.Points = append(c.Points, c.Points[0]) }},
		{"rtu host", func(c *Config) { c.URL, c.Line = "rtu://dev/ttyUSB0", line8N1 }},
		{"rtu broadcast unit", func(c *Config) { c.URL, c.Line, c.UnitID = "rtu:///dev/ttyUSB0", line8N1, 0 }},
		{"rtu unit 248", func(c *Config) { c.URL, c.Line, c.UnitID = "rtu:///dev/ttyUSB0", line8N1, 248 }},
		{"rtu line", func(c *Config) { c.URL = "rtu:///dev/ttyUSB0" }},
		{"rtu+tcp path", func(c *Config) { c.URL = "rtu+tcp://127.0.0.1:502/x" }},
		{"rtu+tcp broadcast unit", func(c *Config) { c.URL, c.UnitID = "rtu+tcp://127.0.0.1:502", 0 }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := deviceConfig("tcp://127.0.0.1:502", time.Second, pt("p", HoldingRegister, 0, "int16"))
			if _, err := New(cfg, adapters.Env{}); err != nil {
				t.Fatalf("valid config refused: %v", err)
			}
			c.edit(cfg)
			_, err := New(cfg, adapters.Env{})
			if err == nil || !strings.Contains(err.Error(), `modbus "dev"`) {
				t.Errorf("New = %v, want an error naming the adapter", err)
			}
		})
	}
	for _, url := range []string{"rtu:///dev/ttyUSB0", "rtu+tcp://127.0.0.1:4001", "rtu+tcp://converter"} {
		if _, err := New(rtuConfig(url, 247, time.Second), adapters.Env{}); err != nil {
			t.Errorf("%s refused: %v", url, err)
		}
	}
}

func TestRegistered(t *testing.T) {
	a, err := adapters.New(config.Adapter{Kind: "modbus", Name: "dev", Config: deviceConfig("tcp://127.0.0.1:502", time.Second)}, adapters.Env{})
	if err != nil || a.Name() != "dev" {
		t.Fatalf("adapters.New = %v, %v", a, err)
	}
	if _, ok := a.(adapters.Writer); !ok {
		t.Error("the modbus adapter is not a Writer")
	}
	if _, err := adapters.New(config.Adapter{Kind: "modbus", Config: &otherConfig{}}, adapters.Env{}); err == nil {
		t.Error("a config of the wrong type was accepted")
	}
}

// BenchmarkPollCycle polls 200 float32 registers, 40 int16 input registers
// and 100 coils from a real server over loopback.
func BenchmarkPollCycle(b *testing.B) {
	srv := serve(b, modbussim.NewBank(), "127.0.0.1:0").Addr
	var points []PointConfig
	for i := range 100 {
		points = append(points, pt(fmt.Sprintf("f%d", i), HoldingRegister, 2*i, "float32"))
		points = append(points, pt(fmt.Sprintf("c%d", i), Coil, 3*i, "bool"))
	}
	for i := range 40 {
		points = append(points, pt(fmt.Sprintf("i%d", i), InputRegister, 5*i, "int16", scaled(0.1)))
	}
	a, err := New(deviceConfig("tcp://"+srv, time.Second, points...), adapters.Env{})
	if err != nil {
		b.Fatal(err)
	}
	m, err := a.attach()
	if err != nil {
		b.Fatal(err)
	}
	defer m.detach()

	plan := a.points.Load().all
	for b.Loop() {
		rec := &adapterstest.Recorder{} // one a cycle: memory stays flat
		rec.Status(a.poll(context.Background(), m, rec, plan))
		if c := rec.NextCycle(b); c.Err != nil || len(c.Readings) != len(points) {
			b.Fatalf("%d readings, status %v", len(c.Readings), c.Err)
		}
	}
	b.ReportMetric(float64(len(plan)), "requests/cycle")
	b.ReportMetric(float64(len(points)), "points/cycle")
}

// otherConfig is an adapter config of another kind.
type otherConfig struct{ Config }
