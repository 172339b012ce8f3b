package modbus

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	gmb "github.com/goburrow/modbus"

	"github.com/fieldgate/fieldgate/adapters"
	"github.com/fieldgate/fieldgate/adapters/adapterstest"
	"github.com/fieldgate/fieldgate/adapters/modbus/sunspec"
	"github.com/fieldgate/fieldgate/config"
	"github.com/fieldgate/fieldgate/internal/reading"
	"github.com/fieldgate/fieldgate/test/modbussim"
)

// The SunSpec tests serve devices that modbussim.SunSpec lays out from the
// Alliance's JSON definitions, independently of the generated tables and
// of the adapter's layout, so that each checks the other.

// sunDevice lays out a chain at base: the models by id, each with the
// counts of its repeating groups, and the end marker.
func sunDevice(t *testing.T, base int, vals map[string]any, models ...sunModel) *modbussim.SunSpec {
	t.Helper()
	d := modbussim.NewSunSpec(base, vals)
	for _, m := range models {
		if m.vendor > 0 {
			d.Vendor(m.id, m.vendor)
		} else if err := d.Model(m.id, m.counts); err != nil {
			t.Fatal(err)
		}
	}
	d.End()
	return d
}

// sunModel is one model of a test chain: vendor > 0 lays out a model the
// definitions lack, of that length.
type sunModel struct {
	id     int
	counts map[string]int
	vendor int
}

// inverterDevice is the test's SunSpec device at 40000: common (1), a
// three-phase inverter (103) with scale factors negative (A, Hz), zero (W)
// and positive (WH), an MPPT extension (160) with two modules, a meter
// (203), a float meter (213), basic storage (124) and a battery (802), with
// some points and one scale factor not implemented.
func inverterDevice(t *testing.T) *modbussim.SunSpec {
	unimpl := modbussim.NotImplemented
	return sunDevice(t, 40000, map[string]any{
		"common_Mn":                    modbussim.Text("fieldgate", 16),
		"common_Opt":                   unimpl,
		"inverter_three_phase_A_SF":    []uint16{0xfffe}, // -2
		"inverter_three_phase_V_SF":    []uint16{0xffff}, // -1
		"inverter_three_phase_W_SF":    []uint16{0},
		"inverter_three_phase_Hz_SF":   []uint16{0xfffe},
		"inverter_three_phase_WH_SF":   []uint16{3},
		"inverter_three_phase_A":       []uint16{1234},    // 12.34 A
		"inverter_three_phase_W":       []uint16{0xfc18},  // -1000 W
		"inverter_three_phase_Hz":      []uint16{5002},    // 50.02 Hz
		"inverter_three_phase_WH":      []uint16{0, 4567}, // 4567000 Wh
		"inverter_three_phase_PPVphAB": unimpl,
		"inverter_three_phase_VAr":     unimpl,
		"inverter_three_phase_Evt2":    unimpl,
		"mppt_N":                       []uint16{2},
		"mppt_DCA_SF":                  []uint16{0xffff},
		"mppt_module_2_DCA":            []uint16{87}, // 8.7 A
		"ac_meter_abcn_TotVAhExp":      unimpl,
		"ac_meter_abcn_float_W":        unimpl,
		"storage_basic_WChaMax_SF":     []uint16{1},
		"storage_basic_WChaMax":        []uint16{350}, // 3500 W
		"storage_basic_InBatV_SF":      unimpl,
		"battery_SoC_SF":               []uint16{0xffff},
		"battery_SoC":                  []uint16{805}, // 80.5 %
	}, sunModel{id: 1}, sunModel{id: 103}, sunModel{id: 160, counts: map[string]int{"module": 2}},
		sunModel{id: 203}, sunModel{id: 213}, sunModel{id: 124}, sunModel{id: 802})
}

// sunspecConfig is an adapter with SunSpec discovery and no other point.
func sunspecConfig(url string) *Config {
	cfg := deviceConfig(url, time.Hour)
	cfg.SunSpec = true
	return cfg
}

