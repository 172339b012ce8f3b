package buffer

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/fieldgate/fieldgate/internal/reading"

	"github.com/fieldgate/fieldgate/internal/durable"
	"github.com/fieldgate/fieldgate/internal/statefile"
)

// FsyncMode says when appended readings are forced to disk.
type FsyncMode int

// Fsync modes, as named in the [buffer] fsync setting. The zero value is the
// safest.
const (
	FsyncAlways   FsyncMode = iota // before Append returns; concurrent Appends share one fsync
	FsyncInterval                  // every FsyncInterval, from a background goroutine
	FsyncNever                     // only at Close (and when a segment fills)
)

var fsyncNames = map[FsyncMode]string{FsyncAlways: "always", FsyncInterval: "interval", FsyncNever: "never"}

// String returns the mode as the fsync setting spells it, for logs.
func (m FsyncMode) String() string {
	if s, ok := fsyncNames[m]; ok {
		return s
	}
	return fmt.Sprintf("FsyncMode(%d)", int(m))
}

// ParseFsync parses the fsync setting of the [buffer] table.
func ParseFsync(s string) (FsyncMode, error) {
	for m, name := range fsyncNames {
		if s == name {
			return m, nil
		}
	}
	return 0, fmt.Errorf("%w %q (always | interval | never)", ErrBadFsync, s)
}

// Errors returned by the buffer, for errors.Is.
var (
	ErrBadFsync        = errors.New("unknown fsync mode")
	ErrClosed          = errors.New("buffer closed")
	ErrUnknownUpstream = errors.New("unknown upstream")
	ErrAckRange        = errors.New("ack beyond the last appended reading")
	ErrTooLarge        = errors.New("poll cycle too large for one record")
	ErrLocked          = durable.ErrLocked // the buffer directory is in use by another process
	ErrSeqExhausted    = errors.New("seqs exhausted")
)

// Defaults for zero Options fields.
const (
	DefaultMaxSize       = 256 << 20
	DefaultFsyncInterval = time.Second
	DefaultBootIDPath    = "/proc/sys/kernel/random/boot_id"
)

const (
	// reserveBlock is how many seqs one durable reservation covers: after a
	// power cut seq jumps by at most this much.
	reserveBlock = 1 << 16
	// maxSeq bounds seqs, far beyond any gateway's life (2^62 readings),
	// so seq arithmetic never wraps.
	maxSeq = 1 << 62
	// cacheEntries bounds the recently appended entries kept in memory so
	// an upstream that keeps up never reads the disk.
	cacheEntries = 4096
	minSegSize   = 4 << 10
	maxSegSize   = 8 << 20

	seqFileName    = "seq.state"
	cursorFileName = "cursors.state"
	lockFileName   = "lock"
)

// Options configure a Buffer. Zero fields take the defaults above.
type Options struct {
	MaxSize       int64 // bytes on disk; when exceeded the oldest readings are dropped
	Fsync         FsyncMode
	FsyncInterval time.Duration
	Logger        *slog.Logger
	// SegmentSize is the size at which a new segment file starts; space is
	// released a segment at a time. Default MaxSize/16, within 64 KiB–8 MiB.
	SegmentSize int64
	// BootIDPath names the file holding the kernel boot id, which tells a
	// process crash (page cache intact) from a reboot. Tests point it
	// elsewhere to simulate a power cut.
	BootIDPath string
	// FS is the file system the buffer lives on; nil is the operating
	// system's. Tests substitute one that simulates power cuts.
	FS durable.FS

	afterSync func()           // test hook: called after each interval sync
	now       func() time.Time // test hook: the interval writer's clock
}

