package modbus

import (
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/fieldgate/fieldgate/adapters"
	"github.com/fieldgate/fieldgate/adapters/modbus/sunspec"
	"github.com/fieldgate/fieldgate/internal/backoff"
	"github.com/fieldgate/fieldgate/internal/reading"
)

// SunSpec's marker, "SunS" in two holding registers, and the addresses a
// device may put it at, in the order they are tried.
var (
	sunsMarker = [2]uint16{0x5375, 0x6e53}
	sunsBases  = []int{40000, 50000, 0}
)

// sunsEnd is the model id that ends the chain.
const sunsEnd = 0xffff

// ErrNoSunSpec is wrapped by DiscoverSunSpec's error when no address holds
// the SunSpec marker.
var ErrNoSunSpec = errors.New("no SunSpec marker")

// HoldingReader reads holding registers from one unit, as a goburrow
// modbus.Client does: quantity registers from address, two bytes each,
// high byte first.
type HoldingReader interface {
	ReadHoldingRegisters(address, quantity uint16) ([]byte, error)
}

// SunSpecModel is one model of a device's SunSpec model chain.
type SunSpecModel struct {
	ID   int
	Addr int // the holding register of its ID; its points start at Addr+2
	Len  int // L: registers after the ID and L registers
	// Name and Label are the definition's ("inverter_three_phase",
	// "Inverter (Three Phase)"); empty for a model the definitions do not
	// have, such as a maker's own.
	Name, Label string
}

// DiscoverSunSpec finds the SunSpec marker at holding register 40000,
// 50000 or 0 of the unit r reads, in that order, and walks the model chain
// after it to the end marker (or to an address the device refuses), one
// two-register read per model. An address that answers with a Modbus
// exception is no marker; any other failure (a timeout, a broken
// connection) ends the discovery with that error. Without a marker the
// error wraps ErrNoSunSpec and says what each address held. ctx is checked
// between requests; r bounds each one.
func DiscoverSunSpec(ctx context.Context, r HoldingReader) ([]SunSpecModel, error) {
	var tried []string
	for _, base := range sunsBases {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		regs, err := readRegs(r, base, 2)
		code, refused := ExceptionCode(err)
		switch {
		case refused:
			tried = append(tried, fmt.Sprintf("%d (exception %s)", base, ExceptionText(code)))
			continue
		case err != nil:
			return nil, fmt.Errorf("sunspec: looking for the marker at holding register %d: %w", base, err)
		case [2]uint16(regs) != sunsMarker:
			tried = append(tried, fmt.Sprintf("%d (read %#04x %#04x)", base, regs[0], regs[1]))
			continue
		}
		return walkChain(ctx, r, base+2)
	}
	return nil, fmt.Errorf("sunspec: %w %q (0x5375 0x6e53) at holding register %s", ErrNoSunSpec, "SunS", orList(tried))
}

// walkChain reads the model headers from addr on.
func walkChain(ctx context.Context, r HoldingReader, addr int) ([]SunSpecModel, error) {
	var ms []SunSpecModel
	for addr+2 <= 1<<16 {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		hdr, err := readRegs(r, addr, 2)
		switch {
		case answered(err) && len(ms) > 0:
			return ms, nil // a device that ends its chain without the end marker
		case err != nil:
			return nil, fmt.Errorf("sunspec: model header at holding register %d: %w", addr, err)
		case hdr[0] == sunsEnd:
			return ms, nil
		}
		m := SunSpecModel{ID: int(hdr[0]), Addr: addr, Len: int(hdr[1])}
		if def, ok := sunspec.Lookup(m.ID); ok {
			m.Name, m.Label = def.Name, def.Label
		}
		ms = append(ms, m)
		addr += 2 + m.Len
	}
	return ms, nil
}

// readRegs reads n holding registers from addr, checking the answer's
// length, which goburrow leaves to the caller.
func readRegs(r HoldingReader, addr, n int) ([]uint16, error) {
	b, err := r.ReadHoldingRegisters(uint16(addr), uint16(n))
	if err != nil {
		return nil, err
	}
	if len(b) != 2*n {
		return nil, fmt.Errorf("%w: %d data bytes, want %d", ErrBadFrame, len(b), 2*n)
	}
	regs := make([]uint16, n)
	for i := range regs {
		regs[i] = binary.BigEndian.Uint16(b[2*i:])
	}
	return regs, nil
}

