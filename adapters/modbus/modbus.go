package modbus

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fieldgate/fieldgate/internal/backoff"
	"github.com/fieldgate/fieldgate/internal/reading"

	"github.com/goburrow/modbus"

	"github.com/fieldgate/fieldgate/adapters"
)

func init() { adapters.Register("modbus", New) }

// table is one of the four Modbus data tables.
type table uint8

const (
	coils table = iota + 1
	discreteInputs
	inputRegisters
	holdingRegisters
)

var tableNames = [...]string{
	coils: Coil, discreteInputs: DiscreteInput,
	inputRegisters: InputRegister, holdingRegisters: HoldingRegister,
}

func (t table) String() string { return tableNames[t] }

// parseTable looks up a config table name.
func parseTable(name string) (table, bool) {
	for t, n := range tableNames {
		if n != "" && n == name {
			return table(t), true
		}
	}
	return 0, false
}

func (t table) bits() bool { return t == coils || t == discreteInputs }

// limit is the most addresses one read request may cover.
func (t table) limit() int {
	if t.bits() {
		return 2000
	}
	return 125
}

// read executes one read request and checks the answer's length, which
// goburrow leaves to the caller.
func (t table) read(c modbus.Client, start, count int) ([]byte, error) {
	var (
		b   []byte
		err error
	)
	a, n := uint16(start), uint16(count)
	switch t {
	case coils:
		b, err = c.ReadCoils(a, n)
	case discreteInputs:
		b, err = c.ReadDiscreteInputs(a, n)
	case inputRegisters:
		b, err = c.ReadInputRegisters(a, n)
	case holdingRegisters:
		b, err = c.ReadHoldingRegisters(a, n)
	}
	want := 2 * count
	if t.bits() {
		want = (count + 7) / 8
	}
	if err == nil && len(b) != want {
		err = fmt.Errorf("%w: %d data bytes, want %d", ErrBadFrame, len(b), want)
	}
	return b, err
}

// point is one point, configured or discovered, ready to decode and
// encode.
type point struct {
	name     string
	table    table
	addr     int
	codec    codec
	writable bool
	gate     *adapters.WriteGate // min_write_interval
	every    time.Duration       // the point's interval
	sun      *sunPoint           // nil but for a point SunSpec discovery laid out
	next     time.Time           // when the point is due; owned by Run
	// Guarded by Adapter.mu.
	filter   adapters.ChangeFilter
	backAt   time.Time // when the last write's read-back was read
	sfPolled int       // a scale factor's value as last polled, if sfKnown
	sfKnown  bool
}

// width is how many addresses of its table the point spans.
func (p *point) width() int {
	if p.table.bits() {
		return 1
	}
	return p.codec.regs
}

// value extracts the point from the answer to a read starting at start.
func (p *point) value(data []byte, start int) reading.Value {
	if p.table.bits() {
		off := p.addr - start
		return reading.Bool(data[off/8]>>(off%8)&1 == 1)
	}
	return p.codec.decode(p.wire(data, start))
}

// wire returns a register point's bytes in the answer to a read starting
// at start.
func (p *point) wire(data []byte, start int) []byte {
	off := p.addr - start
	return data[2*off : 2*(off+p.width())]
}

// readPlan is one coalesced read request of a poll cycle.
type readPlan struct {
	table        table
	start, count int
	points       []*point
}

// pointSet is every point of the adapter at one time: the configured ones
// and those SunSpec discovery found, which each discovery replaces.
type pointSet struct {
	byName map[string]*point // what commands address
	polled []*point          // in order; scale factors are read with the points they scale
	all    []readPlan        // the plan of every polled point: the usual cycle's
}

// newPointSet indexes ps, whose names are unique, and plans their reads.
func (a *Adapter) newPointSet(ps []*point) *pointSet {
	s := &pointSet{byName: make(map[string]*point, len(ps)), polled: ps, all: a.plan(ps)}
	for _, p := range ps {
		s.byName[p.name] = p
	}
	return s
}

