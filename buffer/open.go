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
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("buffer %s: %w", dir, err)
	}
	lock, err := lockDir(filepath.Join(dir, lockFileName))
	if err != nil {
		return nil, fmt.Errorf("buffer %s: %w", dir, err)
	}
	b := &Buffer{
		dir:     dir,
		opts:    opts,
		log:     opts.Logger,
		lock:    lock,
		boot:    readBootID(opts.BootIDPath),
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
		b.wg.Add(1)
		go b.syncLoop()
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
	if b.segs, err = listSegments(b.dir); err != nil {
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
		b.next = logEnd + reserveBlock
		b.log.Warn("buffer: seq state missing; seq skips ahead so none is reused", "log_end", logEnd, "next_seq", b.next)
	}
	if fresh {
		if err := b.createTail(b.next); err != nil {
			return err
		}
	}
	if err := b.reserve(b.next); err != nil {
		return err
	}
	first := b.segs[0].first
	for _, u := range upstreams {
		c, ok := saved[u]
		if !ok || c < first {
			c = first
		}
		b.cursors[u] = min(c, b.next)
	}
	b.release()
	return nil
}

// loadState opens the state file name and hands its payload to decode. A
// missing file is not decoded; nor is an unreadable one, which is logged
// with warning, saying what that costs, and replaced by the next save.
func (b *Buffer) loadState(name, warning string, decode func([]byte) error) (*statefile.File, bool, error) {
	f := statefile.New(filepath.Join(b.dir, name), stateFormat)
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
		fi, err := os.Stat(s.path)
		if err != nil {
			return 0, err
		}
		s.size = fi.Size()
		b.bytes += s.size
	}
	s := b.segs[len(b.segs)-1]
	f, err := os.OpenFile(s.path, os.O_RDWR, 0)
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
	headerOK := checkHeader(f)
	sc, err := b.scan(s, f, max(fi.Size(), segHeaderLen))
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
	s.size, s.indexed = sc.res.validEnd, true
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

// scan reads a whole segment, rebuilding its sparse index; corrupt records
// are counted and logged here, once per segment.
func (b *Buffer) scan(s *segment, f *os.File, size int64) (segScan, error) {
	sc := segScan{end: s.first}
	s.index = s.index[:0]
	res, err := scanSegment(f, size, func(rec *record, at int64) error {
		if rec.first < sc.end {
			return fmt.Errorf("%w: seq %d after %d", errBadRecord, rec.first, sc.end)
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
	f, err := os.Open(s.path)
	if err != nil {
		return segScan{}, err
	}
	defer f.Close()
	headerOK := checkHeader(f)
	sc, err := b.scan(s, f, size)
	if err != nil {
		return sc, err
	}
	if !headerOK {
		b.repairSealed(s, sc)
	}
	b.dict.merge(sc.defs, sc.refEnd)
	s.indexed = true
	return sc, nil
}

// repairSealed rewrites the damaged header of a sealed segment whose frames
// scan found. Its readings are served whatever happens here, so a failure
// is only logged (and the repair tried again at the next Open).
func (b *Buffer) repairSealed(s *segment, sc segScan) {
	f, err := os.OpenFile(s.path, os.O_RDWR, 0)
	if err == nil {
		err = errors.Join(b.repair(f, s, true, -1, sc), f.Close())
	} else {
		b.corrupt.Add(1) // repair counts it otherwise
	}
	if err != nil {
		b.log.Warn("buffer: segment header damaged; could not rewrite it", "segment", s.path, "error", err)
	}
}

func (b *Buffer) createTail(first uint64) error {
	s := &segment{first: first, path: filepath.Join(b.dir, segName(first)), indexed: true, size: segHeaderLen}
	f, err := os.OpenFile(s.path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o640)
	if err != nil {
		return err
	}
	if _, err := f.WriteAt([]byte(segHeader), 0); err != nil {
		_ = f.Close()
		return err
	}
	if err := durable.SyncDir(b.dir); err != nil {
		_ = f.Close()
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

// reserve makes seqs below need+reserveBlock durable before any is used,
// so a reboot never hands one out twice. The caller holds mu.
func (b *Buffer) reserve(need uint64) error {
	r := need + reserveBlock
	if err := b.seqFile.Save(seqState{boot: b.boot, reserved: r}.encode()); err != nil {
		return fmt.Errorf("seq reservation: %w", err)
	}
	b.reserved = r
	return nil
}
