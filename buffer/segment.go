package buffer

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/fieldgate/fieldgate/internal/durable"
)

const (
	// A segment starts with a magic and format version; format 2 adds the
	// buffer's 8-byte key (see frameSeal).
	segMagic       = "fgbuf\x00\x00"
	segHeaderV1    = segMagic + "\x01"
	segHeaderV2    = segMagic + "\x02"
	keyLen         = 8
	segHeaderLenV1 = int64(len(segHeaderV1))
	segHeaderLen   = int64(len(segHeaderV2)) + keyLen // the current format's
	segExt         = ".seg"
	// indexEvery is the spacing of the sparse index: a Read scans at most
	// this many bytes to find its first record, and the index costs
	// 16 bytes per this many bytes of backlog.
	indexEvery = 64 << 10
	// Reads start with small chunks (a bridge reading a few entries should
	// not pull 64 KiB) and double while a scan goes on.
	minReadChunk = 4 << 10
	readChunk    = 64 << 10
)

// segment is one log file. Its name is the seq of its first reading, so the
// seq range of a sealed segment is [first, next segment's first).
type segment struct {
	first  uint64
	path   string
	size   int64     // valid bytes; grows under Buffer.mu while this is the tail
	hdrLen int64     // where frames start
	seal   frameSeal // how its frames are checksummed
	// end is the seq after its last record, once known (scanned, or
	// written by this process); 0 until then. Seqs skipped after a power
	// cut lie between segments, never inside one.
	end uint64

	mu      sync.Mutex // guards index and indexed
	indexed bool
	index   []indexEntry // sparse: one record start every indexEvery bytes
}

type indexEntry struct {
	seq uint64 // first seq of the record at off
	off int64
}

func segName(first uint64) string { return fmt.Sprintf("%020d%s", first, segExt) }

// parseSegName returns the first seq named by a segment file name.
func parseSegName(name string) (uint64, bool) {
	s, ok := strings.CutSuffix(name, segExt)
	if !ok || len(s) != 20 {
		return 0, false
	}
	n, err := strconv.ParseUint(s, 10, 64)
	return n, err == nil
}

// listSegments returns the segment files in dir, oldest first.
func listSegments(fsys durable.FS, dir string) ([]*segment, error) {
	des, err := fsys.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var segs []*segment
	for _, de := range des { // ReadDir sorts by name, and names sort by seq
		first, ok := parseSegName(de.Name())
		if !ok || !de.Type().IsRegular() {
			continue
		}
		segs = append(segs, &segment{first: first, path: filepath.Join(dir, de.Name())})
	}
	return segs, nil
}

// addIndex records a record start if it is far enough from the previous one.
// The caller holds s.mu or owns s exclusively.
func (s *segment) addIndex(seq uint64, off int64) {
	if n := len(s.index); n == 0 || off-s.index[n-1].off >= indexEvery {
		s.index = append(s.index, indexEntry{seq, off})
	}
}

// seek returns the offset of the last indexed record starting at or before
// seq. The caller holds s.mu.
func (s *segment) seek(seq uint64) int64 {
	off := s.hdrLen
	for _, e := range s.index { // short: one entry per indexEvery bytes
		if e.seq > seq {
			break
		}
		off = e.off
	}
	return off
}

// frameReader walks the frames of a segment through a bounded window.
// Slices it returns are valid until its next call.
type frameReader struct {
	r      io.ReaderAt
	seal   frameSeal
	end    int64 // bytes at or past end are never read
	off    int64 // next frame
	buf    []byte
	bufOff int64
	chunk  int // next refill size
}

// window returns up to n bytes at file offset at (fewer only at end).
func (fr *frameReader) window(at int64, n int) ([]byte, error) {
	if at >= fr.end {
		return nil, nil
	}
	if rem := fr.end - at; int64(n) > rem {
		n = int(rem)
	}
	if at >= fr.bufOff && at+int64(n) <= fr.bufOff+int64(len(fr.buf)) {
		i := at - fr.bufOff
		return fr.buf[i : i+int64(n)], nil
	}
	fr.chunk = min(max(2*fr.chunk, minReadChunk), readChunk)
	size := int(min(int64(max(n, fr.chunk)), fr.end-at))
	if cap(fr.buf) < size {
		fr.buf = make([]byte, size)
	}
	fr.buf = fr.buf[:size]
	k, err := fr.r.ReadAt(fr.buf, at)
	fr.buf, fr.bufOff = fr.buf[:k], at
	if k < size {
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, err
		}
		fr.end = at + int64(k) // the file is shorter than expected
	}
	return fr.buf[:min(n, k)], nil
}