// described indexes an announcement by point name.
func described(ps []reading.Point) map[string]reading.Point {
	m := map[string]reading.Point{}
	for _, p := range ps {
		m[p.Name] = p
	}
	return m
}

// TestSunSpecPublishesEveryModel discovers the test device's chain and
// checks every point against the JSON definitions: its name, unit and
// writability in the announcement, its value, scaled, in the first cycle,
// and that the points not implemented are neither announced nor read.
func TestSunSpecPublishesEveryModel(t *testing.T) {
	d := inverterDevice(t)
	bank := modbussim.NewBank()
	d.Serve(bank)
	srv := serve(t, bank, "127.0.0.1:0").Addr
	a, rec := start(t, sunspecConfig("tcp://"+srv))

	desc := described(rec.AwaitPoints(t, "SunSpec points", func(ps []reading.Point) bool { return len(ps) > 0 }))
	c := rec.AwaitCycle(t, "a cycle with readings", func(c adapterstest.Cycle) bool { return len(c.Readings) > 0 })
	if c.Err != nil {
		t.Fatalf("status %v", c.Err)
	}
	published := 0
	for name, w := range d.Points() {
		p, announced := desc[name]
		v, read := c.Value(name)
		if w.Absent {
			if announced || read {
				t.Errorf("%s: not implemented, but announced (%t) or read (%v)", name, announced, v)
			}
			continue
		}
		published++
		if !announced || !read {
			t.Errorf("%s: announced %t, read %t", name, announced, read)
			continue
		}
		if !near(v, w.Value) {
			t.Errorf("%s = %v (%s), want %v (%s)", name, v, v.Kind(), w.Value, w.Value.Kind())
		}
		if p.Unit != sunUnit(w.Unit) || p.Writable != w.Writable || p.Adapter != "dev" {
			t.Errorf("%s described as %+v, want unit %q, writable %t", name, p, sunUnit(w.Unit), w.Writable)
		}
	}
	if len(desc) != published || len(c.Readings) != published {
		t.Errorf("%d announced and %d read, want the %d the definitions lay out", len(desc), len(c.Readings), published)
	}
	// What the table above cannot show by itself.
	for name, want := range map[string]reading.Value{
		"common_Mn":               reading.String("fieldgate"),
		"inverter_three_phase_A":  reading.Float(12.34),
		"inverter_three_phase_W":  reading.Int(-1000), // scale factor 0: the integer
		"inverter_three_phase_Hz": reading.Float(50.02),
		"inverter_three_phase_WH": reading.Float(4567000),
		"mppt_module_2_DCA":       reading.Float(8.7),
		"storage_basic_WChaMax":   reading.Float(3500),
		"battery_SoC":             reading.Float(80.5),
	} {
		if got, _ := c.Value(name); got != want {
			t.Errorf("%s = %v (%s), want exactly %v (%s)", name, got, got.Kind(), want, want.Kind())
		}
	}
	for name, unit := range map[string]string{"inverter_three_phase_TmpCab": "°C", "battery_SoC": "%", "inverter_three_phase_W": "W", "ac_meter_abcn_float_TotWhImp": "Wh"} {
		if desc[name].Unit != unit {
			t.Errorf("%s: unit %q, want %q", name, desc[name].Unit, unit)
		}
	}
	if p := desc["inverter_three_phase_A"]; p.Scale != 0.01 || p.Type != "uint16" {
		t.Errorf("inverter_three_phase_A described as %+v, want scale 0.01, uint16", p)
	}

	set := a.points.Load()
	var read []*point
	for _, p := range set.polled {
		read = append(read, p)
		if p.sun.sf != nil && !slices.Contains(read, p.sun.sf) {
			read = append(read, p.sun.sf)
		}
	}
	plan := a.plan(set.polled)
	t.Logf("%d points published, %d registers read: %d requests a cycle, %d with one request a point (scale factors included)",
		published, planRegs(plan), len(plan), len(read))
	if n := planRegs(plan); len(plan) > (n+124)/125+1 {
		t.Errorf("%d requests a cycle for %d registers, which fit in %d", len(plan), n, (n+124)/125)
	}
}

