package buffer

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"time"

	"github.com/fieldgate/fieldgate/internal/reading"
)

// Frame layout: magic (2 bytes), payload length (uint32 LE), CRC32C of the
// length bytes and the payload (uint32 LE), payload.
const (
	frameMagic0    = 0xF6
	frameMagic1    = 0x1B
	frameHeaderLen = 10
	// maxPayload bounds one record so a corrupt length can never make the
	// reader allocate more than this.
	maxPayload = 4 << 20
	// minReadingLen is the smallest encoded reading: id, time delta, kind
	// and a one-byte value. It bounds the count a header may claim.
	minReadingLen = 4
	flagSnapshot  = 1 // the record's definitions are the whole dictionary
)

var (
	castagnoli = crc32.MakeTable(crc32.Castagnoli)
	frameMagic = []byte{frameMagic0, frameMagic1}

	// errBadFrame marks bytes that are not a whole, checksummed frame.
	errBadFrame = errors.New("bad frame")
	// errBadRecord marks a frame whose payload does not decode.
	errBadRecord = errors.New("bad record")
)

// pointKey names a point; the dictionary maps it to a small id.
type pointKey struct{ adapter, point string }

// def is one dictionary definition carried in a record.
type def struct {
	id  uint32
	key pointKey
}

// record is a decoded record header; the readings stay encoded in body until
// each walks them, so skipping a record costs no allocation.
type record struct {
	snapshot bool
	first    uint64 // seq of the first reading
	count    int
	base     int64 // µs since the Unix epoch; the first reading's time
	defs     []def
	body     []byte
}

func (r *record) end() uint64 { return r.first + uint64(r.count) }

// encodeRecord appends one framed record holding rs (with dictionary ids ids)
// numbered from first, preceded by the definitions defs, to be written at
// offset off of the segment sealed by seal.
func encodeRecord(dst []byte, seal frameSeal, off int64, first uint64, snapshot bool, defs []def, ids []uint32, rs []reading.Reading) []byte {
	start := len(dst)
	dst = append(dst, frameMagic0, frameMagic1, 0, 0, 0, 0, 0, 0, 0, 0)
	var flags byte
	if snapshot {
		flags = flagSnapshot
	}
	dst = append(dst, flags)
	dst = binary.AppendUvarint(dst, first)
	dst = binary.AppendUvarint(dst, uint64(len(rs)))
	var prev int64
	if len(rs) > 0 {
		prev = rs[0].Time.UnixMicro()
	}
	dst = binary.AppendVarint(dst, prev)
	dst = binary.AppendUvarint(dst, uint64(len(defs)))
	for _, d := range defs {
		dst = binary.AppendUvarint(dst, uint64(d.id))
		dst = appendString(dst, d.key.adapter)
		dst = appendString(dst, d.key.point)
	}
	for i, r := range rs {
		us := r.Time.UnixMicro()
		dst = binary.AppendUvarint(dst, uint64(ids[i]))
		dst = binary.AppendVarint(dst, us-prev) // wraps consistently with decode
		prev = us
		dst = appendValue(dst, r.Value)
	}
	payload := dst[start+frameHeaderLen:]
	binary.LittleEndian.PutUint32(dst[start+2:], uint32(len(payload)))
	binary.LittleEndian.PutUint32(dst[start+6:], seal.sum(off, dst[start+2:start+6], payload))
	return dst
}

// frameSeal computes the checksums of one segment's frames. In the current
// format (2) a checksum covers, besides the frame's length and payload, the
// buffer's secret key, the segment's first seq and the frame's offset, so
// no bytes can pass for a frame anywhere but where the buffer wrote them: a
// frame a device smuggles into a string value, or one copied from
// elsewhere, never verifies, and resynchronising after damage can only
// land on real records. Format 1 segments, written before, checksum the
// length and payload only.
type frameSeal struct {
	legacy bool   // format 1
	seed   uint32 // format 2: CRC-32C of the key and the segment's first seq
}

func newSeal(key []byte, first uint64) frameSeal {
	b := binary.LittleEndian.AppendUint64(append([]byte(nil), key...), first)
	return frameSeal{seed: crc32.Checksum(b, castagnoli)}
}

func (s frameSeal) sum(off int64, lenBytes, payload []byte) uint32 {
	if s.legacy {
		return crc32.Update(crc32.Checksum(lenBytes, castagnoli), castagnoli, payload)
	}
	var o [8]byte
	binary.LittleEndian.PutUint64(o[:], uint64(off))
	c := crc32.Update(s.seed, castagnoli, o[:])
	c = crc32.Update(c, castagnoli, lenBytes)
	return crc32.Update(c, castagnoli, payload)
}

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

// appendValue writes the kind byte and the payload: floats as their 8 raw
// bytes, ints zig-zag varint, strings length-prefixed, every other kind
// (uint, bool, kinds added later) as a varint of its bits.
func appendValue(dst []byte, v reading.Value) []byte {
	k := v.Kind()
	dst = append(dst, byte(k))
	switch k {
	case reading.KindFloat:
		return binary.LittleEndian.AppendUint64(dst, v.Bits())
	case reading.KindInt:
		return binary.AppendVarint(dst, int64(v.Bits()))
	case reading.KindString:
		return appendString(dst, v.Str())
	}
	return binary.AppendUvarint(dst, v.Bits())
}

