package buffer

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/fieldgate/fieldgate/internal/durable"
	"github.com/fieldgate/fieldgate/internal/statefile"
)

// Open opens (or creates) the buffer in dir for the given upstreams,
// repairing a torn tail or a damaged segment header and skipping corrupt
// records with a warning rather than failing; a copy of each repaired
// segment is kept aside (see "Crash semantics" in the package doc).
func Open(dir string, upstreams []string, opts Options) (*Buffer, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("buffer %s: %w", dir, err)
	}
	if err := opts.FS.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("buffer %s: %w", dir, err)
	}
	lock, err := opts.FS.Lock(filepath.Join(dir, lockFileName))
	if err != nil {
		return nil, fmt.Errorf("buffer %s: %w", dir, err)
	}
	b := &Buffer{
		dir:     dir,
		opts:    opts,
		fs:      opts.FS,
		log:     opts.Logger,
		lock:    lock,
		boot:    readBootID(opts.FS, opts.BootIDPath),
		dict:    newDict(),
		cursors: make(map[string]uint64),
		hints:   make(map[string]readHint),
		curGen:  1,
		changed: make(chan struct{}),
		stop:    make(chan struct{}),
	}
	if err := b.load(upstreams); err != nil {
		b.closeFiles()
		return nil, fmt.Errorf("buffer %s: %w", dir, err)
	}
	if opts.Fsync == FsyncInterval {
		b.dirty = make(chan struct{}, 1)
		b.wg.Add(1)
		go b.syncLoop(opts.now())
	}
	return b, nil
}

// closeFiles releases what a failed Open had opened.
func (b *Buffer) closeFiles() {
	if b.tail != nil {
		_ = b.tail.Close()
	}
	for _, s := range []*statefile.File{b.seqFile, b.curFile} {
		if s != nil {
			_ = s.Close()
		}
	}
	_ = b.lock.Close()
}

func (b *Buffer) load(upstreams []string) error {
	var err error
	if b.segs, err = listSegments(b.fs, b.dir); err != nil {
		return err
	}
	var st seqState
	var haveSeq bool
	b.seqFile, haveSeq, err = b.loadState(seqFileName, "buffer: seq state unreadable", func(p []byte) (err error) {
		st, err = decodeSeqState(p)
		return err
	})
	if err != nil {
		return err
	}
	b.key = st.key
	if b.key == nil {
		b.key = newKey()
	}
	if haveSeq {
		b.reserved = st.reserved // no record may claim a seq beyond it
	}
	var saved map[string]uint64
	b.curFile, _, err = b.loadState(cursorFileName, "buffer: cursors unreadable; every upstream restarts at the oldest retained reading", func(p []byte) (err error) {
		saved, err = decodeCursors(p)
		return err
	})
	if err != nil {
		return err
	}

	fresh := len(b.segs) == 0
	var logEnd uint64 = 1
	if !fresh {
		if logEnd, err = b.openTail(); err != nil {
			return err
		}
	}
	switch {
	case haveSeq && st.cleanNext != 0:
		b.next = max(logEnd, st.cleanNext)
	case haveSeq && b.boot != "" && st.boot == b.boot && !fresh:
		b.next = logEnd // a process crash: everything written is in the page cache
		b.log.Info("buffer: recovered after an unclean stop", "next_seq", b.next)
	case haveSeq:
		b.next = max(logEnd, st.reserved)
		b.log.Warn("buffer: recovered after a reboot without a clean stop; seq skips readings that may have been lost",
			"log_end", logEnd, "next_seq", b.next)
	case fresh:
		b.next = 1
	default:
		b.next = min(logEnd, maxSeq) + reserveBlock
		b.log.Warn("buffer: seq state missing; seq skips ahead so none is reused", "log_end", logEnd, "next_seq", b.next)
	}
	// The cursors first: making room for a new tail evicts readings, which
	// counts only those an upstream had not confirmed.
	first := b.next
	if !fresh {
		first = b.segs[0].first
	}
	for _, u := range upstreams {
		c, ok := saved[u]
		if !ok || c < first {
			c = first
		}
		b.cursors[u] = min(c, b.next)
	}
	switch {
	case fresh:
		if err := b.createTail(b.next); err != nil {
			return err
		}
	case b.next > logEnd:
		// Seqs skipped after a power cut lie between segments, never
		// inside one, so evicting a segment counts only readings that
		// existed.
		if err := b.startAfterGap(); err != nil {
			return err
		}
	}
	if err := b.reserve(b.next); err != nil {
		return err
	}
	b.release()
	return nil
}

