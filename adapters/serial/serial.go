// Package serial is the [[serial]] adapter: text line-protocol instruments
// (scales, analysers, meters) on a serial port, which either stream lines
// ("line" mode) or answer a request sent every interval ("query" mode). Each
// point takes its value from the first group of its regexp, so one line may
// carry several points. A point with a write_format accepts commands.
//
// One goroutine, Run's, owns the port: it reads, writes commands and reopens
// the port after the USB adapter is pulled and plugged back.
package serial

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/fieldgate/fieldgate/internal/ratelog"
	"github.com/fieldgate/fieldgate/internal/reading"

	"github.com/fieldgate/fieldgate/adapters"
	"github.com/fieldgate/fieldgate/adapters/internal/serialport"
	"github.com/fieldgate/fieldgate/config"
)

func init() { adapters.Register("serial", New) }

const (
	// pollSlice bounds each read in line mode, so commands wait at most
	// this long for the port.
	pollSlice = 100 * time.Millisecond
	// maxLine bounds a line: a device at the wrong baud rate sends noise
	// without delimiters, which must not grow a buffer forever.
	maxLine = 4096
	// noiseInterval is how often at most a kind of bad data is logged: a
	// noisy device sends it with every line.
	noiseInterval = 10 * time.Second
	// maxLogged bounds the device text a log line quotes.
	maxLogged = 80
)

// errLineTooLong is a protocol fault, not a port fault: the port stays open.
var errLineTooLong = fmt.Errorf("more than %d bytes without a delimiter (wrong baud rate?)", maxLine)

// Adapter is one [[serial]] instrument. It implements adapters.Adapter and
// adapters.Writer.
type Adapter struct {
	name     string
	port     string
	line     config.Line
	query    bool
	request  []byte
	interval time.Duration
	timeout  time.Duration
	delim    string
	points   []*point
	byName   map[string]*point
	log      *slog.Logger
	noise    *ratelog.Limiter // bad data, which comes with every line of a noisy device
	cmds     chan *command    // Write → Run
}

type point struct {
	name   string
	re     *regexp.Regexp
	typ    string
	format string                // write_format; empty: not writable
	gate   *adapters.WriteGate   // min_write_interval
	filter adapters.ChangeFilter // used by Run's goroutine only
}

// command is a validated, rendered write on its way to the port owner.
type command struct {
	p     *point
	text  []byte
	value reading.Value // as the point's type
	done  chan result   // buffered: the owner never waits for the writer
}

type result struct {
	readBack reading.Reading
	err      error
}

// New builds the adapter from its config section, as filled in by
// config.Load; it rejects what would fail at run time.
func New(c *Config, env adapters.Env) (*Adapter, error) {
	log := env.Logger()
	a := &Adapter{
		name:     c.Name,
		port:     c.Port,
		line:     c.Line,
		query:    c.Mode == "query",
		request:  []byte(c.Request),
		interval: c.Interval.D(),
		timeout:  c.Timeout.D(),
		delim:    c.Delimiter,
		byName:   make(map[string]*point, len(c.Points)),
		log:      log, // the gateway adds the adapter attribute
		noise:    ratelog.New(log, noiseInterval),
		cmds:     make(chan *command),
	}
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if c.Port == "" {
		bad("no port")
	}
	if err := serialport.CheckLine(c.Line); err != nil {
		bad("%w", err)
	}
	switch {
	case c.Mode != "line" && c.Mode != "query":
		bad("mode %q: want line or query", c.Mode)
	case a.query && (c.Request == "" || a.interval <= 0):
		bad("query mode needs a request and an interval")
	}
	if a.delim == "" || a.timeout <= 0 {
		bad("needs a delimiter and a timeout")
	}
	for _, pc := range c.Points {
		p := &point{name: pc.Name, typ: pc.Type, format: pc.WriteFormat, gate: adapters.NewWriteGate(pc.MinWriteInterval.D()), filter: adapters.ChangeFilter{
			OnChange: pc.OnChange, Deadband: pc.Deadband, Heartbeat: pc.Heartbeat.D(),
		}}
		var err error
		if p.re, err = regexp.Compile(pc.Pattern); err != nil {
			bad("point %q: %w", pc.Name, err)
		} else if p.re.NumSubexp() < 1 {
			bad("point %q: pattern %q has no (group) for the value", pc.Name, pc.Pattern)
		}
		if _, err := parse(p.typ, ""); errors.Is(err, errType) { // parse knows the types
			bad("point %q: %w", pc.Name, err)
		}
		a.points = append(a.points, p)
		a.byName[p.name] = p
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("serial %q: %w", c.Name, err)
	}
	return a, nil
}