// Adapter polls one Modbus unit and writes to its points. It implements
// adapters.Adapter and adapters.Writer.
type Adapter struct {
	name       string
	unit       byte
	interval   time.Duration
	timeout    time.Duration
	maxGap     int
	log        *slog.Logger
	ep         endpoint
	retry      pace     // between reconnections of a socket, and SunSpec discoveries that failed
	configured []*point // from the config, profile included
	sunspec    bool     // discover SunSpec models at each connect
	points     atomic.Pointer[pointSet]
	running    atomic.Bool
	member     atomic.Pointer[member] // the adapter's place on its link while Run runs
	mu         sync.Mutex             // guards the points' write and filter state
	cycle      cycle                  // the polling goroutine's, reused each poll
}

// cycle holds what one poll builds, kept for the next: a poll of 1,000
// points would otherwise allocate its 90 KB of readings afresh each time.
type cycle struct {
	answers []answer
	rs      []reading.Reading
	ps      []*point // the point of each reading in rs
}

// New builds an adapter from a loaded config section (defaults filled in).
// It re-checks what decoding relies on, so a config that bypassed the loader
// fails here rather than at the first poll.
func New(cfg *Config, env adapters.Env) (*Adapter, error) {
	log := env.Logger()
	wrap := func(err error) error { return fmt.Errorf("modbus %q: %w", cfg.Name, err) }
	if cfg.UnitID < 0 || cfg.UnitID > 255 {
		return nil, wrap(fmt.Errorf("unit_id %d is not 0–255", cfg.UnitID))
	}
	if cfg.Interval <= 0 || cfg.Timeout <= 0 {
		return nil, wrap(errors.New("interval and timeout must be positive"))
	}
	ep, err := newEndpoint(cfg)
	if err != nil {
		return nil, wrap(err)
	}
	if ep.key != "" && (cfg.UnitID < 1 || cfg.UnitID > 247) {
		// Unit 0 is the RTU broadcast address: no unit ever answers it.
		return nil, wrap(fmt.Errorf("unit_id %d is not 1–247, the RTU unit addresses", cfg.UnitID))
	}
	if cfg.Profile != "" && cfg.profile == nil {
		return nil, wrap(fmt.Errorf("profile %q is not loaded: the config was not checked", cfg.Profile))
	}
	a := &Adapter{
		name:     cfg.Name,
		unit:     byte(cfg.UnitID),
		interval: cfg.Interval.D(),
		timeout:  cfg.Timeout.D(),
		maxGap:   max(cfg.MaxGap, 0),
		log:      log,
		ep:       ep,
		retry:    defaultPace,
		sunspec:  cfg.SunSpec,
	}
	seen := map[string]bool{}
	for _, pc := range cfg.points() {
		p, err := newPoint(pc)
		if err != nil {
			return nil, wrap(fmt.Errorf("point %q: %w", pc.Name, err))
		}
		if seen[p.name] {
			return nil, wrap(fmt.Errorf("point %q: duplicate name", pc.Name))
		}
		seen[p.name] = true
		if p.every <= 0 {
			p.every = a.interval
		}
		a.configured = append(a.configured, p)
	}
	a.points.Store(a.newPointSet(a.configured))
	return a, nil
}

// plan coalesces the reads of the due points, and of the scale factors
// that scale them, into requests.
func (a *Adapter) plan(due []*point) []readPlan {
	byTable := map[table][]*point{}
	sfs := map[*point]bool{}
	for _, p := range due {
		byTable[p.table] = append(byTable[p.table], p)
		if p.sun != nil && p.sun.sf != nil && !sfs[p.sun.sf] {
			sfs[p.sun.sf] = true
			byTable[holdingRegisters] = append(byTable[holdingRegisters], p.sun.sf)
		}
	}
	var plan []readPlan
	for t := coils; t <= holdingRegisters; t++ {
		plan = append(plan, planTable(t, byTable[t], a.maxGap)...)
	}
	return plan
}

