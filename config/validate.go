package config

import (
	"fmt"
	"math"
	"net"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Adapter kinds: the config section names, also the names adapters register
// under.
const (
	KindModbus = "modbus"
	KindSerial = "serial"
	KindGPIO   = "gpio"
)

// Modbus point types.
var modbusTypes = []string{"bool", "int16", "uint16", "int32", "uint32", "int64", "uint64", "float32", "float64", "string"}

// Registers is how many 16-bit registers (or, for coils and discrete inputs,
// bits) the point occupies; the modbus adapter plans its reads with it.
// Unknown types, which Load refuses, count 0.
func (p ModbusPoint) Registers() int {
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

// obj is one table being checked.
type obj struct {
	l *loader
	n node
}

func (o obj) has(k string) bool { return o.l.defined[join(o.n.path, k)] }

func (o obj) errorf(k, format string, args ...any) { o.l.errorf(o.n, k, format, args...) }

// dur fills an unset duration with def and requires a set one to be at least
// least (more than 0 when least is 0).
func (o obj) dur(d *Duration, k string, def, least time.Duration) {
	switch {
	case !o.has(k):
		*d = Duration(def)
	case least > 0 && d.D() < least:
		o.errorf(k, "%s must be at least %s", k, least)
	case d.D() <= 0:
		o.errorf(k, "%s must be more than 0", k)
	}
}

// integer fills an unset integer with def and requires lo <= v <= hi.
func (o obj) integer(v *int, k string, def, lo, hi int) {
	if !o.has(k) {
		*v = def
	}
	switch {
	case *v >= lo && *v <= hi:
	case hi == math.MaxInt:
		o.errorf(k, "%s must be at least %d, not %d", k, lo, *v)
	default:
		o.errorf(k, "%s %d out of range %d..%d", k, *v, lo, hi)
	}
}

// choice fills an empty string with def and requires one of allowed; an
// empty def makes the key required.
func (o obj) choice(v *string, k, def string, allowed ...string) {
	if *v == "" {
		*v = def
	}
	switch {
	case *v == "":
		o.errorf(k, "%s is required", k)
	case !slices.Contains(allowed, *v):
		o.errorf(k, "unknown %s %q", k, *v)
	}
}

func (o obj) required(v, k string) bool {
	if v == "" {
		o.errorf(k, "%s is required", k)
	}
	return v != ""
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// name checks an identifier that becomes an MQTT topic level or a file name.
func (o obj) name(v, k string, reserved bool) bool {
	switch {
	case !o.required(v, k):
	case !nameRE.MatchString(v):
		o.errorf(k, "bad %s %q: use only letters, digits, _ and -", k, v)
	case reserved && v == "status":
		o.errorf(k, "%s %q is reserved for status topics", k, v)
	default:
		return true
	}
	return false
}

// unique records that the name key of o uses v in the namespace seen, and
// complains if an earlier table used it already.
func (o obj) unique(seen map[string]node, v, what string) {
	if first, dup := seen[v]; dup {
		o.errorf("name", "duplicate %s name %q (first used at line %d)", what, v, o.l.find(join(first.path, "name")).line)
		return
	}
	seen[v] = o.n
}

// topicPrefix fills an empty prefix with def, which is checked where it
// comes from, and checks a given one.
func (o obj) topicPrefix(v *string, def string) {
	if *v == "" {
		*v = def
		return
	}
	if strings.ContainsAny(*v, "+#\x00") || strings.HasSuffix(*v, "/") {
		o.errorf("topic_prefix", "bad topic_prefix %q: no wildcards (+ #) and no trailing /", *v)
	}
}

// check fills defaults and validates c, in file order.
func (l *loader) check(c *Config) {
	root := node{}
	l.gateway(obj{l, root.child("gateway")}, &c.Gateway)
	l.buffer(obj{l, root.child("buffer")}, &c.Buffer)

	upstreams := map[string]node{}
	for i := range c.Upstream {
		u := &c.Upstream[i]
		l.upstream(obj{l, root.elem("upstream", i, u.Name)}, u, &c.Gateway, upstreams)
	}

	adapters := map[string]node{}
	ports := map[string]portUse{}
	for i := range c.Modbus {
		m := &c.Modbus[i]
		l.modbus(l.adapter(root.elem(KindModbus, i, m.Name), m.Name, adapters, len(m.Points)), m, ports)
	}
	for i := range c.Serial {
		s := &c.Serial[i]
		l.serial(l.adapter(root.elem(KindSerial, i, s.Name), s.Name, adapters, len(s.Points)), s, ports)
	}
	lines := map[string]map[int]node{}
	for i := range c.GPIO {
		g := &c.GPIO[i]
		l.gpio(l.adapter(root.elem(KindGPIO, i, g.Name), g.Name, adapters, len(g.Points)), g, lines)
	}
}

func (l *loader) gateway(o obj, g *Gateway) {
	o.name(g.ID, "id", false)
	o.topicPrefix(&g.TopicPrefix, "fieldgate/"+g.ID)
	g.LogLevel = strings.ToLower(g.LogLevel)
	o.choice(&g.LogLevel, "log_level", "info", "debug", "info", "warn", "error")
	if g.MetricsListen != "" {
		if _, _, err := net.SplitHostPort(g.MetricsListen); err != nil {
			o.errorf("metrics_listen", "bad metrics_listen %q: want host:port", g.MetricsListen)
		}
	}
	o.dur(&g.CommandMaxAge, "command_max_age", 30*time.Second, 0)
}

func (l *loader) buffer(o obj, b *Buffer) {
	if b.Dir == "" {
		b.Dir = "/var/lib/fieldgate"
	}
	if !o.has("max_size") {
		b.MaxSize = 256 << 20
	} else if b.MaxSize <= 0 {
		o.errorf("max_size", "max_size must be more than 0")
	}
	o.choice(&b.Fsync, "fsync", "interval", "always", "interval", "never")
	o.dur(&b.FsyncInterval, "fsync_interval", time.Second, 0)
}

// MQTT URL schemes, and those that mean TLS.
var (
	mqttSchemes = []string{"mqtt", "tcp", "mqtts", "ssl", "tls", "ws", "wss"}
	tlsSchemes  = []string{"mqtts", "ssl", "tls", "wss"}
)

func (l *loader) upstream(o obj, u *Upstream, g *Gateway, seen map[string]node) {
	if o.name(u.Name, "name", false) {
		o.unique(seen, u.Name, "upstream")
	}
	if u.ClientID == "" {
		u.ClientID = g.ID + "-" + u.Name
	}

	// url and urls are two spellings of one list; after Load, URLs has it.
	key := func(int) string { return "url" }
	switch {
	case u.URL == "" && len(u.URLs) == 0:
		o.errorf("url", "url or urls is required")
	case u.URL != "" && len(u.URLs) > 0:
		o.errorf("urls", "give url or urls, not both")
	case u.URL != "":
		u.URLs = []string{u.URL}
	default:
		key = func(i int) string { return join("urls", fmt.Sprint(i)) }
	}
	var secure, plain int
	for i, s := range u.URLs {
		p, err := url.Parse(s)
		switch {
		case err != nil || !slices.Contains(mqttSchemes, p.Scheme) || p.Hostname() == "":
			o.errorf(key(i), "bad url %q: want mqtt://, tcp://, mqtts://, ssl://, tls://, ws:// or wss:// and a host", RedactURL(s))
		case p.Port() == "" && p.Scheme != "ws" && p.Scheme != "wss":
			o.errorf(key(i), "url %q has no port", RedactURL(s))
		case slices.Contains(tlsSchemes, p.Scheme):
			secure++
		default:
			plain++
		}
	}
	switch {
	case secure > 0 && plain > 0:
		o.errorf("urls", "urls mix TLS and plain schemes")
	case secure > 0 && u.TLS == nil:
		u.TLS = &TLS{}
	case plain > 0 && u.TLS != nil:
		o.errorf("tls", "tls is set but the url scheme is not a TLS one (use mqtts://, ssl://, tls:// or wss://)")
	}
	if u.TLS != nil {
		t := obj{o.l, o.n.child("tls")}
		switch {
		case u.TLS.CertFile != "" && u.TLS.KeyFile == "":
			t.errorf("cert_file", "cert_file needs key_file")
		case u.TLS.KeyFile != "" && u.TLS.CertFile == "":
			t.errorf("key_file", "key_file needs cert_file")
		}
	}

	switch {
	case u.PasswordFile != "" && u.Password != "":
		o.errorf("password_file", "give password or password_file, not both")
	case u.PasswordFile != "":
		b, err := o.l.readFile(u.PasswordFile)
		if err != nil {
			o.l.fail(o.n, "password_file", err, fmt.Sprintf("password_file: %v", err))
		}
		u.Password = Secret(strings.TrimRight(string(b), "\r\n"))
	}

	if u.QoS == nil {
		u.QoS = new(int)
		*u.QoS = 1
	} else if *u.QoS < 0 || *u.QoS > 2 {
		o.errorf("qos", "qos %d out of range 0..2", *u.QoS)
	}
	o.dur(&u.Keepalive, "keepalive", 30*time.Second, time.Second)
	o.dur(&u.ReconnectMax, "reconnect_max", 10*time.Second, time.Second)
	if u.Commands == nil {
		u.Commands = new(bool)
		*u.Commands = true
	}
	o.topicPrefix(&u.TopicPrefix, g.TopicPrefix)
	o.choice(&u.Format, "format", "json", "json", "value", "batch")
	o.integer(&u.BatchMax, "batch_max", 100, 1, math.MaxInt)
}

// adapter checks what every adapter has: a unique, unreserved name and points.
func (l *loader) adapter(n node, name string, seen map[string]node, points int) obj {
	o := obj{l, n}
	if o.name(name, "name", true) {
		o.unique(seen, name, "adapter")
	}
	if points == 0 {
		o.errorf("point", "no points")
	}
	return o
}

// point checks a point's name, unique within its adapter.
func (l *loader) point(o obj, i int, name string, seen map[string]node) obj {
	p := obj{l, o.n.elem("point", i, name)}
	if p.name(name, "name", true) {
		p.unique(seen, name, "point")
	}
	return p
}

func (l *loader) line(o obj, ln *Line) {
	o.integer(&ln.BaudRate, "baud_rate", 9600, 1, math.MaxInt)
	o.integer(&ln.DataBits, "data_bits", 8, 5, 8)
	ln.Parity = strings.ToUpper(ln.Parity)
	o.choice(&ln.Parity, "parity", "N", "N", "E", "O")
	o.integer(&ln.StopBits, "stop_bits", 1, 1, 2)
}

// portUse remembers which adapter opened a serial device first, so two
// adapters cannot fight over it; Modbus RTU adapters may share a bus when
// their line settings agree.
type portUse struct {
	n      node
	kind   string
	line   Line
	shared bool
}

func (o obj) port(ports map[string]portUse, dev, k, kind string, ln Line, shared bool) {
	first, used := ports[dev]
	switch {
	case !used:
		ports[dev] = portUse{n: o.n, kind: kind, line: ln, shared: shared}
	case !shared || !first.shared:
		o.errorf(k, "%s %q is already used by %s", k, dev, first.n.key)
	case first.line != ln:
		o.errorf(k, "line settings differ from %s on the same bus %q", first.n.key, dev)
	}
}

const modbusURL = "want tcp://host:port, rtu:///dev/ttyUSB0 or rtu+tcp://host:port"

func (l *loader) modbus(o obj, m *Modbus, ports map[string]portUse) {
	// RTU unit 0 is broadcast, which nothing answers; Modbus TCP devices
	// take any unit, often 0 or 255.
	minUnit, maxUnit := 1, 247
	l.line(o, &m.Line)
	if o.required(m.URL, "url") {
		u, err := url.Parse(m.URL)
		switch {
		case err != nil:
			o.errorf("url", "bad url %q: %s", m.URL, modbusURL)
		case u.Scheme == "tcp" || u.Scheme == "rtu+tcp":
			if h, p, err := net.SplitHostPort(u.Host); err != nil || h == "" || p == "" {
				o.errorf("url", "bad url %q: %s", m.URL, modbusURL)
			}
			if u.Scheme == "tcp" {
				minUnit, maxUnit = 0, 255
			}
		case u.Scheme == "rtu" && u.Host == "" && u.Path != "":
			o.port(ports, u.Path, "url", KindModbus, m.Line, true)
		default:
			o.errorf("url", "bad url %q: %s", m.URL, modbusURL)
		}
	}
	o.integer(&m.UnitID, "unit_id", 1, minUnit, maxUnit)
	o.dur(&m.Interval, "interval", time.Second, 0)
	o.dur(&m.Timeout, "timeout", time.Second, 0)
	o.integer(&m.MaxGap, "max_gap", 10, 0, math.MaxInt)

	seen := map[string]node{}
	for i := range m.Points {
		pt := &m.Points[i]
		l.modbusPoint(l.point(o, i, pt.Name, seen), pt)
	}
}

func (l *loader) modbusPoint(o obj, p *ModbusPoint) {
	o.choice(&p.Table, "table", "", Coil, DiscreteInput, InputRegister, HoldingRegister)
	bits := p.Table == Coil || p.Table == DiscreteInput
	def := "uint16"
	if bits {
		def = "bool"
	}
	o.choice(&p.Type, "type", def, modbusTypes...)
	if bits && p.Type != "bool" {
		o.errorf("type", "type %q cannot be read from a %s, only bool", p.Type, p.Table)
	}
	if p.Bit != nil {
		switch {
		case bits || p.Type != "bool":
			o.errorf("bit", "bit needs a register table and type bool")
		case *p.Bit < 0 || *p.Bit > 15:
			o.errorf("bit", "bit %d out of range 0..15", *p.Bit)
		}
	}
	switch {
	case p.Type == "string" && (p.Length < 1 || p.Length > 123):
		o.errorf("length", "type string needs length 1..123 (registers), not %d", p.Length)
	case p.Type != "string" && o.has("length"):
		o.errorf("length", "length is for type string only")
	}
	if n := p.Registers(); p.Address < 0 || p.Address > 65535 || p.Address+max(n, 1)-1 > 65535 {
		o.errorf("address", "address %d with %d registers does not fit 0..65535", p.Address, n)
	}
	p.ByteOrder = strings.ToUpper(p.ByteOrder)
	o.choice(&p.ByteOrder, "byte_order", "ABCD", "ABCD", "CDAB", "BADC", "DCBA")
	if p.Writable && p.Table != Coil && p.Table != HoldingRegister {
		o.errorf("writable", "a %s is read-only: only coils and holding registers are writable", p.Table)
	}
	if p.Scale == nil {
		p.Scale = new(float64)
		*p.Scale = 1
	} else if *p.Scale == 0 {
		o.errorf("scale", "scale must not be 0")
	}
	o.change(&p.Change)
}

func (o obj) change(c *Change) {
	if c.Deadband < 0 {
		o.errorf("deadband", "deadband must not be negative")
	}
}

func (l *loader) serial(o obj, s *Serial, ports map[string]portUse) {
	l.line(o, &s.Line)
	if o.required(s.Port, "port") {
		o.port(ports, s.Port, "port", KindSerial, s.Line, false)
	}
	o.choice(&s.Mode, "mode", "line", "line", "query")
	if s.Mode == "query" {
		o.required(s.Request, "request")
		if o.has("interval") {
			o.dur(&s.Interval, "interval", 0, 0)
		} else {
			o.errorf("interval", "query mode needs an interval")
		}
	}
	if s.Delimiter == "" {
		s.Delimiter = "\n"
	}
	o.dur(&s.Timeout, "timeout", time.Second, 0)

	seen := map[string]node{}
	for i := range s.Points {
		pt := &s.Points[i]
		p := l.point(o, i, pt.Name, seen)
		if p.required(pt.Pattern, "pattern") {
			re, err := regexp.Compile(pt.Pattern)
			switch {
			case err != nil:
				p.errorf("pattern", "bad pattern: %v", err)
			case re.NumSubexp() < 1:
				p.errorf("pattern", "pattern %q has no (group) to take the value from", pt.Pattern)
			}
		}
		p.choice(&pt.Type, "type", "float64", "float64", "int64", "bool", "string")
		p.change(&pt.Change)
	}
}

func (l *loader) gpio(o obj, g *GPIO, lines map[string]map[int]node) {
	o.required(g.Chip, "chip")
	if lines[g.Chip] == nil {
		lines[g.Chip] = map[int]node{}
	}
	seen := map[string]node{}
	for i := range g.Points {
		pt := &g.Points[i]
		p := l.point(o, i, pt.Name, seen)
		if pt.Line < 0 {
			p.errorf("line", "line must not be negative")
		} else if first, dup := lines[g.Chip][pt.Line]; dup {
			p.errorf("line", "line %d of %s is already used by %s", pt.Line, g.Chip, first.key)
		} else {
			lines[g.Chip][pt.Line] = p.n
		}
		p.choice(&pt.Direction, "direction", "", "input", "output")
		edge := "both"
		switch {
		case pt.Direction == "output":
			edge = "none"
		case pt.Counter:
			edge = "rising"
		}
		p.choice(&pt.Edge, "edge", edge, "none", "rising", "falling", "both")
		switch {
		case pt.Direction == "output" && pt.Counter:
			p.errorf("counter", "counter is for inputs only")
		case pt.Direction == "output" && pt.Edge != "none":
			p.errorf("edge", "edge is for inputs only")
		case pt.Counter && pt.Edge != "rising" && pt.Edge != "both":
			p.errorf("edge", "a counter counts rising edges: edge must be rising or both, not %q", pt.Edge)
		}
		p.choice(&pt.Bias, "bias", "as_is", "as_is", "disabled", "pull_up", "pull_down")
	}
}