func (o Options) withDefaults() (Options, error) {
	if _, ok := fsyncNames[o.Fsync]; !ok {
		return o, fmt.Errorf("%w %d", ErrBadFsync, int(o.Fsync))
	}
	if o.MaxSize <= 0 {
		o.MaxSize = DefaultMaxSize
	}
	if o.FsyncInterval <= 0 {
		o.FsyncInterval = DefaultFsyncInterval
	}
	if o.now == nil {
		o.now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.BootIDPath == "" {
		o.BootIDPath = DefaultBootIDPath
	}
	if o.FS == nil {
		o.FS = durable.OS
	}
	if o.SegmentSize <= 0 {
		o.SegmentSize = min(max(o.MaxSize/16, 64<<10), maxSegSize)
	}
	// At least two segments must fit, or the cap could never be met by
	// deleting sealed ones.
	o.SegmentSize = max(min(o.SegmentSize, o.MaxSize/2), minSegSize)
	return o, nil
}

// Entry is a reading with the seq the buffer gave it.
type Entry struct {
	Seq uint64
	reading.Reading
}

// Stats describe the buffer for metrics and logs.
type Stats struct {
	First, Next uint64            // oldest retained seq; seq the next reading gets
	Bytes       int64             // segment bytes on disk
	Dropped     uint64            // seqs evicted by the size cap before every upstream had them
	Cursors     map[string]uint64 // per upstream: next seq it needs
	Corrupt     uint64            // records skipped (bad checksum or encoding), torn tails cut, damaged segment headers
	Syncs       uint64            // fsyncs of the log
}

// Buffer is the gateway's durable log of readings. See the package doc.
// All methods are safe for concurrent use.
type Buffer struct {
	dir  string
	opts Options
	fs   durable.FS
	log  *slog.Logger
	lock io.Closer
	boot string
	key  []byte // the frame key (see frameSeal)

	mu           sync.Mutex
	closed       bool
	segs         []*segment // oldest first; the last is the tail
	tail         durable.File
	bytes        int64
	next         uint64
	reserved     uint64
	seqFile      *statefile.File
	written      uint64 // bytes ever written: the group-commit generation
	dict         *dict
	defsWritten  uint32 // ids below this are defined in the log
	needSnapshot bool   // the next record must carry the whole dictionary
	ids          []uint32
	enc          []byte
	cache        recentCache
	cursors      map[string]uint64
	hints        map[string]readHint
	curGen       uint64 // bumped whenever cursors change
	dropped      uint64
	diskFull     diskFull
	changed      chan struct{}

	syncMu sync.Mutex // serialises log fsyncs; taken before mu
	synced uint64     // written as of the last completed fsync

	curMu   sync.Mutex      // serialises cursor saves; taken before mu
	curFile *statefile.File // nil once closed
	curDone uint64          // curGen as of the last save

	corrupt    atomic.Uint64
	syncs      atomic.Uint64
	evidenceMu sync.Mutex // serialises copies of damaged segments and their pruning

	dirty chan struct{} // cap 1: something awaits the interval writer; nil without one
	stop  chan struct{}
	wg    sync.WaitGroup
}

func (b *Buffer) tailSeg() *segment { return b.segs[len(b.segs)-1] }

// Append stores one poll cycle's readings as one record, numbered
// consecutively from first to last. With FsyncAlways it returns once they are
// on disk; an fsync error is returned with the seqs, the readings being in
// the log but perhaps not durable.
func (b *Buffer) Append(rs []reading.Reading) (first, last uint64, err error) {
	if len(rs) == 0 {
		return 0, 0, nil
	}
	b.mu.Lock()
	first, gen, err := b.appendLocked(rs)
	b.mu.Unlock()
	if err != nil {
		return 0, 0, fmt.Errorf("buffer %s: append: %w", b.dir, err)
	}
	last = first + uint64(len(rs)) - 1
	if b.opts.Fsync == FsyncAlways {
		if err := b.syncTo(gen); err != nil {
			return first, last, fmt.Errorf("buffer %s: %w", b.dir, err)
		}
	}
	b.markDirty()
	return first, last, nil
}

func (b *Buffer) appendLocked(rs []reading.Reading) (first, gen uint64, err error) {
	if b.closed {
		return 0, 0, ErrClosed
	}
	n := uint64(len(rs))
	if n > maxSeq-b.next {
		return 0, 0, ErrSeqExhausted
	}
	if b.tailSeg().size >= b.opts.SegmentSize {
		if err := b.roll(); err != nil {
			return 0, 0, fmt.Errorf("new segment: %w", err)
		}
	}
	if b.next+n > b.reserved {
		if err := b.reserve(b.next + n); err != nil {
			return 0, 0, err
		}
	}
	b.ids = b.dict.assign(rs, b.ids[:0])
	from := b.defsWritten
	if b.needSnapshot {
		from = 0
	}
	defs, defsEnd := b.dict.since(from)
	s := b.tailSeg()
	b.enc = encodeRecord(b.enc[:0], s.seal, s.size, b.next, b.needSnapshot, defs, b.ids, rs)
	if len(b.enc)-frameHeaderLen > maxPayload {
		return 0, 0, fmt.Errorf("%w: %d readings, %d bytes", ErrTooLarge, len(rs), len(b.enc))
	}
	if err := b.makeRoom(func() error { return b.writeTail(s, b.enc) }); err != nil {
		return 0, 0, err
	}
	s.mu.Lock()
	s.addIndex(b.next, s.size)
	s.mu.Unlock()
	w := int64(len(b.enc))
	s.size += w
	b.bytes += w
	b.written += uint64(w)
	b.defsWritten, b.needSnapshot = defsEnd, false

	first = b.next
	es := make([]Entry, len(rs))
	for i, r := range rs {
		r.Time = readingTime(r.Time.UnixMicro())
		es[i] = Entry{Seq: first + uint64(i), Reading: r}
	}
	b.cache.add(es)
	b.next += n
	s.end = b.next
	b.enforceCap()
	close(b.changed)
	b.changed = make(chan struct{})
	return first, b.written, nil
}

// writeTail writes a record at the end of the tail s, leaving the tail as
// it was when the write fails.
func (b *Buffer) writeTail(s *segment, rec []byte) error {
	if _, err := b.tail.WriteAt(rec, s.size); err != nil {
		_ = b.tail.Truncate(s.size) // best effort; Open cuts a torn tail anyway
		return err
	}
	return nil
}

// makeRoom runs op, a write to the log; while it fails because the file
// system is full, it evicts the oldest sealed segment and tries again: a
// full disk costs the oldest readings, never new ones (SPEC §4.1). The
// caller holds mu.
func (b *Buffer) makeRoom(op func() error) error {
	for {
		err := op()
		if err == nil || !errors.Is(err, syscall.ENOSPC) || len(b.segs) < 2 {
			return err
		}
		first := b.segs[0].first
		lost, behind := b.evictOldest()
		b.recordDrop(lost, len(behind) > 0)
		b.diskFull.evicted(b.log, b.dir, first, b.segs[0].first, lost, b.dropped)
	}
}

// diskFull follows an episode of a full file system, so it is logged once
// when it starts and once when it ends, not at every eviction. It ends when
// a new segment starts with room for two more.
type diskFull struct {
	active   bool
	readings uint64 // evicted in this episode
	segments int
}

func (d *diskFull) evicted(log *slog.Logger, dir string, from, to, lost, total uint64) {
	if !d.active {
		log.Warn("buffer: file system full; the oldest readings are evicted to make room", "dir", dir,
			"seq_from", from, "seq_to", to-1, "readings", lost, "dropped_total", total)
	}
	d.active = true
	d.readings += lost
	d.segments++
}

// end closes an episode.
func (d *diskFull) end(log *slog.Logger) {
	log.Info("buffer: file system has room again", "readings_evicted", d.readings, "segments_evicted", d.segments)
	*d = diskFull{}
}

// newTail starts a new tail segment at b.next, evicting the oldest
// readings while the disk has no room for it.
func (b *Buffer) newTail() error {
	return b.makeRoom(func() error { return b.createTail(b.next) })
}

// roll seals the full tail (forcing it to disk, once per segment whatever
// the fsync mode) and starts a new one.
func (b *Buffer) roll() error {
	if err := b.tail.Datasync(); err != nil {
		return err
	}
	b.syncs.Add(1)
	if err := b.newTail(); err != nil {
		return err
	}
	if b.diskFull.active {
		if free, err := b.fs.Free(b.dir); err == nil && free >= 2*b.opts.SegmentSize {
			b.diskFull.end(b.log)
		}
	}
	return nil
}

// syncTo returns once the log is on disk up to generation gen. Appenders
// waiting here share one fsync: whoever gets syncMu syncs everything written
// so far, and the others find their data already covered.
func (b *Buffer) syncTo(gen uint64) error {
	b.syncMu.Lock()
	defer b.syncMu.Unlock()
	for b.synced < gen {
		b.mu.Lock()
		f, w := b.tail, b.written
		b.mu.Unlock()
		if err := f.Datasync(); err != nil {
			b.mu.Lock()
			rolled := b.tail != f // the roll synced f before closing it
			b.mu.Unlock()
			if rolled {
				continue
			}
			return fmt.Errorf("fsync: %w", err)
		}
		b.syncs.Add(1)
		b.synced = w
	}
	return nil
}

// enforceCap drops the oldest sealed segments while the log exceeds
// MaxSize, moving lagging cursors past them. The caller holds mu.
func (b *Buffer) enforceCap() {
	if b.bytes <= b.opts.MaxSize || len(b.segs) < 2 {
		return // the usual Append: nothing to evict, nothing to allocate
	}
	var lost, from, to uint64
	behind := map[string]bool{}
	for b.bytes > b.opts.MaxSize && len(b.segs) > 1 {
		if to == 0 {
			from = b.segs[0].first
		}
		l, us := b.evictOldest()
		lost += l
		for _, u := range us {
			behind[u] = true
		}
		to = b.segs[0].first
	}
	b.recordDrop(lost, len(behind) > 0)
	if lost > 0 {
		names := slices.Sorted(maps.Keys(behind))
		b.log.Warn("buffer: full, oldest readings dropped", "readings", lost, "seq_from", from, "seq_to", to-1,
			"upstreams_behind", names, "max_size", b.opts.MaxSize, "dropped_total", b.dropped)
	}
}

// evictOldest deletes the oldest sealed segment, moving the cursors of
// upstreams that had not passed it beyond it, and returns how many of its
// readings some upstream still needed, and those upstreams. Only readings
// that exist count: seqs skipped after a power cut lie between segments.
// The caller holds mu.
func (b *Buffer) evictOldest() (lost uint64, behind []string) {
	s, next := b.segs[0], b.segs[1].first
	end := next
	if s.indexed || b.indexOldest(s) {
		end = min(s.end, next)
	}
	low := s.first
	if m, ok := b.minCursor(); ok {
		low = max(low, min(m, end))
	}
	if end > low {
		lost = end - low
	}
	for u, c := range b.cursors {
		if c < next {
			b.cursors[u] = next
			behind = append(behind, u)
		}
	}
	b.removeOldest()
	return lost, behind
}

// indexOldest scans a sealed segment no Read has reached yet, to learn
// where its readings end; false if it could not.
func (b *Buffer) indexOldest(s *segment) bool {
	_, err := b.indexSegment(s, s.size)
	return err == nil && s.indexed
}

// recordDrop counts evicted readings; moved says cursors moved for the
// upstreams behind, which must be saved. The caller holds mu.
func (b *Buffer) recordDrop(lost uint64, moved bool) {
	if moved {
		b.curGen++
	}
	b.dropped += lost
}

// release deletes sealed segments every upstream has passed. The caller
// holds mu. With no upstream configured nothing is released (only the size
// cap drops data), so an upstream added later still gets the backlog.
func (b *Buffer) release() {
	m, ok := b.minCursor()
	if !ok {
		return
	}
	for len(b.segs) > 1 && b.segs[1].first <= m {
		b.removeOldest()
	}
}

func (b *Buffer) minCursor() (uint64, bool) {
	var m uint64
	ok := false
	for _, c := range b.cursors {
		if !ok || c < m {
			m, ok = c, true
		}
	}
	return m, ok
}

func (b *Buffer) removeOldest() {
	s := b.segs[0]
	if err := b.fs.Remove(s.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		// Forget it anyway: a segment left behind reappears at the next
		// Open, behind every cursor, and is deleted then.
		b.log.Warn("buffer: deleting segment", "segment", s.path, "error", err)
	}
	b.bytes -= s.size
	b.segs[0] = nil
	b.segs = b.segs[1:]
}

// Cursor returns the next seq upstream still needs (0 for an unknown one).
func (b *Buffer) Cursor(upstream string) uint64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.cursors[upstream]
}