// planTable coalesces the points of one table into read requests.
func planTable(t table, ps []*point, maxGap int) []readPlan {
	spans := make([]span, len(ps))
	for i, p := range ps {
		spans[i] = span{addr: p.addr, width: p.width()}
	}
	var out []readPlan
	for _, b := range coalesce(spans, maxGap, t.limit()) {
		r := readPlan{table: t, start: b.start, count: b.count}
		for _, i := range b.spans {
			r.points = append(r.points, ps[i])
		}
		out = append(out, r)
	}
	return out
}

func newPoint(pc PointConfig) (*point, error) {
	p := &point{name: pc.Name, addr: pc.Address, writable: pc.Writable, gate: adapters.NewWriteGate(pc.MinWriteInterval.D()), every: pc.Interval.D()}
	p.filter = adapters.ChangeFilter{OnChange: pc.OnChange, Deadband: pc.Deadband, Heartbeat: pc.Heartbeat.D()}
	var ok bool
	if p.table, ok = parseTable(pc.Table); !ok {
		return nil, fmt.Errorf("unknown table %q", pc.Table)
	}
	var err error
	if p.codec, err = newCodec(pc); err != nil {
		return nil, err
	}
	switch {
	case p.table.bits() && (p.codec.typ != typeBool || p.codec.bit >= 0):
		return nil, fmt.Errorf("a %s holds plain bools, not %s", p.table, pc.Type)
	case p.width() > p.table.limit():
		return nil, fmt.Errorf("%d registers exceed the %d one request can read", p.width(), p.table.limit())
	case pc.Address < 0 || pc.Address+p.width() > 1<<16:
		return nil, fmt.Errorf("address %d (+%d) is outside 0–65535", pc.Address, p.width())
	}
	return p, nil
}

// Name returns the adapter's configured name.
func (a *Adapter) Name() string { return a.name }

// overrunWarnEvery is the least time between two warnings that an
// adapter's polls overran their interval.
const overrunWarnEvery = time.Minute

// Run polls each point at its interval until ctx is done. It attaches the
// adapter to its link, the connection or the shared bus: writes are served
// only while Run runs. A cycle reads the points due, coalesced; one that
// overruns an interval skips the ticks it missed rather than catching up
// in a burst. With sunspec set, each cycle after a (re)connect begins with
// SunSpec discovery. Run may be called again after it returned (a
// supervisor restarting the adapter), not concurrently. It fails only when
// its bus is open with other line settings (during a reload that changes
// them, until the old adapters have stopped).
func (a *Adapter) Run(ctx context.Context, e adapters.Emitter) error {
	if !a.running.CompareAndSwap(false, true) {
		return fmt.Errorf("modbus %q: already running", a.name)
	}
	defer a.running.Store(false)
	m, err := a.attach()
	if err != nil {
		return fmt.Errorf("modbus %q: %w", a.name, err)
	}
	defer m.detach() // also on a panic, so the bus goroutine ends or lives on with an owner
	a.member.Store(m)
	defer a.member.Store(nil)

	// Every point's ticks lie on one grid from epoch, so points whose
	// intervals are multiples of each other fall due together.
	epoch := time.Now()
	for _, p := range a.configured {
		p.next = epoch
	}
	a.points.Store(a.newPointSet(a.configured))
	var disc *discovery
	if a.sunspec {
		disc = &discovery{backoff: backoff.New(a.retry.first, a.retry.max)}
	}
	timer := time.NewTimer(0)
	defer timer.Stop()
	var (
		warned time.Time // the last overrun warning
		due    []*point  // the points due this cycle, its array reused
	)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
		}
		now := time.Now()
		if disc.due(m, now) {
			a.discover(ctx, m, e, disc, gridFloor(epoch, now, a.interval))
		}
		set := a.points.Load()
		due = due[:0]
		for _, p := range set.polled {
			if !p.next.After(now) {
				due = append(due, p)
			}
		}
		plan := set.all
		if len(due) < len(set.polled) { // due is in polled's order: the lengths tell
			plan = a.plan(due)
		}
		err := a.poll(ctx, m, e, plan)
		if ctx.Err() != nil {
			return nil
		}
		if disc != nil && disc.err != nil {
			err = joinFaults(disc.err, err)
		}
		e.Status(err)
		missed, after := 0, time.Now()
		for _, p := range due {
			var n int
			p.next, n = nextTick(p.next, after, p.every)
			missed = max(missed, n)
		}
		if missed > 0 {
			// On a bus, a neighbour that does not answer makes overruns
			// routine: warn once a minute at most.
			level := slog.LevelDebug
			if time.Since(warned) >= overrunWarnEvery {
				level, warned = slog.LevelWarn, time.Now()
			}
			a.log.Log(ctx, level, "modbus poll overran its interval; skipping missed cycles", "missed", missed)
		}
		timer.Reset(time.Until(wake(set.polled, disc)))
	}
}