// loadState opens the state file name and hands its payload to decode. A
// missing file is not decoded; nor is an unreadable one, which is logged
// with warning, saying what that costs, and replaced by the next save.
func (b *Buffer) loadState(name, warning string, decode func([]byte) error) (*statefile.File, bool, error) {
	f := statefile.NewIn(b.fs, filepath.Join(b.dir, name), stateFormat)
	body, err := f.Load()
	if err == nil {
		if err = decode(body); err == nil {
			return f, true, nil
		}
	}
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return f, false, nil
	case errors.Is(err, statefile.ErrCorrupt) || errors.Is(err, errBadRecord):
		b.log.Warn(warning, "error", err)
		return f, false, nil
	}
	return f, false, err
}

// openTail scans the newest segment, cuts a torn tail, rebuilds the
// dictionary and returns the seq after the last record.
func (b *Buffer) openTail() (uint64, error) {
	for _, s := range b.segs[:len(b.segs)-1] {
		fi, err := b.fs.Stat(s.path)
		if err != nil {
			return 0, err
		}
		s.size = fi.Size()
		b.bytes += s.size
	}
	s := b.segs[len(b.segs)-1]
	f, err := b.fs.OpenFile(s.path, os.O_RDWR, 0)
	if err != nil {
		return 0, err
	}
	b.tail = f
	fi, err := f.Stat()
	if err != nil {
		return 0, err
	}
	// A damaged header (torn while the segment was created, or bit rot)
	// costs no frame: each carries its own checksum.
	headerOK, sc, err := b.scanWithHeader(s, f, fi.Size())
	if err != nil {
		return 0, err
	}
	if !headerOK || sc.res.torn {
		cutAt := int64(-1)
		if sc.res.torn {
			cutAt = sc.res.validEnd
		}
		if err := b.repair(f, s, !headerOK, cutAt, sc); err != nil {
			return 0, fmt.Errorf("repair %s: %w", s.path, err)
		}
	}
	s.size, s.indexed, s.end = sc.res.validEnd, true, sc.end
	b.bytes += s.size
	b.dict.merge(sc.defs, sc.refEnd)
	// Without a snapshot in the tail, older segments hold the rest of the
	// dictionary: read back until one has a snapshot.
	haveAll := sc.snapshot
	for i := len(b.segs) - 2; i >= 0 && !haveAll; i-- {
		old, err := b.indexSegment(b.segs[i], b.segs[i].size)
		if err != nil {
			return 0, err
		}
		haveAll = old.snapshot
	}
	_, b.defsWritten = b.dict.since(0)
	b.needSnapshot = !sc.snapshot
	return max(sc.end, s.first), nil
}

// segScan is what a full scan of one segment found.
type segScan struct {
	res      scanResult
	records  int    // valid records
	end      uint64 // seq after the last valid record
	snapshot bool
	defs     []def
	refEnd   uint64 // one past the highest point id referenced
}

// scanWithHeader reads s's header and then the whole segment (see scan).
// When the header is damaged and no frame verifies under the current
// format, the segment is taken for a legacy one.
func (b *Buffer) scanWithHeader(s *segment, f durable.File, size int64) (headerOK bool, sc segScan, err error) {
	headerOK = readHeader(f, s, b.key)
	sc, err = b.scan(s, f, max(size, s.hdrLen))
	if err == nil && !headerOK && sc.records == 0 && size > segHeaderLenV1 {
		s.useFormat(1, nil)
		if legacy, lerr := b.scan(s, f, size); lerr == nil && legacy.records > 0 {
			return false, legacy, nil
		}
		s.useFormat(2, b.key)
	}
	return headerOK, sc, err
}