// sunPoint is what a point that SunSpec discovery laid out adds to a
// configured point: its SunSpec type, which says which raw value means "not
// implemented", and its scale factor.
type sunPoint struct {
	typ string // the SunSpec type, see sunspec.Point
	sf  *point // the scale factor point; nil for none or a fixed one
	// fixed is the scale factor exponent when sf is nil.
	fixed int
	unit  string
	desc  reading.Point // as announced
}

// scaleFactor reports whether the point is a scale factor: read for the
// points it scales, never published.
func (s *sunPoint) scaleFactor() bool { return s.typ == "sunssf" }

// sunTypes maps each SunSpec type to the config type its registers decode
// as; ipaddr, ipv6addr and eui48 are then rendered as text.
var sunTypes = map[string]string{
	"int16": "int16", "sunssf": "int16",
	"uint16": "uint16", "acc16": "uint16", "enum16": "uint16", "bitfield16": "uint16", "raw16": "uint16", "count": "uint16", "pad": "uint16",
	"int32": "int32", "uint32": "uint32", "acc32": "uint32", "enum32": "uint32", "bitfield32": "uint32", "ipaddr": "uint32",
	"int64": "int64", "uint64": "uint64", "acc64": "uint64", "bitfield64": "uint64",
	"float32": "float32", "float64": "float64",
	"string": "string", "eui48": "string", "ipv6addr": "string",
}

// sunText are the SunSpec types published as text though their registers
// hold numbers.
var sunText = map[string]bool{"ipaddr": true, "ipv6addr": true, "eui48": true}

// sunUnits spells the units of the SunSpec definitions as the device
// profiles and Home Assistant do.
var sunUnits = map[string]string{
	"C": "°C", "Pct": "%", "Var": "var", "Varh": "varh", "WH": "Wh", "AH": "Ah",
	"Secs": "s", "Sec": "s", "mSecs": "ms", "Degrees": "°", "deg": "°",
}

// sunUnit is the unit a SunSpec point is published with: a percentage of a
// rating ("%WHRtg", "% WChaMax") is a plain %, a few spellings become the
// usual ones (sunUnits), and the rest is published as the definition
// writes it.
func sunUnit(u string) string {
	u = strings.TrimSpace(u)
	if s, ok := sunUnits[u]; ok {
		return s
	}
	if strings.HasPrefix(u, "%") && !strings.Contains(u, "/") {
		return "%"
	}
	return u
}

// implemented reports whether wire, a point's registers as read, holds a
// value: SunSpec marks a point a device does not implement with a value of
// its type's range (0x8000 for int16, 0xFFFF for uint16, 0 for
// accumulators, NaN for floats, all zeros for strings).
func (s *sunPoint) implemented(wire []byte) bool {
	var ones, zeros = true, true
	for _, b := range wire {
		ones = ones && b == 0xff
		zeros = zeros && b == 0
	}
	lowest := len(wire) > 0 && wire[0] == 0x80 && allZero(wire[1:]) // the most negative integer
	switch s.typ {
	case "int16", "int32", "int64", "sunssf":
		return !lowest
	case "uint16", "enum16", "bitfield16", "uint32", "enum32", "bitfield32", "uint64", "bitfield64":
		return !ones
	case "acc16", "acc32", "acc64", "ipaddr", "ipv6addr", "string":
		return !zeros
	case "eui48": // the last six of its eight bytes
		return !ones && !zeros && !allOnes(wire[2:])
	case "float32":
		return !math.IsNaN(float64(math.Float32frombits(binary.BigEndian.Uint32(wire))))
	case "float64":
		return !math.IsNaN(math.Float64frombits(binary.BigEndian.Uint64(wire)))
	}
	return true // raw16, count: every value is one
}

func allZero(b []byte) bool { return !slices.ContainsFunc(b, func(x byte) bool { return x != 0 }) }
func allOnes(b []byte) bool { return !slices.ContainsFunc(b, func(x byte) bool { return x != 0xff }) }

// pow10 returns c scaled by 10^e, dividing by 10^-e for a negative e so
// that 1234 with e = -2 reads as 12.34 exactly as decimals go.
func (c codec) pow10(e int) codec {
	c = c.scaled(math.Pow10(e))
	if e < 0 {
		c.div = math.Pow10(-e)
	}
	return c
}