// Name returns the adapter's configured name.
func (a *Adapter) Name() string { return a.name }

// Run owns the port until ctx is done: it opens the port, reads lines or
// queries the device, carries out commands from Write, and after a port fault
// reports it and reopens the port with back-off. One Run at a time.
func (a *Adapter) Run(ctx context.Context, e adapters.Emitter) error {
	k := serialport.NewKeeper(a.port, a.line)
	defer k.Close()
	r := &run{Adapter: a, e: e}
	for {
		p, err := k.Port()
		if err == nil {
			a.log.Info("serial port open", "port", a.port)
			r.in = lineReader{p: p, delim: []byte(a.delim)}
			err = r.session(ctx, p)
			if ctx.Err() != nil {
				return nil
			}
			k.Fault(err)
		}
		r.e.Status(fmt.Errorf("serial %q: %w", a.name, err))
		if !r.waitRetry(ctx, k.Next(), err) {
			return nil
		}
	}
}

// Write validates v against the point and renders its command without
// touching the port, then hands it to Run's goroutine (waiting for Run, as
// long as ctx allows) and returns once it is written. The read-back: in
// query mode, the point's value in the answer to one query sent right after
// the command; in line mode, where the device cannot be asked, the value
// written, timed now.
func (a *Adapter) Write(ctx context.Context, name string, v reading.Value) (reading.Value, reading.Reading, error) {
	p := a.byName[name]
	if p == nil {
		return reading.Value{}, reading.Reading{}, fmt.Errorf("serial %q point %q: %w", a.name, name, adapters.ErrNoPoint)
	}
	typed, text, err := p.render(v, a.delim)
	if err != nil {
		return reading.Value{}, reading.Reading{}, fmt.Errorf("serial %q point %q: %w", a.name, name, err)
	}
	c := &command{p: p, text: text, value: typed, done: make(chan result, 1)}
	select {
	case a.cmds <- c:
	case <-ctx.Done():
		return reading.Value{}, reading.Reading{}, fmt.Errorf("serial %q point %q: not written: %w", a.name, name, ctx.Err())
	}
	select {
	case res := <-c.done:
		return typed, res.readBack, res.err
	case <-ctx.Done():
		return typed, reading.Reading{}, fmt.Errorf("serial %q point %q: outcome unknown: %w", a.name, name, ctx.Err())
	}
}

// run is the state of one Run: the port owner's view.
type run struct {
	*Adapter
	e  adapters.Emitter
	in lineReader
}

// session uses an open port until it faults (the fault is returned) or ctx
// is done.
func (r *run) session(ctx context.Context, p *serialport.Port) error {
	if r.query {
		return r.poll(ctx, p)
	}
	return r.stream(ctx, p)
}

// stream reads the lines a device sends by itself, serving commands between
// reads.
func (r *run) stream(ctx context.Context, p *serialport.Port) error {
	r.e.Status(nil)
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case c := <-r.cmds:
			if err := r.write(p, c); err != nil {
				return err
			}
		default:
		}
		l, err := r.in.next(time.Now().Add(pollSlice))
		switch {
		case err == nil:
			rs, _, err := r.parse(l, time.Now())
			r.emit(rs)
			r.e.Status(err)
		case errors.Is(err, serialport.ErrTimeout):
		case errors.Is(err, errLineTooLong):
			r.e.Status(fmt.Errorf("serial %q: %w", r.name, err))
		default:
			return err
		}
	}
}