// parseFrame checks the frame at the start of b, which is at offset off of
// the segment sealed by seal, and returns its payload and total length.
func parseFrame(b []byte, seal frameSeal, off int64) (payload []byte, n int, err error) {
	if len(b) < frameHeaderLen || b[0] != frameMagic0 || b[1] != frameMagic1 {
		return nil, 0, errBadFrame
	}
	l := binary.LittleEndian.Uint32(b[2:])
	if l > maxPayload || uint64(len(b)-frameHeaderLen) < uint64(l) {
		return nil, 0, errBadFrame
	}
	payload = b[frameHeaderLen : frameHeaderLen+int(l)]
	if seal.sum(off, b[2:6], payload) != binary.LittleEndian.Uint32(b[6:]) {
		return nil, 0, errBadFrame
	}
	return payload, frameHeaderLen + int(l), nil
}

// decoder reads varints and strings from a payload, remembering the first
// error so callers check once.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: %s", errBadRecord, what)
	}
}

func (d *decoder) uvarint(what string) uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail(what)
		return 0
	}
	d.b = d.b[n:]
	return v
}

// varint reads a zig-zag varint, which binary.AppendVarint writes as the
// uvarint of the value's zig-zag form.
func (d *decoder) varint(what string) int64 {
	u := d.uvarint(what)
	return int64(u>>1) ^ -int64(u&1)
}

func (d *decoder) bytes(n uint64, what string) []byte {
	if d.err != nil {
		return nil
	}
	if uint64(len(d.b)) < n {
		d.fail(what)
		return nil
	}
	b := d.b[:n]
	d.b = d.b[n:]
	return b
}

func (d *decoder) byte(what string) byte {
	b := d.bytes(1, what)
	if b == nil {
		return 0
	}
	return b[0]
}

func (d *decoder) string(what string) string {
	return string(d.bytes(d.uvarint(what), what))
}

func (d *decoder) id(what string) uint32 {
	v := d.uvarint(what)
	if v > math.MaxUint32 {
		d.fail(what)
	}
	return uint32(v)
}

// parseRecord decodes a payload's header and definitions. Counts are checked
// against the bytes present, so corrupt input never causes a large
// allocation.
func parseRecord(p []byte) (record, error) {
	d := decoder{b: p}
	var r record
	flags := d.byte("flags")
	if flags&^flagSnapshot != 0 {
		d.fail("unknown flags")
	}
	r.snapshot = flags&flagSnapshot != 0
	r.first = d.uvarint("first seq")
	count := d.uvarint("count")
	r.base = d.varint("base time")
	ndefs := d.uvarint("definition count")
	if d.err == nil && (count > uint64(len(d.b))/minReadingLen || ndefs > uint64(len(d.b))/3) {
		d.fail("count exceeds record")
	}
	if d.err == nil && r.first+count < r.first {
		d.fail("seq overflow")
	}
	if d.err != nil {
		return record{}, d.err
	}
	r.count = int(count)
	if ndefs > 0 {
		r.defs = make([]def, 0, ndefs)
	}
	for range ndefs {
		df := def{id: d.id("definition id")}
		df.key.adapter = d.string("adapter name")
		df.key.point = d.string("point name")
		r.defs = append(r.defs, df)
	}
	if d.err != nil {
		return record{}, d.err
	}
	r.body = d.b
	return r, nil
}

// each decodes the readings in order, calling fn until it returns false. It
// fails on malformed or trailing bytes, so a full walk validates the record.
func (r *record) each(fn func(seq uint64, id uint32, us int64, v reading.Value) bool) error {
	d := decoder{b: r.body}
	us := r.base
	for i := range r.count {
		id := d.id("point id")
		us += d.varint("time delta")
		k := reading.Kind(d.byte("kind"))
		var v reading.Value
		switch k {
		case reading.KindFloat:
			if b := d.bytes(8, "float"); b != nil {
				v = reading.FromBits(k, binary.LittleEndian.Uint64(b))
			}
		case reading.KindInt:
			v = reading.FromBits(k, uint64(d.varint("int")))
		case reading.KindString:
			v = reading.String(d.string("string"))
		default:
			v = reading.FromBits(k, d.uvarint("bits"))
		}
		if d.err != nil {
			return d.err
		}
		if !fn(r.first+uint64(i), id, us, v) {
			return nil
		}
	}
	if len(d.b) != 0 {
		return fmt.Errorf("%w: %d trailing bytes", errBadRecord, len(d.b))
	}
	return nil
}

// validate walks every reading, returning one past the highest point id
// referenced.
func (r *record) validate() (refEnd uint64, err error) {
	err = r.each(func(_ uint64, id uint32, _ int64, _ reading.Value) bool {
		refEnd = max(refEnd, uint64(id)+1)
		return true
	})
	return refEnd, err
}

// readingTime is the time a reading gets back from the log: microseconds,
// UTC, no monotonic clock. Cached entries use it too so the cache and the
// disk agree.
func readingTime(us int64) time.Time { return time.UnixMicro(us).UTC() }
