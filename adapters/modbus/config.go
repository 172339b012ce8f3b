package modbus

import (
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/fieldgate/fieldgate/config"
	"github.com/fieldgate/fieldgate/internal/reading"
)

// Config is one [[modbus]] table: one unit id at one address.
type Config struct {
	Name     string          `toml:"name"`
	URL      string          `toml:"url"`      // tcp://host:port | rtu:///dev/ttyUSB0 | rtu+tcp://host:port
	UnitID   int             `toml:"unit_id"`  // default 1; 1-247 on RTU, 0-255 over tcp://
	Interval config.Duration `toml:"interval"` // default 1s
	Timeout  config.Duration `toml:"timeout"`  // default 1s
	config.Line
	MaxGap  int           `toml:"max_gap"` // default 10; 0 merges only adjacent points
	Profile string        `toml:"profile"` // a built-in register map (adapters/modbus/profiles)
	SunSpec bool          `toml:"sunspec"` // discover SunSpec models at each connect
	Points  []PointConfig `toml:"point"`

	// profile holds the profile's points, checked and with their defaults,
	// once Check has loaded them.
	profile []PointConfig
}

// Modbus register tables, as the config names them.
const (
	Coil            = "coil"
	DiscreteInput   = "discrete_input"
	InputRegister   = "input_register"
	HoldingRegister = "holding_register"
)

// PointConfig is one [[modbus.point]].
type PointConfig struct {
	Name             string          `toml:"name"`
	Table            string          `toml:"table"`
	Address          int             `toml:"address"`
	Type             string          `toml:"type"`       // default: bool for coils and discrete inputs, uint16 for registers
	ByteOrder        string          `toml:"byte_order"` // default ABCD
	Scale            *float64        `toml:"scale"`      // default 1
	Offset           float64         `toml:"offset"`
	Bit              *int            `toml:"bit"`    // nil: not a bit of a register
	Length           int             `toml:"length"` // string only: registers
	Unit             string          `toml:"unit"`
	Writable         bool            `toml:"writable"`
	MinWriteInterval config.Duration `toml:"min_write_interval"`
	Interval         config.Duration `toml:"interval"` // 0: the adapter's
	config.Change
}

// types are the point types, as the config names them.
var types = []string{"bool", "int16", "uint16", "int32", "uint32", "int64", "uint64", "float32", "float64", "string"}

// byteOrderNames are the byte orders, as the config names them.
var byteOrderNames = []string{"ABCD", "CDAB", "BADC", "DCBA"}

// Registers is how many 16-bit registers (or, for coils and discrete inputs,
// bits) the point occupies. Unknown types, which Check refuses, count 0.
func (p PointConfig) Registers() int {
	switch p.Type {
	case "bool", "int16", "uint16":
		return 1
	case "int32", "uint32", "float32":
		return 2
	case "int64", "uint64", "float64":
		return 4
	case "string":
		return p.Length
	}
	return 0
}

// AdapterName implements config.AdapterConfig.
func (c *Config) AdapterName() string { return c.Name }

const urlForms = "want tcp://host:port, rtu:///dev/ttyUSB0 or rtu+tcp://host:port"

// Check implements config.AdapterConfig.
func (c *Config) Check(ck *config.Check) {
	// RTU unit 0 is broadcast, which nothing answers; Modbus TCP devices
	// take any unit, often 0 or 255.
	minUnit, maxUnit := 1, 247
	if len(c.Points) == 0 && c.Profile == "" && !c.SunSpec {
		ck.NoPoints()
	}
	ck.SerialLine(&c.Line)
	if ck.Required(c.URL, "url") {
		u, err := url.Parse(c.URL)
		switch {
		case err != nil:
			ck.Errorf("url", "bad url %q: %s", c.URL, urlForms)
		case u.Scheme == "tcp" || u.Scheme == "rtu+tcp":
			if h, p, err := net.SplitHostPort(u.Host); err != nil || h == "" || p == "" {
				ck.Errorf("url", "bad url %q: %s", c.URL, urlForms)
			}
			if u.Scheme == "tcp" {
				minUnit, maxUnit = 0, 255
			}
		case u.Scheme == "rtu" && u.Host == "" && u.Path != "":
			ck.SerialPort("url", u.Path, c.Line, true)
		default:
			ck.Errorf("url", "bad url %q: %s", c.URL, urlForms)
		}
	}
	ck.Int(&c.UnitID, "unit_id", 1, minUnit, maxUnit)
	ck.Duration(&c.Interval, "interval", time.Second, 0)
	ck.Duration(&c.Timeout, "timeout", time.Second, 0)
	ck.Int(&c.MaxGap, "max_gap", 10, 0, 65535)
	for i := range c.Points {
		c.Points[i].check(ck.Point(i, c.Points[i].Name))
	}
	if c.Profile != "" {
		c.profile = checkProfile(ck, c.Profile)
	}
}

