package gpio

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/fieldgate/fieldgate/internal/reading"

	"github.com/warthog618/go-gpiocdev"
	"golang.org/x/sys/unix"

	"github.com/fieldgate/fieldgate/adapters"
)

// ErrChipNotFound is wrapped by the status error when no chip in the device
// directory has the configured name or label.
var ErrChipNotFound = errors.New("gpio chip not found")

// session is one opening of the chip: the requested lines, held until close.
type session struct {
	adapter string
	chip    string // kernel name, gpiochipN
	label   string
	lines   []*gpiocdev.Line // by point index
	counts  *counterFile     // the counter points' totals; nil without any

	// emitMu makes reading a level and emitting it atomic with respect to
	// edge events, so a level read just before an edge is never published
	// after that edge's reading and left standing as the latest value.
	emitMu sync.Mutex
}

// open finds the chip and requests every point's line, or requests none.
// Edge events go to e from gpiocdev's watcher goroutines, which the lines'
// Close stops and waits for. a.mu must be held.
func (a *Adapter) open(e adapters.Emitter) (*session, error) {
	c, err := a.findChip()
	if err != nil {
		return nil, err
	}
	defer c.Close()
	s := &session{adapter: a.name, chip: c.Name, label: c.Label, counts: a.counts}
	for _, p := range a.points {
		l, err := c.RequestLine(p.offset, p.requestOptions(s.onEdge(a, p, e))...)
		if err != nil {
			s.close()
			return nil, s.requestError(c, p, err)
		}
		s.lines = append(s.lines, l)
	}
	return s, nil
}

// findChip opens the chip named a.chip in the device directory, or else the
// first one labelled a.chip.
func (a *Adapter) findChip() (*gpiocdev.Chip, error) {
	dir, consumer := a.opt.devDir, gpiocdev.WithConsumer("fieldgate-"+a.name)
	path := a.chip
	if !filepath.IsAbs(path) {
		path = filepath.Join(dir, path)
	}
	c, err := gpiocdev.NewChip(cdevPath(path), consumer)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		if err != nil {
			err = fmt.Errorf("chip %s: %w", path, err)
		}
		return c, err
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrChipNotFound, err)
	}
	var seen []string
	for _, ent := range entries {
		if !strings.HasPrefix(ent.Name(), "gpiochip") {
			continue
		}
		c, err := gpiocdev.NewChip(cdevPath(filepath.Join(dir, ent.Name())), consumer)
		if err != nil {
			continue
		}
		if c.Label == a.chip {
			return c, nil
		}
		seen = append(seen, fmt.Sprintf("%s [%s]", c.Name, c.Label))
		c.Close()
	}
	if len(seen) == 0 {
		seen = []string{"none"}
	}
	return nil, fmt.Errorf("%w: no chip named or labelled %q in %s (chips: %s)",
		ErrChipNotFound, a.chip, dir, strings.Join(seen, ", "))
}

// cdevPath spells path the way gpiocdev opens it: the library prefixes
// "/dev/" to any path not under /dev, so a path elsewhere goes relative to
// /dev.
func cdevPath(path string) string {
	path = filepath.Clean(path)
	if strings.HasPrefix(path, "/dev/") {
		return path
	}
	rel, err := filepath.Rel("/dev", path)
	if err != nil { // path is relative: leave it to the library's error
		return path
	}
	return "/dev/" + rel
}

// requestError explains why p's line could not be requested.
func (s *session) requestError(c *gpiocdev.Chip, p *point, err error) error {
	switch {
	case errors.Is(err, syscall.EBUSY):
		if info, ierr := c.LineInfo(p.offset); ierr == nil && info.Consumer != "" {
			return fmt.Errorf("%s: already in use by %q: %w", s.where(p), info.Consumer, err)
		}
		return fmt.Errorf("%s: already in use: %w", s.where(p), err)
	case errors.Is(err, gpiocdev.ErrInvalidOffset):
		return fmt.Errorf("%s: the chip has %d lines: %w", s.where(p), c.Lines(), err)
	}
	return fmt.Errorf("%s: request: %w", s.where(p), err)
}

// where names p's line for messages: chip gpiochip0 [pinctrl-rp1] line 17 ("door").
func (s *session) where(p *point) string {
	return fmt.Sprintf("chip %s [%s] line %d (%q)", s.chip, s.label, p.offset, p.name)
}

