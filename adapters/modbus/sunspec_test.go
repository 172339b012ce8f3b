package modbus

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
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

// The SunSpec tests serve devices laid out by sunDevice, a second reading
// of the Alliance's JSON definitions (sunspec/models), independent of the
// generated tables and of the adapter's layout, so that each checks the
// other.

// jsonGroup and jsonPoint are the JSON definitions' groups and points.
type (
	jsonGroup struct {
		Name   string      `json:"name"`
		Count  any         `json:"count"`
		Points []jsonPoint `json:"points"`
		Groups []jsonGroup `json:"groups"`
	}
	jsonPoint struct {
		Name   string `json:"name"`
		Type   string `json:"type"`
		Size   int    `json:"size"`
		SF     any    `json:"sf"`
		Units  string `json:"units"`
		Access string `json:"access"`
	}
)

// unimpl marks a point a device does not implement, in sunDevice.vals.
type notImplemented struct{}

var unimpl notImplemented

// sunDevice lays SunSpec models out in holding registers from the JSON
// definitions and records what the adapter must publish for each point.
type sunDevice struct {
	t    *testing.T
	regs map[int]uint16
	addr int // the next model's
	// vals sets points' registers ([]uint16) by published name, or marks
	// them unimpl; the others get a value of their own.
	vals map[string]any
	want map[string]sunWant
	k    int // counts the points filled, for their values
}

// sunWant is what the adapter must publish of one point.
type sunWant struct {
	value    reading.Value
	unit     string
	writable bool
	absent   bool // not implemented, or its scale factor is not
	addr     int
}

// newSunDevice starts a chain at base, with the marker.
func newSunDevice(t *testing.T, base int, vals map[string]any) *sunDevice {
	d := &sunDevice{t: t, regs: map[int]uint16{}, addr: base + 2, vals: vals, want: map[string]sunWant{}}
	d.regs[base], d.regs[base+1] = 0x5375, 0x6e53
	return d
}

// placed is a point laid out, before its expectation is known.
type placed struct {
	name  string
	def   jsonPoint
	addr  int
	raw   []uint16
	scope []map[string]*placed // its group's points and those around, innermost first
	top   bool                 // ID or L
}

// model lays out model id, its repeating groups occurring counts[group]
// times (a count point is given its value through vals).
func (d *sunDevice) model(id int, counts map[string]int) {
	d.t.Helper()
	b, err := os.ReadFile(filepath.Join("sunspec", "models", fmt.Sprintf("model_%d.json", id)))
	if err != nil {
		d.t.Fatal(err)
	}
	var m struct {
		Group jsonGroup `json:"group"`
	}
	if err := json.Unmarshal(b, &m); err != nil {
		d.t.Fatal(err)
	}
	start := d.addr
	var all []*placed
	var lay func(g jsonGroup, name string, scope []map[string]*placed)
	lay = func(g jsonGroup, name string, scope []map[string]*placed) {
		own := map[string]*placed{}
		scope = append([]map[string]*placed{own}, scope...)
		for i, p := range g.Points {
			pl := &placed{name: name + "_" + p.Name, def: p, addr: d.addr, scope: scope, top: len(scope) == 1 && i < 2}
			pl.raw = d.fill(pl)
			for j, r := range pl.raw {
				d.regs[d.addr+j] = r
			}
			d.addr += p.Size
			own[p.Name] = pl
			all = append(all, pl)
		}
		for _, sub := range g.Groups {
			if sub.Count == nil {
				lay(sub, name+"_"+sub.Name, scope)
				continue
			}
			for i := range counts[sub.Name] {
				lay(sub, fmt.Sprintf("%s_%s_%d", name, sub.Name, i+1), scope)
			}
		}
	}
	lay(m.Group, m.Group.Name, nil)
	d.regs[start], d.regs[start+1] = uint16(id), uint16(d.addr-start-2)
	for _, p := range all {
		if !p.top && p.def.Type != "pad" && p.def.Type != "sunssf" {
			d.want[p.name] = d.expect(p)
		}
	}
}

// vendor lays out a model the definitions do not have: its header and n
// registers.
func (d *sunDevice) vendor(id, n int) {
	d.regs[d.addr], d.regs[d.addr+1] = uint16(id), uint16(n)
	for i := range n {
		d.regs[d.addr+2+i] = uint16(i)
	}
	d.addr += 2 + n
}

// end writes the end marker; the device is then complete.
func (d *sunDevice) end() {
	d.regs[d.addr], d.regs[d.addr+1] = 0xffff, 0
}