// planRegs is how many registers a plan reads.
func planRegs(plan []readPlan) int {
	n := 0
	for _, r := range plan {
		n += r.count
	}
	return n
}

// TestSunSpecWrite writes an RW point through the adapter's Write, which
// commands reach: the value is scaled by its scale factor (1: 4200 W is
// 420 in the register), and the read-back comes back scaled. Points the
// definitions make read-only are refused.
func TestSunSpecWrite(t *testing.T) {
	d := inverterDevice(t)
	bank := modbussim.NewBank()
	d.Serve(bank)
	srv := serve(t, bank, "127.0.0.1:0").Addr
	a, rec := start(t, sunspecConfig("tcp://"+srv))
	rec.AwaitCycle(t, "a cycle with readings", func(c adapterstest.Cycle) bool { return len(c.Readings) > 0 })

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	written, back, err := a.Write(ctx, "storage_basic_WChaMax", reading.Float(4200))
	if err != nil {
		t.Fatal(err)
	}
	if written != reading.Float(4200) || back.Value != reading.Float(4200) || back.Point != "storage_basic_WChaMax" {
		t.Errorf("written %v, read back %+v; want 4200", written, back)
	}
	if got := bank.Holding(uint16(d.Points()["storage_basic_WChaMax"].Addr), 1); got[0] != 420 {
		t.Errorf("register holds %d, want 420", got[0])
	}
	if _, _, err := a.Write(ctx, "inverter_three_phase_W", reading.Int(1)); !errors.Is(err, adapters.ErrNotWritable) {
		t.Errorf("write to a read-only point: %v", err)
	}
	if _, _, err := a.Write(ctx, "storage_basic_WChaMax", reading.Float(1e7)); err == nil {
		t.Error("a value past uint16 after scaling was written")
	}
}

// TestSunSpecMarkerMissing: a device without the marker marks the adapter
// error, saying where discovery looked, and discovery is retried until the
// device has one.
func TestSunSpecMarkerMissing(t *testing.T) {
	bank := modbussim.NewBank()
	bank.SetHolding(40000, 0x1234, 0x5678)
	srv := serve(t, bank, "127.0.0.1:0").Addr
	_, rec := start(t, sunspecConfig("tcp://"+srv))
	err := rec.AwaitStatus(t, "error", adapterstest.IsError)
	if !errors.Is(err, ErrNoSunSpec) {
		t.Errorf("status %v, want ErrNoSunSpec", err)
	}
	for _, want := range []string{`modbus "dev"`, "unit 1", `"SunS"`, "40000 (read 0x1234 0x5678)", "50000 (read 0x0000 0x0000)", "or 0 (read"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("status %q does not say %q", err, want)
		}
	}
	rec.AwaitStatus(t, "the error again, at a retry", adapterstest.IsError)
	inverterDevice(t).Serve(bank)
	c := rec.AwaitCycle(t, "readings after a retry", func(c adapterstest.Cycle) bool { return c.Err == nil && len(c.Readings) > 0 })
	if v, _ := c.Value("inverter_three_phase_Hz"); v != reading.Float(50.02) {
		t.Errorf("inverter_three_phase_Hz = %v", v)
	}
}

// TestSunSpecRediscoversAtReconnect: the device comes back from a restart
// with another model chain; the adapter discovers it anew and announces
// its points.
func TestSunSpecRediscoversAtReconnect(t *testing.T) {
	bank := modbussim.NewBank()
	sunDevice(t, 40000, nil, sunModel{id: 1}, sunModel{id: 103}).Serve(bank)
	srv := serve(t, bank, "127.0.0.1:0")
	cfg := sunspecConfig("tcp://" + srv.Addr)
	cfg.Interval = config.Duration(20 * time.Millisecond)
	_, rec := start(t, cfg)
	first := rec.AwaitPoints(t, "the first chain's points", func(ps []reading.Point) bool { return len(ps) > 0 })
	if _, ok := described(first)["battery_SoC"]; ok {
		t.Fatal("battery announced before it exists")
	}
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	rec.AwaitStatus(t, "error while the device is away", adapterstest.IsError)
	inverterDevice(t).Serve(bank)
	serve(t, bank, srv.Addr)
	rec.AwaitPoints(t, "the new chain's points", func(ps []reading.Point) bool { _, ok := described(ps)["battery_SoC"]; return ok })
	rec.AwaitCycle(t, "a battery reading", func(c adapterstest.Cycle) bool { v, _ := c.Value("battery_SoC"); return v == reading.Float(80.5) })
}