// scan reads a whole segment, rebuilding its sparse index; corrupt records
// are counted and logged here, once per segment. A record must continue the
// segment's seqs and stay below the seq reservation: whatever lies outside
// was never written by this buffer.
func (b *Buffer) scan(s *segment, f durable.File, size int64) (segScan, error) {
	sc := segScan{end: s.first}
	s.index = s.index[:0]
	res, err := scanSegment(f, s, size, func(rec *record, at int64) error {
		if rec.first < sc.end {
			return fmt.Errorf("%w: seq %d after %d", errBadRecord, rec.first, sc.end)
		}
		if b.reserved != 0 && rec.end() > b.reserved {
			return fmt.Errorf("%w: seqs %d–%d beyond the reservation %d", errBadRecord, rec.first, rec.end()-1, b.reserved)
		}
		refEnd, err := rec.validate()
		if err != nil {
			return err
		}
		sc.refEnd = max(sc.refEnd, refEnd)
		sc.defs = append(sc.defs, rec.defs...)
		sc.snapshot = sc.snapshot || rec.snapshot
		s.addIndex(rec.first, at)
		sc.end = rec.end()
		sc.records++
		return nil
	})
	sc.res = res
	if res.skipped > 0 {
		b.corrupt.Add(uint64(res.skipped))
		b.log.Warn("buffer: corrupt records skipped", "segment", s.path, "records", res.skipped, "bytes", res.skippedBytes)
	}
	if err != nil {
		return sc, fmt.Errorf("scan %s: %w", s.path, err)
	}
	return sc, nil
}

// indexSegment builds a sealed segment's index on first use (Open reads only
// the tail, so start-up does not wait for the whole backlog to be read).
func (b *Buffer) indexSegment(s *segment, size int64) (segScan, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.indexed {
		return segScan{}, nil
	}
	f, err := b.fs.OpenFile(s.path, os.O_RDONLY, 0)
	if err != nil {
		return segScan{}, err
	}
	defer f.Close()
	headerOK, sc, err := b.scanWithHeader(s, f, size)
	if err != nil {
		return sc, err
	}
	if !headerOK {
		b.repairSealed(s, sc)
	}
	b.dict.merge(sc.defs, sc.refEnd)
	s.indexed, s.end = true, sc.end
	return sc, nil
}

// repairSealed rewrites the damaged header of a sealed segment whose frames
// scan found. Its readings are served whatever happens here, so a failure
// is only logged (and the repair tried again at the next Open).
func (b *Buffer) repairSealed(s *segment, sc segScan) {
	f, err := b.fs.OpenFile(s.path, os.O_RDWR, 0)
	if err == nil {
		err = errors.Join(b.repair(f, s, true, -1, sc), f.Close())
	} else {
		b.corrupt.Add(1) // repair counts it otherwise
	}
	if err != nil {
		b.log.Warn("buffer: segment header damaged; could not rewrite it", "segment", s.path, "error", err)
	}
}

// createTail starts a new segment whose first seq is first. On failure (a
// full disk) it leaves nothing behind, so a later attempt can succeed.
func (b *Buffer) createTail(first uint64) error {
	s := &segment{first: first, path: filepath.Join(b.dir, segName(first)), indexed: true, size: segHeaderLen, end: first}
	s.useFormat(2, b.key)
	f, err := b.fs.OpenFile(s.path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o640)
	if err != nil {
		return err
	}
	// The header is synced with the entry, so a power cut never leaves a
	// segment whose header looks damaged.
	_, err = f.WriteAt(s.header(b.key), 0)
	if err == nil {
		err = f.Datasync()
	}
	if err == nil {
		err = b.fs.SyncDir(b.dir)
	}
	if err != nil {
		_ = f.Close()
		if rerr := b.fs.Remove(s.path); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
			b.log.Warn("buffer: removing a segment that could not be started", "segment", s.path, "error", rerr)
		}
		return err
	}
	if b.tail != nil {
		if err := b.tail.Close(); err != nil {
			b.log.Warn("buffer: closing full segment", "error", err)
		}
	}
	b.tail = f
	b.segs = append(b.segs, s)
	b.bytes += s.size
	b.needSnapshot = true
	return nil
}

// startAfterGap starts a new tail at b.next, past seqs that were skipped;
// an empty tail is replaced rather than kept.
func (b *Buffer) startAfterGap() error {
	if t := b.tailSeg(); t.size <= t.hdrLen {
		if err := b.tail.Close(); err != nil {
			return err
		}
		if err := b.fs.Remove(t.path); err != nil {
			return err
		}
		b.bytes -= t.size
		b.segs, b.tail = b.segs[:len(b.segs)-1], nil
		return b.newTail()
	}
	return b.roll()
}

// reserve makes seqs below need+reserveBlock durable before any is used,
// so a reboot never hands one out twice. The caller holds mu.
func (b *Buffer) reserve(need uint64) error {
	if need > maxSeq {
		return ErrSeqExhausted
	}
	r := need + reserveBlock
	if err := b.seqFile.Save(seqState{boot: b.boot, reserved: r, key: b.key}.encode()); err != nil {
		return fmt.Errorf("seq reservation: %w", err)
	}
	b.reserved = r
	return nil
}