// serve puts the device into bank.
func (d *sunDevice) serve(bank *modbussim.Bank) {
	for a, r := range d.regs {
		bank.SetHolding(uint16(a), r)
	}
}

// fill returns a point's registers: as vals sets them, or a value of its
// own of its type.
func (d *sunDevice) fill(p *placed) []uint16 {
	d.t.Helper()
	switch v := d.vals[p.name].(type) {
	case []uint16:
		if len(v) != p.def.Size {
			d.t.Fatalf("%s: %d registers for a point of %d", p.name, len(v), p.def.Size)
		}
		return v
	case notImplemented:
		switch p.def.Type {
		case "int16", "sunssf":
			return []uint16{0x8000}
		case "int32":
			return []uint16{0x8000, 0}
		case "uint16", "enum16", "bitfield16", "uint32", "enum32", "bitfield32", "uint64":
			return []uint16{0xffff, 0xffff, 0xffff, 0xffff}[:p.def.Size]
		case "acc16", "acc32", "acc64", "string":
			return make([]uint16, p.def.Size)
		case "float32":
			return []uint16{0x7fc0, 0}
		}
		d.t.Fatalf("%s: no unimplemented value for %s", p.name, p.def.Type)
	}
	d.k++
	k := d.k
	switch p.def.Type {
	case "int16":
		return []uint16{uint16(int16(-1 - k%1000))}
	case "uint16", "enum16", "bitfield16", "count", "raw16", "acc16":
		return []uint16{uint16(1 + k%1000)}
	case "int32":
		v := uint32(int32(-100000 - k))
		return []uint16{uint16(v >> 16), uint16(v)}
	case "uint32", "acc32", "enum32", "bitfield32":
		v := uint32(100000 + k)
		return []uint16{uint16(v >> 16), uint16(v)}
	case "uint64", "acc64":
		v := uint64(1e12) + uint64(k)
		return []uint16{uint16(v >> 48), uint16(v >> 32), uint16(v >> 16), uint16(v)}
	case "float32":
		v := math.Float32bits(float32(k) + 0.25)
		return []uint16{uint16(v >> 16), uint16(v)}
	case "string":
		s := fmt.Sprintf("S%d", k)
		regs := make([]uint16, p.def.Size)
		for i := 0; i < len(s); i += 2 {
			regs[i/2] = uint16(s[i]) << 8
			if i+1 < len(s) {
				regs[i/2] |= uint16(s[i+1])
			}
		}
		return regs
	case "sunssf":
		return []uint16{0}
	case "pad":
		return []uint16{0x8000}
	}
	d.t.Fatalf("%s: type %s not laid out by the test", p.name, p.def.Type)
	return nil
}

// expect is what the adapter must publish of p.
func (d *sunDevice) expect(p *placed) sunWant {
	w := sunWant{unit: p.def.Units, writable: p.def.Access == "RW", addr: p.addr}
	if d.vals[p.name] == unimpl {
		w.absent = true
		return w
	}
	sf := 0
	switch s := p.def.SF.(type) {
	case float64:
		sf = int(s)
	case string:
		var f *placed
		for _, sc := range p.scope {
			if f = sc[s]; f != nil {
				break
			}
		}
		if f == nil {
			d.t.Fatalf("%s: scale factor %s not found", p.name, s)
		}
		if f.raw[0] == 0x8000 {
			w.absent = true
			return w
		}
		sf = int(int16(f.raw[0]))
	}
	var be []byte
	for _, r := range p.raw {
		be = binary.BigEndian.AppendUint16(be, r)
	}
	scaled := func(raw float64) reading.Value { return reading.Float(raw * math.Pow10(sf)) }
	switch p.def.Type {
	case "int16":
		w.value = reading.Int(int64(int16(p.raw[0])))
	case "int32":
		w.value = reading.Int(int64(int32(binary.BigEndian.Uint32(be))))
	case "uint16", "enum16", "bitfield16", "count", "raw16", "acc16":
		w.value = reading.Uint(uint64(p.raw[0]))
	case "uint32", "acc32", "enum32", "bitfield32":
		w.value = reading.Uint(uint64(binary.BigEndian.Uint32(be)))
	case "uint64", "acc64":
		w.value = reading.Uint(binary.BigEndian.Uint64(be))
	case "float32":
		w.value = reading.Float(float64(math.Float32frombits(binary.BigEndian.Uint32(be))))
	case "string":
		w.value = reading.String(strings.TrimRight(string(be), "\x00"))
	}
	if sf != 0 {
		f, _ := w.value.Float64()
		w.value = scaled(f)
	}
	return w
}