// maxSF bounds a scale factor: the definitions allow -10 to 10, and a
// value outside is a device's fault, not a scale.
const maxSF = 10

// sunValue decodes a SunSpec point from wire, its registers as read, with
// the scale factor exponent sf; ok is false for a value the device marks as
// not implemented.
func (p *point) sunValue(wire []byte, sf int) (v reading.Value, ok bool) {
	if !p.sun.implemented(wire) {
		return reading.Value{}, false
	}
	switch p.sun.typ {
	case "ipaddr":
		return reading.String(netip.AddrFrom4([4]byte(wire)).String()), true
	case "ipv6addr":
		return reading.String(netip.AddrFrom16([16]byte(wire)).String()), true
	case "eui48":
		var b strings.Builder
		for i, x := range wire[2:8] {
			if i > 0 {
				b.WriteByte(':')
			}
			fmt.Fprintf(&b, "%02X", x)
		}
		return reading.String(b.String()), true
	}
	return p.codec.pow10(sf).decode(wire), true
}

// scale returns the exponent that scales p this cycle, from the values of
// the scale factor points read in it; ok is false when p's scale factor
// was not read or is not implemented.
func (p *point) scale(sfs map[*point]int) (e int, ok bool) {
	if p.sun.sf == nil {
		return p.sun.fixed, true
	}
	e, ok = sfs[p.sun.sf]
	return e, ok
}

// sfValue reads a scale factor point's exponent from its register; ok is
// false when it is not implemented or out of range.
func sfValue(wire []byte) (e int, ok bool) {
	v := int(int16(binary.BigEndian.Uint16(wire)))
	return v, v >= -maxSF && v <= maxSF
}

// layoutChain places the points of the known models of a chain in
// registers, regs holding each model's registers (ID and L included) as
// read at discovery: the values of the points that count a repeating group
// come from there, and the scale factors that the points' descriptions
// carry. Each point is named after its model and group as the definitions
// name them: inverter_three_phase_W; a repeating group adds the instance's
// index from 1 (mppt_module_1_DCA); a model that occurs again in the chain
// adds the occurrence's from 2 (lithium_ion_string_2_SoC). It returns the
// points to publish: not ID and L, padding or scale factors, which are read
// with the points they scale, and not the points the device said at
// discovery it does not implement (their value, or their scale factor's,
// is the type's "not implemented"): SunSpec devices leave many points of a
// model out, and these never have a value.
func layoutChain(adapter string, ms []SunSpecModel, regs [][]byte) []*point {
	var published []*point
	seen := map[int]int{}
	for i, m := range ms {
		def, ok := sunspec.Lookup(m.ID)
		if !ok {
			continue
		}
		seen[m.ID]++
		prefix := def.Name
		if n := seen[m.ID]; n > 1 {
			prefix = fmt.Sprintf("%s_%d", def.Name, n)
		}
		l := &modelLayout{base: m.Addr, end: m.Addr + 2 + m.Len, addr: m.Addr, regs: regs[i]}
		l.group(def.Group, prefix, nil)
		for _, p := range l.published {
			if l.implemented(p) {
				p.sun.desc = l.describe(adapter, p)
				published = append(published, p)
			}
		}
	}
	return published
}

// modelLayout lays out one model.
type modelLayout struct {
	base, end int    // the model's first register and the one after its last
	addr      int    // the next point's register
	full      bool   // a point reached past end: the device has a shorter version of the model
	regs      []byte // from base to end
	top       *sunScope
	published []*point
}

// sunScope is one group instance's points by name, for their scale
// factors, which a point finds in its own group or one around it.
type sunScope struct {
	points map[string]*point
	parent *sunScope
}

func (s *sunScope) find(name string) *point {
	for ; s != nil; s = s.parent {
		if p, ok := s.points[name]; ok {
			return p
		}
	}
	return nil
}

