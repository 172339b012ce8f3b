package buffer

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/fieldgate/fieldgate/internal/reading"
)

// testKey seals the test's frames, as a buffer's key does.
var testKey = []byte("testkey!")

// testSegment is a format 2 segment starting at seq 1 sealed by testKey.
func testSegment() *segment {
	s := &segment{first: 1}
	s.useFormat(2, testKey)
	return s
}

// seedRecords are frames sealed to lie first in testSegment.
func seedRecords() [][]byte {
	seal := testSegment().seal
	rs := batch(1, 3)
	rs[1].Value = reading.String("ok")
	rs[2].Value = reading.Int(-5)
	defs := []def{{0, pointKey{"boiler", "p0"}}, {1, pointKey{"boiler", "p1"}}, {2, pointKey{"boiler", "p2"}}}
	full := encodeRecord(nil, seal, segHeaderLen, 42, true, defs, []uint32{0, 1, 2}, rs)
	return [][]byte{
		full,
		encodeRecord(nil, seal, segHeaderLen, 1, false, nil, []uint32{7}, batch(0, 1)),
		encodeRecord(nil, seal, segHeaderLen, 1<<40, false, nil, nil, nil),
		full[:len(full)-3],
		full[frameHeaderLen:],
		{},
	}
}

// FuzzDecode feeds arbitrary bytes to the frame and record decoders and to a
// segment scan: they must never panic, and whatever decodes must re-encode
// to the same readings.
func FuzzDecode(f *testing.F) {
	for _, s := range seedRecords() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		s := testSegment()
		if p, n, err := parseFrame(data, s.seal, segHeaderLen); err == nil {
			if n > len(data) {
				t.Fatalf("frame length %d beyond %d bytes", n, len(data))
			}
			roundTrip(t, p)
		}
		roundTrip(t, data)
		seg := append(s.header(testKey), data...)
		_, err := scanSegment(bytes.NewReader(seg), s, int64(len(seg)), func(rec *record, _ int64) error {
			_, err := rec.validate()
			return err
		})
		if err != nil {
			t.Fatalf("scan of in-memory bytes failed: %v", err)
		}
	})
}

type decoded struct {
	seq uint64
	id  uint32
	us  int64
	v   reading.Value
}

func decodeAll(p []byte) (record, []decoded, error) {
	rec, err := parseRecord(p)
	if err != nil {
		return rec, nil, err
	}
	var out []decoded
	err = rec.each(func(seq uint64, id uint32, us int64, v reading.Value) bool {
		out = append(out, decoded{seq, id, us, v})
		return true
	})
	return rec, out, err
}

func roundTrip(t *testing.T, p []byte) {
	rec, got, err := decodeAll(p)
	if err != nil {
		if !errors.Is(err, errBadRecord) {
			t.Fatalf("decode error %v is not errBadRecord", err)
		}
		return
	}
	ids := make([]uint32, len(got))
	rs := make([]reading.Reading, len(got))
	for i, d := range got {
		ids[i] = d.id
		rs[i] = reading.Reading{Time: time.UnixMicro(d.us), Value: d.v}
	}
	seal := testSegment().seal
	frame := encodeRecord(nil, seal, 0, rec.first, rec.snapshot, rec.defs, ids, rs)
	p2, _, err := parseFrame(frame, seal, 0)
	if err != nil {
		t.Fatalf("re-encoded frame: %v", err)
	}
	rec2, again, err := decodeAll(p2)
	if err != nil {
		t.Fatalf("re-encoded record does not decode: %v", err)
	}
	if rec2.first != rec.first || rec2.snapshot != rec.snapshot || len(rec2.defs) != len(rec.defs) || len(again) != len(got) {
		t.Fatalf("round trip changed the record: %+v -> %+v", rec, rec2)
	}
	for i := range rec.defs {
		if rec.defs[i] != rec2.defs[i] {
			t.Fatalf("definition %d: %+v -> %+v", i, rec.defs[i], rec2.defs[i])
		}
	}
	for i := range got {
		if got[i] != again[i] {
			t.Fatalf("reading %d: %+v -> %+v", i, got[i], again[i])
		}
	}
}