// TestDiscoverSunSpec runs discovery through a plain goburrow client, as
// `fieldgate scan` does, with the marker at each address it may be at.
func TestDiscoverSunSpec(t *testing.T) {
	for _, base := range []int{40000, 50000, 0} {
		t.Run(fmt.Sprint(base), func(t *testing.T) {
			bank := modbussim.NewBank()
			sunDevice(t, base, nil, sunModel{id: 1}, sunModel{id: 160, counts: map[string]int{"module": 3}}, sunModel{id: 64999, vendor: 3}).Serve(bank)
			srv := serve(t, bank, "127.0.0.1:0").Addr
			h := gmb.NewTCPClientHandler(srv)
			h.Timeout = 5 * time.Second
			defer h.Close()
			ms, err := DiscoverSunSpec(context.Background(), gmb.NewClient(h))
			if err != nil {
				t.Fatal(err)
			}
			want := []SunSpecModel{
				{ID: 1, Addr: base + 2, Len: 66, Name: "common", Label: "Common"},
				{ID: 160, Addr: base + 70, Len: 8 + 3*20, Name: "mppt", Label: "Multiple MPPT Inverter Extension Model"},
				{ID: 64999, Addr: base + 140, Len: 3},
			}
			if fmt.Sprint(ms) != fmt.Sprint(want) {
				t.Errorf("models\n%+v\nwant\n%+v", ms, want)
			}
		})
	}
}