// group lays out one instance of g, its points named after name, within
// parent's scope (nil for the model's top-level group).
func (l *modelLayout) group(g sunspec.Group, name string, parent *sunScope) {
	sc := &sunScope{points: map[string]*point{}, parent: parent}
	if parent == nil {
		l.top = sc
	}
	scaled := map[*point]string{}
	for i, d := range g.Points {
		if l.full || l.addr+d.Size > l.end {
			l.full = true
			break
		}
		p := newSunPoint(name+"_"+d.Name, l.addr, d)
		l.addr += d.Size
		if p == nil {
			continue
		}
		sc.points[d.Name] = p
		if d.SF != "" {
			scaled[p] = d.SF
		}
		if !(parent == nil && i < 2) && d.Type != "pad" && d.Type != "sunssf" {
			l.published = append(l.published, p)
		}
	}
	for p, sf := range scaled {
		p.sun.sf = sc.find(sf)
	}
	for _, sub := range g.Groups {
		if !sub.Repeats {
			l.group(sub, name+"_"+sub.Name, sc)
			continue
		}
		for i := range l.count(sub) {
			if l.full {
				break
			}
			l.group(sub, fmt.Sprintf("%s_%s_%d", name, sub.Name, i+1), sc)
		}
	}
}

// count is how often the repeating group g occurs: as its count point
// says, as the definition says, or as often as the rest of the model
// holds it.
func (l *modelLayout) count(g sunspec.Group) int {
	switch {
	case g.CountPoint != "":
		p := l.top.points[g.CountPoint]
		if p == nil {
			return 0
		}
		n, ok := l.raw(p)
		if !ok || n == 0xffff {
			return 0
		}
		return int(n)
	case g.Count > 0:
		return g.Count
	}
	if n := l.length(g); n > 0 {
		return (l.end - l.addr) / n
	}
	return 0
}

// length is how many registers one instance of g takes, 0 when that is
// not known before it is laid out.
func (l *modelLayout) length(g sunspec.Group) int {
	n := 0
	for _, p := range g.Points {
		n += p.Size
	}
	for _, sub := range g.Groups {
		if sub.Repeats && sub.CountPoint == "" && sub.Count == 0 {
			return 0
		}
		c := 1
		if sub.Repeats {
			c = l.count(sub)
		}
		n += c * l.length(sub)
	}
	return n
}

// wire returns p's registers as read at discovery, nil if they were not.
func (l *modelLayout) wire(p *point) []byte {
	off := 2 * (p.addr - l.base)
	if off < 0 || off+2*p.width() > len(l.regs) {
		return nil
	}
	return l.regs[off : off+2*p.width()]
}

// raw returns the value p's first register held at discovery.
func (l *modelLayout) raw(p *point) (uint16, bool) {
	w := l.wire(p)
	if w == nil {
		return 0, false
	}
	return binary.BigEndian.Uint16(w), true
}

// implemented reports whether p and its scale factor held values at
// discovery.
func (l *modelLayout) implemented(p *point) bool {
	w := l.wire(p)
	if w == nil || !p.sun.implemented(w) {
		return false
	}
	if sf := p.sun.sf; sf != nil {
		w := l.wire(sf)
		if w == nil {
			return false
		}
		_, ok := sfValue(w)
		return ok
	}
	return true
}

// describe describes p for those who present its readings, with the scale
// its scale factor had at discovery.
func (l *modelLayout) describe(adapter string, p *point) reading.Point {
	typ := p.codec.typ.String()
	if sunText[p.sun.typ] {
		typ = "string"
	}
	e := p.sun.fixed
	if sf := p.sun.sf; sf != nil {
		e, _ = sfValue(l.wire(sf)) // implemented, so read and in range
	}
	return reading.Point{Adapter: adapter, Name: p.name, Type: typ, Unit: p.sun.unit, Writable: p.writable,
		Scale: math.Pow10(e)}
}

// newSunPoint builds the point that definition d describes at addr, or nil
// when it cannot be read: wider than one request, or of a type unknown here.
func newSunPoint(name string, addr int, d sunspec.Point) *point {
	typ, ok := sunTypes[d.Type]
	if !ok || d.Size > holdingRegisters.limit() {
		return nil
	}
	pc := PointConfig{Name: name, Table: HoldingRegister, Address: addr, Type: typ, ByteOrder: "ABCD"}
	if typ == "string" {
		pc.Length = d.Size
	}
	c, err := newCodec(pc)
	if err != nil || c.regs != d.Size {
		return nil
	}
	return &point{name: name, table: holdingRegisters, addr: addr, codec: c,
		writable: d.Writable && !sunText[d.Type] && d.Type != "sunssf",
		sun:      &sunPoint{typ: d.Type, fixed: d.FixedSF, unit: sunUnit(d.Units)}}
}