// Ack records that upstream has every reading below next; space is released
// once every upstream has passed a segment. The cursor is saved per the
// fsync mode, so after a crash it may be a little behind (duplicates, never
// loss).
func (b *Buffer) Ack(upstream string, next uint64) error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return ErrClosed
	}
	c, ok := b.cursors[upstream]
	if !ok {
		b.mu.Unlock()
		return fmt.Errorf("%w %q", ErrUnknownUpstream, upstream)
	}
	if next > b.next {
		b.mu.Unlock()
		return fmt.Errorf("%w: upstream %q acked %d, next seq is %d", ErrAckRange, upstream, next, b.next)
	}
	moved := next > c
	if moved {
		b.cursors[upstream] = next
		b.curGen++
		b.release()
	}
	gen := b.curGen
	b.mu.Unlock()
	if moved {
		b.markDirty()
	}
	return b.saveCursorsNow(gen)
}

// saveCursorsNow saves the cursors as of gen when every change must be
// durable at once (FsyncAlways); the other modes save them from syncLoop or
// at Close.
func (b *Buffer) saveCursorsNow(gen uint64) error {
	if b.opts.Fsync != FsyncAlways {
		return nil
	}
	return b.persistCursors(gen)
}

// persistCursors saves the cursors if they changed since the last save
// before generation gen. Concurrent callers share one write.
func (b *Buffer) persistCursors(gen uint64) error {
	b.curMu.Lock()
	defer b.curMu.Unlock()
	if b.curFile == nil || b.curDone >= gen {
		return nil
	}
	b.mu.Lock()
	body, g := encodeCursors(b.cursors), b.curGen
	b.mu.Unlock()
	if err := b.curFile.Save(body); err != nil {
		return fmt.Errorf("buffer %s: save cursors: %w", b.dir, err)
	}
	b.curDone = g
	return nil
}