// wake is when the next cycle is due: the earliest point's tick, or the
// next SunSpec discovery's.
func wake(ps []*point, disc *discovery) time.Time {
	var (
		at   time.Time
		some bool
	)
	earliest := func(t time.Time) {
		if !some || t.Before(at) {
			at, some = t, true
		}
	}
	for _, p := range ps {
		earliest(p.next)
	}
	if disc != nil && !disc.done {
		earliest(disc.retryAt)
	}
	if !some { // nothing to poll, nothing to discover
		return time.Now().Add(time.Hour)
	}
	return at
}

// nextTick returns the first tick after now on the grid prev + k*interval,
// and how many ticks of that grid were missed.
func nextTick(prev, now time.Time, interval time.Duration) (time.Time, int) {
	next := prev.Add(interval)
	if !now.After(next) {
		return next, 0
	}
	missed := int(now.Sub(next)/interval) + 1
	return next.Add(time.Duration(missed) * interval), missed
}

// gridFloor is the last tick at or before now on the grid epoch +
// k*interval.
func gridFloor(epoch, now time.Time, interval time.Duration) time.Time {
	return epoch.Add(now.Sub(epoch) / interval * interval)
}

// joinFaults reports two faults of one cycle as one status.
func joinFaults(a, b error) error {
	if b == nil {
		return a
	}
	return fmt.Errorf("%w; %w", a, b)
}

// answer is one request of a cycle that was answered.
type answer struct {
	readPlan
	data []byte
	at   time.Time
}

// poll reads the planned points through m, emits their readings and returns
// the cycle's fault. A failed request does not hide the others: their
// readings are emitted and the fault is the first failure, so one bad
// address shows as an error without blinding the rest of the device. Only
// a unit on a bus that does not answer at all ends the cycle early: its
// other requests would cost the bus a timeout each. SunSpec points are
// scaled by the scale factors read in the same cycle; values the device
// marks as not implemented are not emitted.
func (a *Adapter) poll(ctx context.Context, m *member, e adapters.Emitter, plan []readPlan) error {
	var (
		c      = &a.cycle
		first  error
		failed int
		sent   int
	)
	answers := c.answers[:0]
	for _, r := range plan {
		if ctx.Err() != nil {
			break
		}
		sent++
		data, at, err := a.read(ctx, m, false, r.table, r.start, r.count)
		if err != nil {
			if first == nil {
				first = fmt.Errorf("modbus %q: %w", a.name, err)
			}
			failed++
			if errors.Is(err, ErrNoResponse) {
				break
			}
			continue
		}
		answers = append(answers, answer{r, data, at})
	}
	// The scale factors first: the points they scale may lie in another
	// request.
	sfs := map[*point]int{}
	for _, an := range answers {
		for _, p := range an.points {
			if p.sun != nil && p.sun.scaleFactor() {
				if v, ok := sfValue(p.wire(an.data, an.start)); ok {
					sfs[p] = v
				}
			}
		}
	}
	rs, ps := c.rs[:0], c.ps[:0]
	for _, an := range answers {
		for _, p := range an.points {
			if v, ok := p.read(an.data, an.start, sfs); ok {
				rs = append(rs, reading.Reading{Adapter: a.name, Point: p.name, Time: an.at, Value: v})
				ps = append(ps, p)
			}
		}
	}
	a.emit(e, rs, ps, sfs)
	clear(answers) // the answers' data is not kept past the cycle
	c.answers, c.rs, c.ps = answers, rs, ps
	if ctx.Err() != nil {
		return nil // stopping: an interrupted cycle says nothing of the device
	}
	switch {
	case sent < len(plan):
		first = fmt.Errorf("%w (%d of %d requests not sent this cycle)", first, len(plan)-sent, len(plan))
	case failed > 1:
		first = fmt.Errorf("%w (%d of %d requests failed)", first, failed, len(plan))
	}
	return first
}