// poll queries the device every interval, serving commands in between.
func (r *run) poll(ctx context.Context, p *serialport.Port) error {
	tick := time.NewTicker(r.interval)
	defer tick.Stop()
	for {
		rs, err := r.ask(p)
		if isFault(err) {
			return err
		}
		r.emit(rs)
		r.e.Status(err)
		for wait := true; wait; {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case c := <-r.cmds:
				if err := r.write(p, c); err != nil {
					return err
				}
			case <-tick.C:
				wait = false
			}
		}
	}
}

// ask sends the request and parses the first line of the answer that matches
// a point; lines matching nothing (echoes, acknowledgements) are skipped. A
// late answer to an earlier request is discarded first.
func (r *run) ask(p *serialport.Port) ([]reading.Reading, error) {
	if err := p.ResetInput(); err != nil {
		return nil, err
	}
	r.in.reset()
	if _, err := p.Write(r.request); err != nil {
		return nil, err
	}
	r.log.Debug("serial request", "bytes", string(r.request))
	deadline := time.Now().Add(r.timeout)
	for {
		l, err := r.in.next(deadline)
		switch {
		case errors.Is(err, serialport.ErrTimeout):
			return nil, fmt.Errorf("serial %q: no answer to %q within %s: %w", r.name, r.request, r.timeout, err)
		case errors.Is(err, errLineTooLong):
			return nil, fmt.Errorf("serial %q: answer to %q: %w", r.name, r.request, err)
		case err != nil:
			return nil, err
		}
		if rs, matched, err := r.parse(l, time.Now()); matched {
			return rs, err
		}
	}
}

// write sends a command and produces its read-back; it returns only a port
// fault, having told the writer. A command sooner than the point's
// min_write_interval after the last one written is refused here, where it
// would reach the device.
func (r *run) write(p *serialport.Port, c *command) error {
	if err := c.p.gate.Pass(time.Now()); err != nil {
		c.done <- result{err: fmt.Errorf("serial %q point %q: %w", r.name, c.p.name, err)}
		return nil
	}
	if _, err := p.Write(c.text); err != nil {
		c.done <- result{err: fmt.Errorf("serial %q point %q: %w", r.name, c.p.name, err)}
		return err
	}
	r.log.Debug("serial command", "point", c.p.name, "bytes", string(c.text))
	if !r.query {
		c.done <- result{readBack: r.readBack(c.p, c.value, time.Now())}
		return nil
	}
	rs, err := r.ask(p)
	if isFault(err) {
		c.done <- result{err: fmt.Errorf("serial %q point %q: written, read-back failed: %w", r.name, c.p.name, err)}
		return err
	}
	var rb *reading.Reading
	others := rs[:0]
	for _, rd := range rs {
		if rd.Point == c.p.name {
			rb = &rd // a copy: appending to others reuses rs
		} else {
			others = append(others, rd)
		}
	}
	switch {
	case rb != nil:
		c.done <- result{readBack: r.readBack(c.p, rb.Value, rb.Time)}
	case err != nil:
		c.done <- result{err: fmt.Errorf("serial %q point %q: written, read-back failed: %w", r.name, c.p.name, err)}
	default:
		c.done <- result{err: fmt.Errorf("serial %q point %q: written, but the answer to the read-back query has no value for it", r.name, c.p.name)}
	}
	r.emit(others)
	r.e.Status(err)
	return nil
}

// readBack makes the reading returned to the writer, which publishes it; the
// point's filter counts it as published.
func (r *run) readBack(p *point, v reading.Value, t time.Time) reading.Reading {
	p.filter.Pass(v, t)
	return reading.Reading{Adapter: r.name, Point: p.name, Time: t, Value: v}
}

