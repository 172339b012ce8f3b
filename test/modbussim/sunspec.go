package modbussim

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/fieldgate/fieldgate/internal/reading"
)

// SunSpec lays a SunSpec device's model chain out in holding registers,
// from the SunSpec Alliance's JSON model definitions that the Modbus
// adapter's tables are generated from (adapters/modbus/sunspec/models), and
// records what an adapter must publish of each point. It reads the JSON
// itself, independently of the adapter's tables and layout, so that a test
// against it checks both.
//
// Points are named as the adapter names them: model_point, a repeating
// group adding its instance's index from 1 (mppt_module_2_DCA). Each gets
// a value of its own, unless Vals sets it.
type SunSpec struct {
	regs map[int]uint16
	addr int // where the next model goes
	// Vals sets points' registers ([]uint16) by name, or marks them
	// NotImplemented; a count point is given its group's count here.
	vals map[string]any
	want map[string]SunSpecPoint
	k    int // counts the points filled, for their values
}

// NotImplemented in Vals gives a point the value of its type that says
// the device does not implement it.
var NotImplemented notImplemented

type notImplemented struct{}

// SunSpecPoint is what an adapter must publish of one point.
type SunSpecPoint struct {
	Value    reading.Value // raw × 10^scale factor; an integer kind when that is 0
	Unit     string        // as the definition writes it
	Writable bool          // access RW
	Absent   bool          // not implemented, or its scale factor is not
	Addr     int           // its first register
}

// NewSunSpec starts a chain with the marker at base; vals is as SunSpec's
// vals.
func NewSunSpec(base int, vals map[string]any) *SunSpec {
	d := &SunSpec{regs: map[int]uint16{}, addr: base + 2, vals: vals, want: map[string]SunSpecPoint{}}
	d.regs[base], d.regs[base+1] = 0x5375, 0x6e53
	return d
}

// The JSON definitions' groups and points.
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

// placed is a point laid out, before what is published of it is known.
type placed struct {
	name  string
	def   jsonPoint
	addr  int
	raw   []uint16
	scope []map[string]*placed // its group's points and those around, innermost first
	top   bool                 // ID or L
}

// modelsDir is where the JSON definitions are, from this file.
func modelsDir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "adapters", "modbus", "sunspec", "models")
}

// Model lays out model id, each of its repeating groups occurring
// counts[group name] times.
func (d *SunSpec) Model(id int, counts map[string]int) error {
	b, err := os.ReadFile(filepath.Join(modelsDir(), fmt.Sprintf("model_%d.json", id)))
	if err != nil {
		return err
	}
	var m struct {
		Group jsonGroup `json:"group"`
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return fmt.Errorf("model %d: %w", id, err)
	}
	start := d.addr
	var all []*placed
	var lay func(g jsonGroup, name string, scope []map[string]*placed) error
	lay = func(g jsonGroup, name string, scope []map[string]*placed) error {
		own := map[string]*placed{}
		scope = append([]map[string]*placed{own}, scope...)
		for i, p := range g.Points {
			pl := &placed{name: name + "_" + p.Name, def: p, addr: d.addr, scope: scope, top: len(scope) == 1 && i < 2}
			if pl.raw, err = d.fill(pl); err != nil {
				return err
			}
			for j, r := range pl.raw {
				d.regs[d.addr+j] = r
			}
			d.addr += p.Size
			own[p.Name] = pl
			all = append(all, pl)
		}
		for _, sub := range g.Groups {
			if sub.Count == nil {
				if err := lay(sub, name+"_"+sub.Name, scope); err != nil {
					return err
				}
				continue
			}
			for i := range counts[sub.Name] {
				if err := lay(sub, fmt.Sprintf("%s_%s_%d", name, sub.Name, i+1), scope); err != nil {
					return err
				}
			}
		}
		return nil
	}
	if err := lay(m.Group, m.Group.Name, nil); err != nil {
		return fmt.Errorf("model %d: %w", id, err)
	}
	d.regs[start], d.regs[start+1] = uint16(id), uint16(d.addr-start-2)
	for _, p := range all {
		if !p.top && p.def.Type != "pad" && p.def.Type != "sunssf" {
			if d.want[p.name], err = d.expect(p); err != nil {
				return fmt.Errorf("model %d: %w", id, err)
			}
		}
	}
	return nil
}

// Vendor lays out a model the definitions do not have, as a maker's own:
// its header and n registers.
func (d *SunSpec) Vendor(id, n int) {
	d.regs[d.addr], d.regs[d.addr+1] = uint16(id), uint16(n)
	for i := range n {
		d.regs[d.addr+2+i] = uint16(i)
	}
	d.addr += 2 + n
}

// End writes the end marker; the device is then complete.
func (d *SunSpec) End() {
	d.regs[d.addr], d.regs[d.addr+1] = 0xffff, 0
}