// read returns the value of p from the answer to a read starting at
// start; ok is false for a point that is not published: a scale factor, or
// a SunSpec value that is not implemented or whose scale factor is not.
func (p *point) read(data []byte, start int, sfs map[*point]int) (v reading.Value, ok bool) {
	if p.sun == nil {
		return p.value(data, start), true
	}
	if p.sun.scaleFactor() {
		return reading.Value{}, false
	}
	e, ok := p.scale(sfs)
	if !ok {
		return reading.Value{}, false
	}
	return p.sunValue(p.wire(data, start), e)
}

// emit hands e the readings of one cycle that pass their points' filters,
// ps holding the point of each. On a bus a write and its read-back may
// overtake the cycle's later requests, so emit holds a.mu, under which
// Write records the read-back, until e has stored the readings: those read
// before a read-back that is out already are dropped, and the others are
// stored before that read-back is. A poll never publishes a value older
// than a read-back published before it, which on_change would leave
// standing. The scale factors read, sfs, are noted for writes.
func (a *Adapter) emit(e adapters.Emitter, rs []reading.Reading, ps []*point, sfs map[*point]int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for p, v := range sfs {
		p.sfPolled, p.sfKnown = v, true
	}
	out := rs[:0]
	for i, rd := range rs {
		if p := ps[i]; !rd.Time.Before(p.backAt) && p.filter.Pass(rd.Value, rd.Time) {
			out = append(out, rd)
		}
	}
	if len(out) > 0 {
		e.Emit(out)
	}
}

// read executes one read request through m and notes when the answer
// arrived; urgent reads (read-backs of writes) go before polls.
func (a *Adapter) read(ctx context.Context, m *member, urgent bool, t table, start, count int) ([]byte, time.Time, error) {
	return m.read(ctx, a.unit, urgent, t, start, count)
}

// read executes one read request to unit and notes when the answer
// arrived. data and at are only read once do has returned the call's own
// result, which orders them after the owner goroutine wrote them.
func (m *member) read(ctx context.Context, unit byte, urgent bool, t table, start, count int) ([]byte, time.Time, error) {
	var (
		data []byte
		at   time.Time
	)
	err := m.do(ctx, unit, urgent, func(c modbus.Client) error {
		var err error
		data, err = t.read(c, start, count)
		at = time.Now()
		return err
	})
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("unit %d: read %s %d–%d: %w", unit, t, start, start+count-1, err)
	}
	return data, at, nil
}