// frameAt returns the payload and length of a valid frame at at, or
// errBadFrame.
func (fr *frameReader) frameAt(at int64) ([]byte, int64, error) {
	h, err := fr.window(at, frameHeaderLen)
	if err != nil {
		return nil, 0, err
	}
	if len(h) < frameHeaderLen || h[0] != frameMagic0 || h[1] != frameMagic1 {
		return nil, 0, errBadFrame
	}
	l := int64(h[2]) | int64(h[3])<<8 | int64(h[4])<<16 | int64(h[5])<<24
	if l > maxPayload || at+frameHeaderLen+l > fr.end {
		return nil, 0, errBadFrame
	}
	w, err := fr.window(at, frameHeaderLen+int(l))
	if err != nil {
		return nil, 0, err
	}
	p, n, err := parseFrame(w, fr.seal, at)
	return p, int64(n), err
}

// next returns the frame at fr.off and advances past it; io.EOF at the end,
// errBadFrame (with at set) where no valid frame starts.
func (fr *frameReader) next() (payload []byte, at int64, err error) {
	at = fr.off
	if at >= fr.end {
		return nil, at, io.EOF
	}
	p, n, err := fr.frameAt(at)
	if err != nil {
		return nil, at, err
	}
	fr.off = at + n
	return p, at, nil
}

// resync moves fr.off to the next valid frame after a bad one at bad,
// reporting false when none follows.
func (fr *frameReader) resync(bad int64) (bool, error) {
	for p := bad + 1; p+frameHeaderLen <= fr.end; {
		w, err := fr.window(p, readChunk)
		if err != nil {
			return false, err
		}
		i := bytes.Index(w, frameMagic)
		if i < 0 {
			if len(w) < len(frameMagic) {
				return false, nil
			}
			p += int64(len(w) - 1) // the magic may straddle windows
			continue
		}
		p += int64(i)
		_, _, err = fr.frameAt(p)
		switch {
		case err == nil:
			fr.off = p
			return true, nil
		case !errors.Is(err, errBadFrame):
			return false, err
		}
		p++
	}
	return false, nil
}

// scanResult tells what a full scan of a segment found.
type scanResult struct {
	validEnd     int64 // just past the last valid frame
	skipped      int   // bad frames and records skipped
	skippedBytes int64
	torn         bool // bytes after validEnd hold no valid frame
}

// scanSegment reads every record of s in [s.hdrLen, end) and calls fn with
// each decodable one and its offset; a record fn rejects counts as
// corrupt. Bad frames are skipped by resynchronising on the next valid frame.
func scanSegment(r io.ReaderAt, s *segment, end int64, fn func(rec *record, at int64) error) (scanResult, error) {
	fr := frameReader{r: r, seal: s.seal, end: end, off: s.hdrLen}
	res := scanResult{validEnd: s.hdrLen}
	for {
		p, at, err := fr.next()
		switch {
		case errors.Is(err, io.EOF):
			return res, nil
		case errors.Is(err, errBadFrame):
			ok, err := fr.resync(at)
			if err != nil {
				return res, err
			}
			if !ok {
				res.torn = true
				return res, nil
			}
			res.skipped++
			res.skippedBytes += fr.off - at
			continue
		case err != nil:
			return res, err
		}
		res.validEnd = fr.off
		rec, err := parseRecord(p)
		if err == nil {
			err = fn(&rec, at)
		}
		if err != nil {
			res.skipped++
			res.skippedBytes += fr.off - at
		}
	}
}

// readHeader learns s's format from the header of f, the segment's file,
// and reports whether the header is intact. A damaged header is taken for
// the current format with the buffer's key; the caller may retry the
// legacy format when no frame verifies under it.
func readHeader(f io.ReaderAt, s *segment, key []byte) bool {
	var h [segHeaderLen]byte
	n, _ := f.ReadAt(h[:], 0)
	switch {
	case n >= len(segHeaderV2)+keyLen && string(h[:len(segHeaderV2)]) == segHeaderV2:
		s.useFormat(2, h[len(segHeaderV2):])
		return true
	case n >= len(segHeaderV1) && string(h[:len(segHeaderV1)]) == segHeaderV1:
		s.useFormat(1, nil)
		return true
	}
	s.useFormat(2, key)
	return false
}

// useFormat sets where s's frames start and how they are checksummed.
func (s *segment) useFormat(version int, key []byte) {
	if version == 1 {
		s.hdrLen, s.seal = segHeaderLenV1, frameSeal{legacy: true}
		return
	}
	s.hdrLen, s.seal = segHeaderLen, newSeal(key, s.first)
}

// header returns the header s's format calls for, with key for format 2.
func (s *segment) header(key []byte) []byte {
	if s.seal.legacy {
		return []byte(segHeaderV1)
	}
	return append([]byte(segHeaderV2), key...)
}