// parse takes the value of every point whose pattern matches the line;
// matched tells whether any did. Captures that do not parse as the point's
// type are reported in err, naming the point and its type but not the text,
// so that a device sending garbage changes the status once, not with every
// line; the text goes to the log, rate-limited. The other captures still
// count.
func (r *run) parse(line string, t time.Time) (rs []reading.Reading, matched bool, err error) {
	r.log.Debug("serial line", "text", line)
	var errs []error
	for _, p := range r.points {
		m := p.re.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		matched = true
		v, err := parse(p.typ, m[1])
		if err != nil {
			r.noise.Log(slog.LevelWarn, "parse "+p.name, "serial value does not parse", "point", p.name, "type", p.typ,
				"text", truncate(m[1], maxLogged))
			errs = append(errs, fmt.Errorf("serial %q point %q: %w as %s", r.name, p.name, errParse, p.typ))
			continue
		}
		rs = append(rs, reading.Reading{Adapter: r.name, Point: p.name, Time: t, Value: v})
	}
	return rs, matched, errors.Join(errs...)
}

// emit hands over the readings of one line that pass their points' filters,
// together.
func (r *run) emit(rs []reading.Reading) {
	out := rs[:0]
	for _, rd := range rs {
		if r.byName[rd.Point].filter.Pass(rd.Value, rd.Time) {
			out = append(out, rd)
		}
	}
	if len(out) > 0 {
		r.e.Emit(out)
	}
}

// waitRetry waits for the next attempt to open the port, refusing commands
// meanwhile; it reports false when ctx is done.
func (r *run) waitRetry(ctx context.Context, next time.Time, cause error) bool {
	t := time.NewTimer(time.Until(next))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
			return true
		case c := <-r.cmds:
			c.done <- result{err: fmt.Errorf("serial %q point %q: not written, port not open: %w", r.name, c.p.name, cause)}
		}
	}
}

// isFault tells a port fault, after which the port is reopened, from the
// device's silence or gibberish, after which it is not.
func isFault(err error) bool {
	return err != nil && !errors.Is(err, serialport.ErrTimeout) && !errors.Is(err, errLineTooLong) && !errors.Is(err, errParse)
}

// lineReader splits what the port delivers into lines.
type lineReader struct {
	p     *serialport.Port
	delim []byte
	buf   []byte
	chunk [512]byte
}

// next returns the next line without its delimiter and any trailing CR or
// LF (devices end lines with "\r\n" whatever the delimiter is), reading until
// deadline.
func (l *lineReader) next(deadline time.Time) (string, error) {
	for {
		if i := bytes.Index(l.buf, l.delim); i >= 0 {
			s := strings.TrimRight(string(l.buf[:i]), "\r\n")
			l.buf = append(l.buf[:0], l.buf[i+len(l.delim):]...)
			return s, nil
		}
		if len(l.buf) > maxLine {
			l.reset()
			return "", errLineTooLong
		}
		l.p.SetReadDeadline(deadline)
		n, err := l.p.Read(l.chunk[:])
		l.buf = append(l.buf, l.chunk[:n]...)
		if err != nil {
			return "", err
		}
	}
}

func (l *lineReader) reset() { l.buf = l.buf[:0] }

// truncate shortens s to at most n bytes for a log line.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

var (
	errType  = errors.New("unknown point type")
	errParse = errors.New("cannot parse")
)

// parse converts a captured text to a value of the point's type; bools are
// true/false, on/off or 1/0 in any case.
func parse(typ, s string) (reading.Value, error) {
	s = strings.TrimSpace(s)
	var err error
	switch typ {
	case "float64":
		var f float64
		if f, err = strconv.ParseFloat(s, 64); err == nil {
			return reading.Float(f), nil
		}
	case "int64":
		var i int64
		if i, err = strconv.ParseInt(s, 10, 64); err == nil {
			return reading.Int(i), nil
		}
	case "bool":
		var b bool
		if b, err = adapters.AsBool(reading.String(s)); err == nil {
			return reading.Bool(b), nil
		}
	case "string":
		return reading.String(s), nil
	default:
		return reading.Value{}, fmt.Errorf("%w %q: want float64, int64, bool or string", errType, typ)
	}
	return reading.Value{}, fmt.Errorf("%w %q as %s", errParse, s, typ)
}