func (p *PointConfig) check(ck *config.Check) {
	ck.Choice(&p.Table, "table", "", Coil, DiscreteInput, InputRegister, HoldingRegister)
	bits := p.Table == Coil || p.Table == DiscreteInput
	def := "uint16"
	if bits {
		def = "bool"
	}
	ck.Choice(&p.Type, "type", def, types...)
	if bits && p.Type != "bool" {
		ck.Errorf("type", "type %q cannot be read from a %s, only bool", p.Type, p.Table)
	}
	if p.Bit != nil {
		switch {
		case bits || p.Type != "bool":
			ck.Errorf("bit", "bit needs a register table and type bool")
		case *p.Bit < 0 || *p.Bit > 15:
			ck.Errorf("bit", "bit %d out of range 0..15", *p.Bit)
		}
	}
	switch {
	case p.Type == "string" && (p.Length < 1 || p.Length > 123):
		ck.Errorf("length", "type string needs length 1..123 (registers), not %d", p.Length)
	case p.Type != "string" && ck.Has("length"):
		ck.Errorf("length", "length is for type string only")
	}
	if n := p.Registers(); p.Address < 0 || p.Address > 65535 || p.Address+max(n, 1)-1 > 65535 {
		ck.Errorf("address", "address %d with %d registers does not fit 0..65535", p.Address, n)
	}
	p.ByteOrder = strings.ToUpper(p.ByteOrder)
	ck.Choice(&p.ByteOrder, "byte_order", "ABCD", byteOrderNames...)
	if p.Writable && p.Table != Coil && p.Table != HoldingRegister {
		ck.Errorf("writable", "a %s is read-only: only coils and holding registers are writable", p.Table)
	}
	ck.WriteInterval(&p.MinWriteInterval, "min_write_interval", p.Type == "bool")
	if p.Scale == nil {
		p.Scale = new(float64)
		*p.Scale = 1
	} else if *p.Scale == 0 {
		ck.Errorf("scale", "scale must not be 0")
	}
	ck.Duration(&p.Interval, "interval", 0, 0)
	ck.Change(&p.Change)
}

// points returns every point the adapter polls, but those SunSpec discovery
// adds: the profile's, each replaced by a configured point of the same name,
// then the other configured points.
func (c *Config) points() []PointConfig {
	if len(c.profile) == 0 {
		return c.Points
	}
	configured := make(map[string]int, len(c.Points))
	for i, p := range c.Points {
		configured[p.Name] = i
	}
	ps := make([]PointConfig, 0, len(c.profile)+len(c.Points))
	replaced := make([]bool, len(c.Points))
	for _, p := range c.profile {
		if i, ok := configured[p.Name]; ok {
			p, replaced[i] = c.Points[i], true
		}
		ps = append(ps, p)
	}
	for i, p := range c.Points {
		if !replaced[i] {
			ps = append(ps, p)
		}
	}
	return ps
}

// PointInfo implements config.AdapterConfig. SunSpec points are known only
// once discovered: the adapter announces them through its Emitter.
func (c *Config) PointInfo() []reading.Point {
	pcs := c.points()
	ps := make([]reading.Point, len(pcs))
	for i, p := range pcs {
		ps[i] = reading.Point{Adapter: c.Name, Name: p.Name, Type: p.Type, Unit: p.Unit, Writable: p.Writable,
			Scale: *p.Scale, Offset: p.Offset}
	}
	return ps
}

// PollInterval implements config.AdapterConfig: the adapter's interval or
// its fastest point's.
func (c *Config) PollInterval() time.Duration {
	d := c.Interval.D()
	for _, p := range c.points() {
		d = config.Sooner(d, p.Interval.D())
	}
	return d
}

// Summary implements config.AdapterConfig.
func (c *Config) Summary() string {
	all := c.points()
	points := config.Count(len(all), "point")
	if c.Profile != "" {
		points += fmt.Sprintf(" (%d from profile %s)", len(all)-len(c.Points), c.Profile)
	}
	if c.SunSpec {
		points += " + SunSpec discovery"
	}
	return fmt.Sprintf("%s unit %d, %s every %s", config.RedactURL(c.URL), c.UnitID, points, c.Interval)
}
