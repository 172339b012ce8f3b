package buffer

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"sort"

	"github.com/fieldgate/fieldgate/internal/durable"
	"github.com/fieldgate/fieldgate/internal/reading"
)

// Read returns up to limit entries with Seq >= from, in seq order. A from
// below the oldest retained reading starts at the oldest; a from at or past
// Next returns none. The entries may be shared with the buffer's cache of
// recent records: callers must not modify them.
func (b *Buffer) Read(upstream string, from uint64, limit int) ([]Entry, error) {
	if limit <= 0 {
		return nil, nil
	}
	for attempt := 0; ; attempt++ {
		views, start, hint, es, err := b.plan(upstream, from, limit)
		if views == nil || err != nil {
			return es, err
		}
		es, hint, err = b.readDisk(views, start, limit, hint)
		if errors.Is(err, fs.ErrNotExist) && attempt < 3 {
			continue // a segment was released meanwhile; from is clamped anew
		}
		if err != nil {
			return nil, fmt.Errorf("buffer %s: read: %w", b.dir, err)
		}
		b.mu.Lock()
		if _, ok := b.cursors[upstream]; ok {
			b.hints[upstream] = hint
		}
		b.mu.Unlock()
		return es, nil
	}
}

// readHint remembers where an upstream's last Read ended (the record holding
// its last entry), so reading a backlog in small steps does not rescan from
// the sparse index each time.
type readHint struct {
	s   *segment
	off int64
	seq uint64 // first seq of the record at off
}

// segView is a segment as it was when a Read was planned.
type segView struct {
	s      *segment
	size   int64
	sealed bool
}

// plan serves a Read from the cache or lists the segments to read.
func (b *Buffer) plan(upstream string, from uint64, limit int) ([]segView, uint64, readHint, []Entry, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, 0, readHint{}, nil, ErrClosed
	}
	if _, ok := b.cursors[upstream]; !ok {
		return nil, 0, readHint{}, nil, fmt.Errorf("%w %q", ErrUnknownUpstream, upstream)
	}
	from = max(from, b.segs[0].first)
	if from >= b.next {
		return nil, 0, readHint{}, nil, nil
	}
	if es, ok := b.cache.read(from, limit); ok {
		return nil, 0, readHint{}, es, nil
	}
	i := sort.Search(len(b.segs), func(i int) bool { return b.segs[i].first > from }) - 1
	views := make([]segView, 0, len(b.segs)-i)
	for j, s := range b.segs[i:] {
		views = append(views, segView{s: s, size: s.size, sealed: i+j < len(b.segs)-1})
	}
	return views, from, b.hints[upstream], nil, nil
}

func (b *Buffer) readDisk(views []segView, from uint64, limit int, hint readHint) ([]Entry, readHint, error) {
	out := make([]Entry, 0, min(limit, cacheEntries))
	for _, v := range views {
		if len(out) >= limit {
			break
		}
		if v.sealed {
			if _, err := b.indexSegment(v.s, v.size); err != nil {
				return nil, hint, err
			}
		}
		v.s.mu.Lock()
		off := v.s.seek(from)
		v.s.mu.Unlock()
		if hint.s == v.s && hint.seq <= from && hint.off > off {
			off = hint.off // every record before it ends below from
		}
		f, err := b.fs.OpenFile(v.s.path, os.O_RDONLY, 0)
		if err != nil {
			return nil, hint, err
		}
		n := len(out)
		var last readHint
		out, last, err = b.readSegment(v.s, f, off, v.size, from, limit, out)
		_ = f.Close() // read-only
		if err != nil {
			return nil, hint, err
		}
		if len(out) > n {
			last.s, hint = v.s, last
		}
	}
	return out, hint, nil
}

// readSegment appends entries from one segment, returning where the record
// holding the last one starts. Bad records were counted when the segment was
// scanned, so here they are only stepped over.
func (b *Buffer) readSegment(s *segment, f durable.File, off, size int64, from uint64, limit int, out []Entry) ([]Entry, readHint, error) {
	fr := frameReader{r: f, seal: s.seal, off: off, end: size}
	var last readHint
	var prevEnd uint64
	unknown := 0
	for len(out) < limit {
		p, at, err := fr.next()
		switch {
		case errors.Is(err, io.EOF):
			return out, last, nil
		case errors.Is(err, errBadFrame):
			ok, err := fr.resync(at)
			if err != nil || !ok {
				return out, last, err
			}
			continue
		case err != nil:
			return out, last, err
		}
		rec, err := parseRecord(p)
		if err != nil || rec.first < prevEnd || rec.end() <= from {
			continue // undecodable or out of order: rejected by the scan too
		}
		prevEnd = rec.end()
		last.off, last.seq = at, rec.first
		n := len(out)
		err = rec.each(func(seq uint64, id uint32, us int64, v reading.Value) bool {
			if seq < from {
				return true
			}
			k, ok := b.dict.lookup(id)
			if !ok {
				unknown++
				return true
			}
			out = append(out, Entry{Seq: seq, Reading: reading.Reading{Adapter: k.adapter, Point: k.point, Time: readingTime(us), Value: v}})
			return len(out) < limit
		})
		if err != nil {
			out = out[:n]
			b.log.Debug("buffer: bad record skipped", "segment", f.Name(), "offset", at, "error", err)
		}
	}
	if unknown > 0 {
		b.log.Warn("buffer: readings of undefined points skipped", "segment", f.Name(), "readings", unknown)
	}
	return out, last, nil
}

// recentCache keeps the newest records' entries (contiguous seqs, at most
// cacheEntries) so upstreams that keep up are served from memory.
type recentCache struct {
	recs [][]Entry // oldest first
	n    int
}

func (c *recentCache) add(es []Entry) {
	if len(es) > cacheEntries {
		c.recs, c.n = nil, 0
		return
	}
	for c.n+len(es) > cacheEntries {
		c.n -= len(c.recs[0])
		c.recs[0] = nil
		c.recs = c.recs[1:]
	}
	c.recs = append(c.recs, es)
	c.n += len(es)
}

// read returns entries from from on if the cache reaches back that far.
func (c *recentCache) read(from uint64, limit int) ([]Entry, bool) {
	if len(c.recs) == 0 || from < c.recs[0][0].Seq {
		return nil, false
	}
	i := sort.Search(len(c.recs), func(i int) bool { r := c.recs[i]; return r[len(r)-1].Seq >= from })
	if r := c.recs[i][from-c.recs[i][0].Seq:]; len(r) >= limit || i == len(c.recs)-1 {
		n := min(len(r), limit)
		return r[:n:n], true // within one record: shared, not copied
	}
	newest := c.recs[len(c.recs)-1]
	out := make([]Entry, 0, min(uint64(limit), newest[len(newest)-1].Seq+1-from))
	for ; i < len(c.recs) && len(out) < limit; i++ {
		r := c.recs[i]
		k := 0
		if r[0].Seq < from {
			k = int(from - r[0].Seq)
		}
		out = append(out, r[k:min(len(r), k+limit-len(out))]...)
	}
	return out, true
}