// TestSunSpecValues decodes each SunSpec type, and its "not implemented"
// value, which is never published.
func TestSunSpecValues(t *testing.T) {
	nan32 := []byte{0x7f, 0xc0, 0, 0}
	cases := []struct {
		typ  string
		size int
		sf   int
		wire []byte
		want reading.Value // the zero Value: not implemented
	}{
		{"int16", 1, -1, []byte{0xff, 0xfe}, reading.Float(-0.2)},
		{"int16", 1, 0, []byte{0x80, 0x00}, reading.Value{}},
		{"sunssf", 1, 0, []byte{0x80, 0x00}, reading.Value{}},
		{"uint16", 1, 2, []byte{0x00, 0x07}, reading.Float(700)},
		{"uint16", 1, 0, []byte{0xff, 0xff}, reading.Value{}},
		{"enum16", 1, 0, []byte{0xff, 0xff}, reading.Value{}},
		{"bitfield16", 1, 0, []byte{0x80, 0x01}, reading.Uint(0x8001)},
		{"acc16", 1, 0, []byte{0, 0}, reading.Value{}},
		{"count", 1, 0, []byte{0xff, 0xff}, reading.Uint(0xffff)},
		{"raw16", 1, 0, []byte{0, 0}, reading.Uint(0)},
		{"int32", 2, 0, []byte{0x80, 0, 0, 0}, reading.Value{}},
		{"int32", 2, -3, []byte{0xff, 0xff, 0xff, 0xff}, reading.Float(-0.001)},
		{"uint32", 2, 0, []byte{0xff, 0xff, 0xff, 0xff}, reading.Value{}},
		{"acc32", 2, 0, []byte{0, 0, 0, 0}, reading.Value{}},
		{"acc32", 2, 0, []byte{0, 1, 0, 0}, reading.Uint(65536)},
		{"bitfield32", 2, 0, []byte{0xff, 0xff, 0xff, 0xff}, reading.Value{}},
		{"int64", 4, 0, []byte{0x80, 0, 0, 0, 0, 0, 0, 0}, reading.Value{}},
		{"uint64", 4, 0, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, reading.Value{}},
		{"acc64", 4, 0, []byte{0, 0, 0, 0, 0, 0, 0, 0}, reading.Value{}},
		{"float32", 2, 0, nan32, reading.Value{}},
		{"float32", 2, 0, []byte{0x41, 0xac, 0, 0}, reading.Float(21.5)},
		{"float64", 4, 0, []byte{0x7f, 0xf8, 0, 0, 0, 0, 0, 0}, reading.Value{}},
		{"string", 2, 0, []byte{0, 0, 0, 0}, reading.Value{}},
		{"string", 2, 0, []byte{'S', 'N', '1', 0}, reading.String("SN1")},
		{"ipaddr", 2, 0, []byte{0, 0, 0, 0}, reading.Value{}},
		{"ipaddr", 2, 0, []byte{192, 168, 1, 20}, reading.String("192.168.1.20")},
		{"ipv6addr", 8, 0, make([]byte, 16), reading.Value{}},
		{"ipv6addr", 8, 0, []byte{0xfe, 0x80, 15: 1}, reading.String("fe80::1")},
		{"eui48", 4, 0, []byte{0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, reading.Value{}},
		{"eui48", 4, 0, []byte{0, 0, 0x00, 0x1b, 0x44, 0x11, 0x3a, 0xb7}, reading.String("00:1B:44:11:3A:B7")},
	}
	for _, c := range cases {
		p := newSunPoint("p", 0, sunspecPoint(c.typ, c.size))
		if p == nil {
			t.Fatalf("%s: no point", c.typ)
		}
		v, ok := p.sunValue(c.wire, c.sf)
		if ok != (c.want != reading.Value{}) || ok && v != c.want {
			t.Errorf("%s %x ×10^%d = %v (%s), %t; want %v (%s)", c.typ, c.wire, c.sf, v, v.Kind(), ok, c.want, c.want.Kind())
		}
	}
	if p := newSunPoint("p", 0, sunspecPoint("string", 126)); p != nil {
		t.Error("a string longer than one request reads was laid out")
	}
}

func sunspecPoint(typ string, size int) sunspec.Point {
	return sunspec.Point{Name: "p", Type: typ, Size: size}
}

// TestEveryModelLaysOut lays out each of the definitions' models, with
// every repeating group once and every register 1 (a value of every type),
// and checks that each point the model defines is published once, but
// those too wide for one request.
func TestEveryModelLaysOut(t *testing.T) {
	models := sunspec.Models()
	if len(models) < 100 {
		t.Fatalf("%d models", len(models))
	}
	for _, def := range models {
		want, n := 0, 0
		var walk func(g sunspec.Group, top bool)
		walk = func(g sunspec.Group, top bool) {
			for i, p := range g.Points {
				n += p.Size
				if !(top && i < 2) && p.Type != "pad" && p.Type != "sunssf" && p.Size <= 125 {
					want++
				}
			}
			for _, sub := range g.Groups {
				walk(sub, false)
			}
		}
		walk(def.Group, true)
		regs := make([]byte, 2*n)
		for i := 1; i < len(regs); i += 2 {
			regs[i] = 1
		}
		ms := []SunSpecModel{{ID: def.ID, Addr: 40002, Len: n - 2, Name: def.Name}}
		got := layoutChain("dev", ms, [][]byte{regs})
		names := map[string]bool{}
		for _, p := range got {
			if names[p.name] || !strings.HasPrefix(p.name, def.Name+"_") {
				t.Errorf("model %d: point %s named twice or outside the model", def.ID, p.name)
			}
			names[p.name] = true
			if p.addr < 40004 || p.addr+p.width() > 40002+n {
				t.Errorf("model %d: point %s at %d outside the model", def.ID, p.name, p.addr)
			}
		}
		if len(got) != want {
			t.Errorf("model %d (%s): %d points published, want %d", def.ID, def.Name, len(got), want)
		}
	}
	t.Logf("%d models", len(models))
}