// Serve puts the device into bank's holding registers.
func (d *SunSpec) Serve(bank *Bank) {
	for a, r := range d.regs {
		bank.SetHolding(uint16(a), r)
	}
}

// Points returns what an adapter must publish of each point laid out, by
// name: not ID and L, padding and scale factors.
func (d *SunSpec) Points() map[string]SunSpecPoint { return d.want }

// fill returns a point's registers: as vals sets them, or a value of its
// own of its type.
func (d *SunSpec) fill(p *placed) ([]uint16, error) {
	switch v := d.vals[p.name].(type) {
	case []uint16:
		if len(v) != p.def.Size {
			return nil, fmt.Errorf("%s: %d registers for a point of %d", p.name, len(v), p.def.Size)
		}
		return v, nil
	case notImplemented:
		switch p.def.Type {
		case "int16", "sunssf":
			return []uint16{0x8000}, nil
		case "int32":
			return []uint16{0x8000, 0}, nil
		case "uint16", "enum16", "bitfield16", "uint32", "enum32", "bitfield32", "uint64":
			return []uint16{0xffff, 0xffff, 0xffff, 0xffff}[:p.def.Size], nil
		case "acc16", "acc32", "acc64", "string":
			return make([]uint16, p.def.Size), nil
		case "float32":
			return []uint16{0x7fc0, 0}, nil
		}
		return nil, fmt.Errorf("%s: no value for not implemented of %s", p.name, p.def.Type)
	}
	d.k++
	k := d.k
	switch p.def.Type {
	case "int16":
		return []uint16{uint16(int16(-1 - k%1000))}, nil
	case "uint16", "enum16", "bitfield16", "count", "raw16", "acc16":
		return []uint16{uint16(1 + k%1000)}, nil
	case "int32":
		v := uint32(int32(-100000 - k))
		return []uint16{uint16(v >> 16), uint16(v)}, nil
	case "uint32", "acc32", "enum32", "bitfield32":
		v := uint32(100000 + k)
		return []uint16{uint16(v >> 16), uint16(v)}, nil
	case "uint64", "acc64":
		v := uint64(1e12) + uint64(k)
		return []uint16{uint16(v >> 48), uint16(v >> 32), uint16(v >> 16), uint16(v)}, nil
	case "float32":
		v := math.Float32bits(float32(k) + 0.25)
		return []uint16{uint16(v >> 16), uint16(v)}, nil
	case "string":
		return Text(fmt.Sprintf("S%d", k), p.def.Size), nil
	case "sunssf":
		return []uint16{0}, nil
	case "pad":
		return []uint16{0x8000}, nil
	}
	return nil, fmt.Errorf("%s: type %s is not laid out here", p.name, p.def.Type)
}

// Text is s in n registers, two characters each, the first in the high
// byte, padded with NULs.
func Text(s string, n int) []uint16 {
	regs := make([]uint16, n)
	for i := 0; i < len(s) && i < 2*n; i++ {
		regs[i/2] |= uint16(s[i]) << (8 * (1 - i%2))
	}
	return regs
}

// expect is what an adapter must publish of p.
func (d *SunSpec) expect(p *placed) (SunSpecPoint, error) {
	w := SunSpecPoint{Unit: p.def.Units, Writable: p.def.Access == "RW", Addr: p.addr}
	if d.vals[p.name] == NotImplemented {
		w.Absent = true
		return w, nil
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
			return w, fmt.Errorf("%s: scale factor %s not found", p.name, s)
		}
		if f.raw[0] == 0x8000 {
			w.Absent = true
			return w, nil
		}
		sf = int(int16(f.raw[0]))
	}
	var be []byte
	for _, r := range p.raw {
		be = binary.BigEndian.AppendUint16(be, r)
	}
	switch p.def.Type {
	case "int16":
		w.Value = reading.Int(int64(int16(p.raw[0])))
	case "int32":
		w.Value = reading.Int(int64(int32(binary.BigEndian.Uint32(be))))
	case "uint16", "enum16", "bitfield16", "count", "raw16", "acc16":
		w.Value = reading.Uint(uint64(p.raw[0]))
	case "uint32", "acc32", "enum32", "bitfield32":
		w.Value = reading.Uint(uint64(binary.BigEndian.Uint32(be)))
	case "uint64", "acc64":
		w.Value = reading.Uint(binary.BigEndian.Uint64(be))
	case "float32":
		w.Value = reading.Float(float64(math.Float32frombits(binary.BigEndian.Uint32(be))))
	case "string":
		w.Value = reading.String(strings.TrimRight(string(be), "\x00"))
	}
	if sf != 0 {
		f, _ := w.Value.Float64()
		w.Value = reading.Float(f * math.Pow10(sf))
	}
	return w, nil
}