func TestDecodeRejects(t *testing.T) {
	good := seedRecords()[0]
	payload := good[frameHeaderLen:]
	for _, tc := range []struct {
		name string
		p    []byte
	}{
		{"empty", nil},
		{"unknown flag", append([]byte{0x80}, payload[1:]...)},
		{"truncated", payload[:len(payload)-1]},
		{"trailing byte", append(append([]byte{}, payload...), 0)},
		{"huge count", []byte{0, 1, 0xFF, 0xFF, 0xFF, 0x0F, 0, 0}},
		{"huge string", []byte{0, 1, 0, 0, 1, 0, 0xFF, 0xFF, 0xFF, 0x0F}},
	} {
		if _, _, err := decodeAll(tc.p); !errors.Is(err, errBadRecord) {
			t.Errorf("%s: error %v, want errBadRecord", tc.name, err)
		}
	}
	if _, _, err := parseFrame(good[:len(good)-1], testSegment().seal, segHeaderLen); !errors.Is(err, errBadFrame) {
		t.Errorf("short frame: %v", err)
	}
}

// FuzzRecoverForgery builds a segment of three records whose readings
// carry the fuzzer's bytes as a string, then damages it (cut short, and a
// byte flipped) and scans it as recovery does: every record the scan
// accepts must be one that was written, however the bytes imitate frames.
func FuzzRecoverForgery(f *testing.F) {
	s := testSegment()
	rs := batch(1, 1)
	copied := encodeRecord(nil, s.seal, segHeaderLen, 99, true, nil, []uint32{0}, rs)
	legacy := &segment{}
	legacy.useFormat(1, nil)
	for _, seed := range [][]byte{
		copied,
		encodeRecord(nil, legacy.seal, 0, 99, true, nil, []uint32{0}, rs),
		append(append([]byte("xx"), copied...), copied...),
		{frameMagic0, frameMagic1, 0xff, 0xff, 0xff, 0xff},
		{},
	} {
		f.Add(seed, uint16(0), uint16(0))
		f.Add(seed, uint16(70), uint16(30))
	}
	f.Fuzz(func(t *testing.T, payload []byte, cut, flip uint16) {
		seg := s.header(testKey)
		written := map[uint64]bool{}
		for i, first := range []uint64{1, 3, 5} {
			rs := []reading.Reading{newReading(i, 0), newReading(i, 1)}
			rs[1].Value = reading.String(string(payload))
			defs := []def{{0, pointKey{"boiler", "p0"}}, {1, pointKey{"boiler", "p1"}}}
			seg = encodeRecord(seg, s.seal, int64(len(seg)), first, i == 0, defs, []uint32{0, 1}, rs)
			written[first] = true
		}
		if c := int(cut) % (len(seg) + 1); c > int(segHeaderLen) {
			seg = seg[:c]
		}
		if len(seg) > 0 {
			seg[int(flip)%len(seg)] ^= 0x5a
		}
		_, err := scanSegment(bytes.NewReader(seg), s, int64(len(seg)), func(rec *record, _ int64) error {
			if !written[rec.first] || rec.count != 2 {
				t.Fatalf("recovery accepted a record that was never written: seqs %d+%d", rec.first, rec.count)
			}
			_, err := rec.validate()
			return err
		})
		if err != nil {
			t.Fatalf("scan of in-memory bytes failed: %v", err)
		}
	})
}

// TestDictAssign: a point keeps its id whatever order its poll's readings
// come in, and a new point gets a new one, though the first guess for each
// reading is the id after the one before it.
func TestDictAssign(t *testing.T) {
	read := func(points ...string) []reading.Reading {
		rs := make([]reading.Reading, len(points))
		for i, p := range points {
			rs[i] = reading.Reading{Adapter: "boiler", Point: p}
		}
		return rs
	}
	d := newDict()
	want := map[string]uint32{}
	for _, cycle := range [][]string{{"a", "b", "c"}, {"a", "b", "c"}, {"c", "a", "b"}, {"a", "x", "b", "c"}, {"b", "c", "x", "a"}} {
		ids := d.assign(read(cycle...), nil)
		for i, p := range cycle {
			if id, ok := want[p]; !ok {
				want[p] = ids[i]
			} else if ids[i] != id {
				t.Fatalf("cycle %v: %s got id %d, had %d", cycle, p, ids[i], id)
			}
		}
	}
	if len(want) != 4 || want["x"] != 3 {
		t.Errorf("ids %v, want a, b, c, x numbered 0 to 3", want)
	}
}