// onEdge returns the handler publishing p's edge events, one reading each:
// the level, or for a counter the total after each rising edge.
func (s *session) onEdge(a *Adapter, p *point, e adapters.Emitter) gpiocdev.EventHandler {
	var last uint32 // the previous event's line sequence number; 0 before the first
	return func(ev gpiocdev.LineEvent) {
		lost := missed(last, ev.LineSeqno)
		last = ev.LineSeqno
		rising := ev.Type == gpiocdev.LineEventRisingEdge
		s.emitMu.Lock()
		defer s.emitMu.Unlock()
		v := reading.Bool(rising)
		switch {
		case p.counter:
			var counted bool
			if v, counted = s.count(a, p, rising, lost, e); !counted {
				return
			}
		case lost > 0:
			a.log.Warn("gpio edge events lost (kernel buffer overflow)", "point", p.name, "lost", lost)
		}
		e.Emit([]reading.Reading{{Adapter: a.name, Point: p.name, Time: wallClock(ev.Timestamp), Value: v}})
	}
}

// missed returns how many events the kernel dropped between the line's
// events numbered last and seqno. The kernel numbers a request's events from
// 1, so a gap before the first (last 0) shows too, and wraps to 0 after
// 2³²-1; a kernel without numbers sends only 0.
func missed(last, seqno uint32) uint32 {
	if seqno == 0 && last == 0 {
		return 0
	}
	return seqno - last - 1
}

// count adds the rising edges an event stands for to p's total, durably,
// and returns the total to publish; counted is false when there are none (a
// falling edge). Events lost before it were all rising edges when p
// detects nothing else; with both edges they cannot be told apart. It
// reports on the adapter's status whether totals reach the disk.
func (s *session) count(a *Adapter, p *point, rising bool, lost uint32, e adapters.Emitter) (v reading.Value, counted bool) {
	var n uint64
	if rising {
		n = 1
	}
	switch {
	case lost == 0:
	case p.edge == gpiocdev.WithRisingEdge:
		n += uint64(lost)
		a.log.Warn("gpio edge events lost (kernel buffer overflow); counted from their sequence numbers", "point", p.name, "lost", lost)
	default:
		a.log.Error("gpio edge events lost (kernel buffer overflow); the counter misses the rising edges among them", "point", p.name, "lost", lost)
	}
	if n == 0 {
		return reading.Value{}, false
	}
	total, err := s.counts.add(p.name, n)
	if err != nil {
		err = fmt.Errorf("gpio %q point %q: total %d not persisted: %w", a.name, p.name, total, err)
	}
	e.Status(err)
	return reading.Uint(total), true
}

// wallClock converts a CLOCK_MONOTONIC event timestamp to wall-clock time by
// the clocks' current offset. The monotonic clock is read first, so a delay
// between the two readings can only make the result later, never earlier than
// the edge, and never later than the return.
func wallClock(event time.Duration) time.Time {
	var ts unix.Timespec
	err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	wall := time.Now()
	if err != nil {
		return wall.Round(0) // cannot happen on Linux; the handling time is the next best
	}
	return monoToWall(event, time.Duration(ts.Nano()), wall)
}

// monoToWall returns the wall-clock time of the monotonic instant event,
// given a monotonic and a wall-clock reading of the same instant.
func monoToWall(event, nowMono time.Duration, nowWall time.Time) time.Time {
	return nowWall.Add(event - nowMono).Round(0)
}

// levels reads the lines of ps: the levels, or a counter's total. Counters'
// lines are read too, to notice a vanished chip.
func (s *session) levels(ps []*point) ([]reading.Reading, error) {
	rs := make([]reading.Reading, len(ps))
	for i, p := range ps {
		level, err := s.lines[p.index].Value()
		if err != nil {
			return nil, fmt.Errorf("%s: read: %w", s.where(p), err)
		}
		v := reading.Bool(level == 1)
		if p.counter {
			v = reading.Uint(s.counts.total(p.name))
		}
		rs[i] = reading.Reading{Adapter: s.adapter, Point: p.name, Time: time.Now(), Value: v}
	}
	return rs, nil
}

// emitLevels reads the lines of ps and emits them as one batch.
func (s *session) emitLevels(e adapters.Emitter, ps []*point) error {
	s.emitMu.Lock()
	defer s.emitMu.Unlock()
	rs, err := s.levels(ps)
	if err == nil {
		e.Emit(rs)
	}
	return err
}

// set drives p's output line to active (true) or inactive.
func (s *session) set(p *point, active bool) error {
	if err := s.lines[p.index].SetValue(boolInt(active)); err != nil {
		return fmt.Errorf("%s: write: %w", s.where(p), err)
	}
	return nil
}

// close releases the lines, waiting for their event handlers to return.
func (s *session) close() {
	for _, l := range s.lines {
		l.Close()
	}
}