// Write validates v, writes it in one request (FC5 for a coil, FC6 for one
// register, FC16 for several), reads the point back and returns the value as
// written (after rounding, in engineering units) and the read-back reading,
// which also counts as the point's last published value for on_change.
// On a bus, the write and the read-back go before every queued poll. A
// refusal touches no hardware. A bool taken from one bit of a holding
// register is refused: setting it means read-modify-write of the register,
// which would race the device's own updates of the other bits, and the
// atomic FC22 mask write is missing from too many devices to rely on. A
// SunSpec point is scaled by its scale factor as last polled.
func (a *Adapter) Write(ctx context.Context, name string, v reading.Value) (reading.Value, reading.Reading, error) {
	wrap := func(err error) error { return fmt.Errorf("modbus %q point %q: %w", a.name, name, err) }
	p, ok := a.points.Load().byName[name]
	if !ok {
		return reading.Value{}, reading.Reading{}, wrap(adapters.ErrNoPoint)
	}
	c, e, err := a.writeCodec(p)
	if err != nil {
		return reading.Value{}, reading.Reading{}, wrap(err)
	}
	req, written, err := p.writeRequest(c, v)
	if err != nil {
		return reading.Value{}, reading.Reading{}, wrap(err)
	}
	m := a.member.Load()
	if m == nil {
		return reading.Value{}, reading.Reading{}, wrap(errStopped)
	}
	if err := p.gate.Pass(time.Now()); err != nil {
		return reading.Value{}, reading.Reading{}, wrap(err)
	}
	if err := m.do(ctx, a.unit, true, req); err != nil {
		return reading.Value{}, reading.Reading{}, wrap(fmt.Errorf("unit %d: write %s %d: %w", a.unit, p.table, p.addr, err))
	}
	data, at, err := a.read(ctx, m, true, p.table, p.addr, p.width())
	if err != nil {
		return written, reading.Reading{}, wrap(fmt.Errorf("written, but read-back failed: %w", err))
	}
	var back reading.Value
	if p.sun == nil {
		back = p.value(data, p.addr)
	} else if back, ok = p.sunValue(data, e); !ok {
		return written, reading.Reading{}, wrap(errors.New("written, but it reads back as not implemented"))
	}
	a.mu.Lock()
	// The read-back is published: the next poll need not repeat it. Pass
	// records it unless the value did not change, when there is nothing to
	// record.
	p.filter.Pass(back, at)
	p.backAt = at
	a.mu.Unlock()
	return written, reading.Reading{Adapter: a.name, Point: p.name, Time: at, Value: back}, nil
}

// writeCodec returns the codec that encodes a write to p and, for a
// SunSpec point, the scale factor exponent in it.
func (a *Adapter) writeCodec(p *point) (codec, int, error) {
	if p.sun == nil || !p.writable {
		return p.codec, 0, nil
	}
	e := p.sun.fixed
	if sf := p.sun.sf; sf != nil {
		a.mu.Lock()
		v, ok := sf.sfPolled, sf.sfKnown
		a.mu.Unlock()
		if !ok {
			return codec{}, 0, fmt.Errorf("%w: its scale factor %s has not been read (or is not implemented)", adapters.ErrNotWritable, sf.name)
		}
		e = v
	}
	return p.codec.pow10(e), e, nil
}

// writeRequest checks v against the point, encoded by c, and returns the
// request that writes it, with the value as it will read back.
func (p *point) writeRequest(c codec, v reading.Value) (func(modbus.Client) error, reading.Value, error) {
	addr := uint16(p.addr)
	switch {
	case !p.writable:
		return nil, reading.Value{}, adapters.ErrNotWritable
	case p.table == coils:
		on, err := adapters.AsBool(v)
		if err != nil {
			return nil, reading.Value{}, err
		}
		state := uint16(0)
		if on {
			state = 0xFF00
		}
		return func(c modbus.Client) error {
			_, err := c.WriteSingleCoil(addr, state)
			return err
		}, reading.Bool(on), nil
	case p.table != holdingRegisters:
		return nil, reading.Value{}, fmt.Errorf("%w: a %s is read-only", adapters.ErrNotWritable, p.table)
	case p.codec.bit >= 0:
		return nil, reading.Value{}, fmt.Errorf("%w: a single bit of a holding register is not written (it needs a read-modify-write of the whole register)", adapters.ErrNotWritable)
	case p.width() > 123:
		return nil, reading.Value{}, fmt.Errorf("%w: %d registers exceed the 123 one request can write", adapters.ErrNotWritable, p.width())
	}
	wire, err := c.encode(v)
	if err != nil {
		return nil, reading.Value{}, err
	}
	written := c.decode(wire)
	if len(wire) == 2 {
		return func(c modbus.Client) error {
			_, err := c.WriteSingleRegister(addr, binary.BigEndian.Uint16(wire))
			return err
		}, written, nil
	}
	return func(c modbus.Client) error {
		_, err := c.WriteMultipleRegisters(addr, uint16(len(wire)/2), wire)
		return err
	}, written, nil
}

// attach joins the adapter to the bus (or connection) its url names.
func (a *Adapter) attach() (*member, error) {
	return buses.attach(a.ep, a.log, a.timeout, a.retry)
}