// Changed returns a channel closed by the next Append (or Close), to wake
// every reader waiting for data.
func (b *Buffer) Changed() <-chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.changed
}

// SetUpstreams applies a config reload: a new upstream starts at the oldest
// retained reading; a removed one stops holding data back.
func (b *Buffer) SetUpstreams(names []string) error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return ErrClosed
	}
	keep := make(map[string]bool, len(names))
	for _, n := range names {
		keep[n] = true
		if _, ok := b.cursors[n]; !ok {
			b.cursors[n] = b.segs[0].first
		}
	}
	for n := range b.cursors {
		if !keep[n] {
			delete(b.cursors, n)
			delete(b.hints, n)
		}
	}
	b.curGen++
	b.release()
	gen := b.curGen
	b.mu.Unlock()
	return b.saveCursorsNow(gen)
}

// Stats returns a snapshot of the buffer's counters.
func (b *Buffer) Stats() Stats {
	b.mu.Lock()
	defer b.mu.Unlock()
	return Stats{
		First:   b.segs[0].first,
		Next:    b.next,
		Bytes:   b.bytes,
		Dropped: b.dropped,
		Cursors: maps.Clone(b.cursors),
		Corrupt: b.corrupt.Load(),
		Syncs:   b.syncs.Load(),
	}
}