// discovery is an adapter's SunSpec discovery while Run runs.
type discovery struct {
	done    bool      // the models of the current connection are laid out
	opens   uint64    // the link's count of connections made, when they were
	retryAt time.Time // when a discovery that failed is tried again
	backoff *backoff.Backoff
	err     error // why the last discovery failed; nil once one succeeded
}

// due reports whether the cycle at now starts with a discovery: the first,
// the first after the link reconnected, or a retry whose time has come.
func (d *discovery) due(m *member, now time.Time) bool {
	switch {
	case d == nil:
		return false
	case d.done:
		return m.l.opens.Load() != d.opens
	}
	return !now.Before(d.retryAt)
}

// discover finds the device's SunSpec models, lays out their points and
// announces them to e, then polls them with the configured points from
// tick on. A failure is kept for the statuses, which carry it until a
// discovery succeeds, and retried with back-off; the points found before
// stay, unless the marker itself is gone.
func (a *Adapter) discover(ctx context.Context, m *member, e adapters.Emitter, d *discovery, tick time.Time) {
	r := linkReader{ctx: ctx, a: a, m: m}
	ms, err := DiscoverSunSpec(ctx, r)
	var found []*point
	if err == nil {
		found, err = a.layoutModels(r, ms)
	}
	if ctx.Err() != nil {
		return
	}
	if err != nil {
		d.done, d.err = false, fmt.Errorf("modbus %q: unit %d: %w", a.name, a.unit, err)
		d.retryAt = time.Now().Add(d.backoff.Next())
		if errors.Is(err, ErrNoSunSpec) && len(a.points.Load().polled) > len(a.configured) {
			a.points.Store(a.newPointSet(a.configured))
			e.Describe(nil)
		}
		a.log.Warn("sunspec discovery failed", "err", err, "retry_in", time.Until(d.retryAt).Round(time.Millisecond))
		return
	}
	d.done, d.err, d.opens = true, nil, m.l.opens.Load()
	d.backoff.Reset()

	all := slices.Clone(a.configured)
	configured := map[string]bool{}
	for _, p := range a.configured {
		configured[p.name] = true
	}
	var described []reading.Point
	for _, p := range found {
		if configured[p.name] {
			a.log.Warn("sunspec point left out: a configured point has its name", "point", p.name)
			continue
		}
		p.every, p.next = a.interval, tick
		all = append(all, p)
		described = append(described, p.sun.desc)
	}
	e.Describe(described) // before their first readings
	a.points.Store(a.newPointSet(all))
	models := make([]string, len(ms))
	for i, sm := range ms {
		models[i] = fmt.Sprintf("%d %s at %d", sm.ID, cmp.Or(sm.Name, "(unknown)"), sm.Addr)
	}
	a.log.Info("sunspec models found", "models", strings.Join(models, ", "), "points", len(described))
}

// layoutModels reads the registers of the models of ms that the
// definitions know, each in as few requests as it takes, and lays out
// their points.
func (a *Adapter) layoutModels(r linkReader, ms []SunSpecModel) ([]*point, error) {
	regs := make([][]byte, len(ms))
	var ids []string
	for i, sm := range ms {
		ids = append(ids, strconv.Itoa(sm.ID))
		if sm.Name == "" {
			continue
		}
		for start, end := sm.Addr, sm.Addr+2+sm.Len; start < end; {
			n := min(end-start, holdingRegisters.limit())
			b, _, err := a.read(r.ctx, r.m, false, holdingRegisters, start, n)
			if err != nil {
				return nil, fmt.Errorf("sunspec: reading model %d: %w", sm.ID, err)
			}
			regs[i] = append(regs[i], b...)
			start += n
		}
	}
	ps := layoutChain(a.name, ms, regs)
	if len(ps) == 0 {
		return nil, fmt.Errorf("sunspec: no point to publish in the model chain (models %s)", cmp.Or(strings.Join(ids, ", "), "none"))
	}
	return ps, nil
}

// linkReader reads holding registers through an adapter's link, for
// DiscoverSunSpec.
type linkReader struct {
	ctx context.Context
	a   *Adapter
	m   *member
}

func (r linkReader) ReadHoldingRegisters(address, quantity uint16) ([]byte, error) {
	b, _, err := r.a.read(r.ctx, r.m, false, holdingRegisters, int(address), int(quantity))
	return b, err
}
