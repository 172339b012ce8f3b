package config

import (
	"fmt"
	"math"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Check validates one table of the file and fills its defaults: the
// loader hands one to each adapter config's Check method. Its methods
// report a problem with a key of the table at the key's place in the file,
// once per key, and the load fails with every problem found.
type Check struct {
	l      *loader
	n      node
	points map[string]node     // point names used so far, for Point
	set    func(k string) bool // the keys a built-in table sets (see Builtin); nil for the file's tables
}

// Key names the table as errors do: `modbus "boiler" point "temp"`.
func (c *Check) Key() string { return c.n.key }

// Has reports whether the file sets key k of the table, so a default never
// overrides an explicit value.
func (c *Check) Has(k string) bool {
	if c.set != nil {
		return c.set(k)
	}
	return c.l.defined[join(c.n.path, k)]
}

// Errorf reports a problem with key k ("" for the table itself).
func (c *Check) Errorf(k, format string, args ...any) { c.l.errorf(c.n, k, format, args...) }

// Line returns the line of key k in the file, 0 when it has none.
func (c *Check) Line(k string) int { return c.l.find(join(c.n.path, k)).line }

// Table returns the check of the sub-table k ([upstream.tls]).
func (c *Check) Table(k string) *Check { return &Check{l: c.l, n: c.n.child(k)} }

// Duration fills an unset duration with def and requires a set one to be
// at least least (more than 0 when least is 0).
func (c *Check) Duration(d *Duration, k string, def, least time.Duration) {
	switch {
	case !c.Has(k):
		*d = Duration(def)
	case least > 0 && d.D() < least:
		c.Errorf(k, "%s must be at least %s", k, least)
	case d.D() <= 0:
		c.Errorf(k, "%s must be more than 0", k)
	}
}

// Int fills an unset integer with def and requires lo <= v <= hi.
func (c *Check) Int(v *int, k string, def, lo, hi int) {
	if !c.Has(k) {
		*v = def
	}
	switch {
	case *v >= lo && *v <= hi:
	case hi == math.MaxInt:
		c.Errorf(k, "%s must be at least %d, not %d", k, lo, *v)
	default:
		c.Errorf(k, "%s %d out of range %d..%d", k, *v, lo, hi)
	}
}

// Choice fills an empty string with def and requires one of allowed; an
// empty def makes the key required.
func (c *Check) Choice(v *string, k, def string, allowed ...string) {
	if *v == "" {
		*v = def
	}
	switch {
	case *v == "":
		c.Errorf(k, "%s is required", k)
	case !slices.Contains(allowed, *v):
		c.Errorf(k, "unknown %s %q", k, *v)
	}
}

// Required reports whether v is set, complaining if not.
func (c *Check) Required(v, k string) bool {
	if v == "" {
		c.Errorf(k, "%s is required", k)
	}
	return v != ""
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// name checks an identifier that becomes an MQTT topic level or a file name.
func (c *Check) name(v, k string, reserved bool) bool {
	switch {
	case !c.Required(v, k):
	case !nameRE.MatchString(v):
		c.Errorf(k, "bad %s %q: use only letters, digits, _ and -", k, v)
	case reserved && v == "status":
		c.Errorf(k, "%s %q is reserved for status topics", k, v)
	default:
		return true
	}
	return false
}

// unique records that the name key of c uses v in the namespace seen, and
// complains if an earlier table used it already.
func (c *Check) unique(seen map[string]node, v, what string) {
	if first, dup := seen[v]; dup {
		c.Errorf("name", "duplicate %s name %q (first used at line %d)", what, v, c.l.find(join(first.path, "name")).line)
		return
	}
	seen[v] = c.n
}

// Builtin returns the check of a table that comes with the program rather
// than from the file, such as a point of a built-in device profile, so that
// it passes the same checks as the file's tables. Its problems are reported
// at key k of c's table, labelled label (`modbus "m" profile "x" point
// "y"`); set reports which keys the table sets.
func (c *Check) Builtin(k, label string, set func(k string) bool) *Check {
	n := c.n.child(k)
	return &Check{l: c.l, n: node{path: join(n.path, label), key: n.key + " " + label}, set: set}
}

// Point returns the check of element i of the table's array of points,
// having checked its name: a valid name, unique within the adapter, not
// "status".
func (c *Check) Point(i int, name string) *Check {
	p := &Check{l: c.l, n: c.n.elem("point", i, name)}
	if c.points == nil {
		c.points = map[string]node{}
	}
	if p.name(name, "name", true) {
		p.unique(c.points, name, "point")
	}
	return p
}

// NoPoints reports an adapter that has no points to read.
func (c *Check) NoPoints() { c.Errorf("point", "no points") }

// maxBaudRate is above any USB serial adapter's (FTDI's fastest: 12 Mbaud).
const maxBaudRate = 12_000_000

// SerialLine fills and checks the line settings of a serial port.
func (c *Check) SerialLine(ln *Line) {
	c.Int(&ln.BaudRate, "baud_rate", 9600, 1, maxBaudRate)
	c.Int(&ln.DataBits, "data_bits", 8, 5, 8)
	ln.Parity = strings.ToUpper(ln.Parity)
	c.Choice(&ln.Parity, "parity", "N", "N", "E", "O")
	c.Int(&ln.StopBits, "stop_bits", 1, 1, 2)
}

// portUse is a claim on a serial device: Modbus RTU adapters may share a
// bus when their line settings agree; nothing else shares a port.
type portUse struct {
	line   Line
	shared bool
}

// SerialPort claims the serial device dev (named by key k) with line
// settings ln, so two adapters cannot fight over it; shared claims (Modbus
// RTU units on one bus) may meet when their line settings agree.
func (c *Check) SerialPort(k, dev string, ln Line, shared bool) {
	first, prev, taken := c.claim("serial "+dev, portUse{ln, shared})
	switch {
	case !taken:
	case !shared || !prev.(portUse).shared:
		c.Errorf(k, "%s %q is already used by %s", k, dev, first.key)
	case prev.(portUse).line != ln:
		c.Errorf(k, "line settings differ from %s on the same bus %q", first.key, dev)
	}
}

// Claim claims resource (a GPIO line of a chip, say) for the table,
// reporting on key k, with what, if another table has it already.
func (c *Check) Claim(k, resource, what string) {
	if first, _, taken := c.claim(resource, nil); taken {
		c.Errorf(k, "%s is already used by %s", what, first.key)
	}
}

// claim records the first claimant of resource and returns it, with its
// tag, when someone was first.
func (c *Check) claim(resource string, tag any) (first node, prev any, taken bool) {
	if cl, ok := c.l.claims[resource]; ok {
		return cl.n, cl.tag, true
	}
	c.l.claims[resource] = claimant{c.n, tag}
	return node{}, nil, false
}

type claimant struct {
	n   node
	tag any
}

// OnOffWriteInterval is min_write_interval's default for on/off points
// (coils, GPIO outputs, any point of type bool): a relay or contactor
// commanded faster than this by a runaway automation chatters, and a motor
// behind it starts more often than its rating allows. Other points default
// to 0 (no limit): a setpoint written twice does no harm.
const OnOffWriteInterval = time.Second

// WriteInterval fills a point's min_write_interval, named by key k: with
// OnOffWriteInterval for an on/off point, else 0, when the file does not
// set it; "0s" turns the limit off.
func (c *Check) WriteInterval(d *Duration, k string, onOff bool) {
	if !c.Has(k) && onOff {
		*d = Duration(OnOffWriteInterval)
	}
}

// Change checks a point's on-change settings.
func (c *Check) Change(ch *Change) {
	if ch.Deadband < 0 {
		c.Errorf("deadband", "deadband must not be negative")
	}
}

// Count says "1 point", "5 points": for summaries.
func Count(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}