// inverterDevice is the test's SunSpec device at 40000: common (1), a
// three-phase inverter (103) with scale factors negative (A, Hz), zero (W)
// and positive (WH), an MPPT extension (160) with two modules, a meter
// (203), a float meter (213), basic storage (124) and a battery (802), with
// some points and one scale factor not implemented.
func inverterDevice(t *testing.T) *sunDevice {
	d := newSunDevice(t, 40000, map[string]any{
		"common_Mn":                    regsOf("fieldgate"),
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
	})
	d.model(1, nil)
	d.model(103, nil)
	d.model(160, map[string]int{"module": 2})
	d.model(203, nil)
	d.model(213, nil)
	d.model(124, nil)
	d.model(802, nil)
	d.end()
	return d
}

// regsOf is s in registers, two characters each.
func regsOf(s string) []uint16 {
	regs := make([]uint16, 16)
	for i := 0; i < len(s); i++ {
		regs[i/2] |= uint16(s[i]) << (8 * (1 - i%2))
	}
	return regs
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
	d.serve(bank)
	srv := serve(t, bank, "127.0.0.1:0").Addr
	a, rec := start(t, sunspecConfig("tcp://"+srv))

	desc := described(rec.AwaitPoints(t, "SunSpec points", func(ps []reading.Point) bool { return len(ps) > 0 }))
	c := rec.AwaitCycle(t, "a cycle with readings", func(c adapterstest.Cycle) bool { return len(c.Readings) > 0 })
	if c.Err != nil {
		t.Fatalf("status %v", c.Err)
	}
	published := 0
	for name, w := range d.want {
		p, announced := desc[name]
		v, read := c.Value(name)
		if w.absent {
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
		if !near(v, w.value) {
			t.Errorf("%s = %v (%s), want %v (%s)", name, v, v.Kind(), w.value, w.value.Kind())
		}
		if p.Unit != sunUnit(w.unit) || p.Writable != w.writable || p.Adapter != "dev" {
			t.Errorf("%s described as %+v, want unit %q, writable %t", name, p, sunUnit(w.unit), w.writable)
		}
	}
	if len(desc) != published || len(c.Readings) != published {
		t.Errorf("%d announced and %d read, want the %d the definitions lay out", len(desc), len(c.Readings), published)
	}
	// What the table above cannot show by itself.
	for name, want := range map[string]reading.Value{
		"common_Mn":                   reading.String("fieldgate"),
		"inverter_three_phase_A":      reading.Float(12.34),
		"inverter_three_phase_W":      reading.Int(-1000), // scale factor 0: the integer
		"inverter_three_phase_Hz":     reading.Float(50.02),
		"inverter_three_phase_WH":     reading.Float(4567000),
		"mppt_module_2_DCA":           reading.Float(8.7),
		"storage_basic_WChaMax":       reading.Float(3500),
		"battery_SoC":                 reading.Float(80.5),
		"inverter_three_phase_PhVphA": d.want["inverter_three_phase_PhVphA"].value,
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
	t.Logf("%d models, %d points published, %d registers read: %d requests a cycle, %d without coalescing",
		7, published, planRegs(plan), len(plan), len(read))
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
	d.serve(bank)
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
	if got := bank.Holding(uint16(d.want["storage_basic_WChaMax"].addr), 1); got[0] != 420 {
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
	inverterDevice(t).serve(bank)
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
	d := newSunDevice(t, 40000, nil)
	d.model(1, nil)
	d.model(103, nil)
	d.end()
	d.serve(bank)
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
	inverterDevice(t).serve(bank)
	serve(t, bank, srv.Addr)
	rec.AwaitPoints(t, "the new chain's points", func(ps []reading.Point) bool { _, ok := described(ps)["battery_SoC"]; return ok })
	rec.AwaitCycle(t, "a battery reading", func(c adapterstest.Cycle) bool { v, _ := c.Value("battery_SoC"); return v == reading.Float(80.5) })
}

// TestDiscoverSunSpec runs discovery through a plain goburrow client, as
// `fieldgate scan` does, with the marker at each address it may be at.
func TestDiscoverSunSpec(t *testing.T) {
	for _, base := range []int{40000, 50000, 0} {
		t.Run(fmt.Sprint(base), func(t *testing.T) {
			d := newSunDevice(t, base, nil)
			d.model(1, nil)
			d.model(160, map[string]int{"module": 3})
			d.vendor(64999, 3)
			d.end()
			bank := modbussim.NewBank()
			d.serve(bank)
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