// markDirty tells the interval writer, if there is one, that the log or the
// cursors changed.
func (b *Buffer) markDirty() {
	select {
	case b.dirty <- struct{}{}:
	default:
	}
}

// syncLoop is the FsyncInterval writer: it flushes the log and saves the
// cursors so that nothing waits longer than the interval. It syncs when a
// change has waited that long, and early, at once, when a change comes after
// nine tenths of the interval since the last sync: a poll every interval
// then has its record synced as it is written, so a power cut takes only a
// record written in its last moment, not up to an interval of them, and the
// fsync shares the poll's wake-up rather than costing one of its own. The
// last sync is taken to be at opened, when Open loaded the log.
func (b *Buffer) syncLoop(opened time.Time) {
	defer b.wg.Done()
	interval := b.opts.FsyncInterval
	due := time.NewTimer(interval)
	due.Stop()
	last, waiting := opened, false
	for {
		select {
		case <-b.stop:
			due.Stop()
			return
		case <-due.C:
		case <-b.dirty:
			if !waiting {
				waiting = true
				due.Reset(interval)
			}
			if b.opts.now().Sub(last) < interval-interval/10 {
				continue
			}
			due.Stop()
		}
		b.mu.Lock()
		w, g := b.written, b.curGen
		b.mu.Unlock()
		last, waiting = b.opts.now(), false
		err := b.syncTo(w)
		if err != nil {
			b.log.Warn("buffer: fsync", "error", err)
		}
		if e := b.persistCursors(g); e != nil {
			b.log.Warn("buffer: saving cursors", "error", e)
			err = e
		}
		if err != nil { // tried again after an interval
			waiting = true
			due.Reset(interval)
		}
		if b.opts.afterSync != nil {
			b.opts.afterSync()
		}
	}
}

// Close flushes the log, saves the cursors and records the exact next seq,
// so the next Open continues without a gap even after a reboot.
func (b *Buffer) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return ErrClosed
	}
	b.closed = true
	close(b.changed)
	gen := b.curGen
	b.mu.Unlock()
	close(b.stop)
	b.wg.Wait()

	b.syncMu.Lock()
	b.mu.Lock()
	dataErr := b.tail.Datasync()
	if dataErr == nil {
		b.syncs.Add(1)
		b.synced = b.written
	}
	errs := []error{dataErr, b.tail.Close()}
	b.mu.Unlock()
	b.syncMu.Unlock()

	errs = append(errs, b.persistCursors(gen))
	b.curMu.Lock()
	errs = append(errs, b.curFile.Close())
	b.curFile = nil
	b.curMu.Unlock()

	b.mu.Lock()
	if dataErr == nil { // otherwise the next Open must treat this as a crash
		st := seqState{boot: b.boot, reserved: max(b.reserved, b.next), cleanNext: b.next, key: b.key}
		errs = append(errs, b.seqFile.Save(st.encode()))
	}
	errs = append(errs, b.seqFile.Close(), b.lock.Close())
	b.mu.Unlock()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("buffer %s: close: %w", b.dir, err)
	}
	return nil
}
