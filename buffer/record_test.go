package buffer

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/fieldgate/fieldgate/internal/reading"
)

func seedRecords() [][]byte {
	rs := batch(1, 3)
	rs[1].Value = reading.String("ok")
	rs[2].Value = reading.Int(-5)
	defs := []def{{0, pointKey{"boiler", "p0"}}, {1, pointKey{"boiler", "p1"}}, {2, pointKey{"boiler", "p2"}}}
	full := encodeRecord(nil, 42, true, defs, []uint32{0, 1, 2}, rs)
	return [][]byte{
		full,
		encodeRecord(nil, 1, false, nil, []uint32{7}, batch(0, 1)),
		encodeRecord(nil, 1<<40, false, nil, nil, nil),
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
		if p, n, err := parseFrame(data); err == nil {
			if n > len(data) {
				t.Fatalf("frame length %d beyond %d bytes", n, len(data))
			}
			roundTrip(t, p)
		}
		roundTrip(t, data)
		seg := append([]byte(segHeader), data...)
		_, err := scanSegment(bytes.NewReader(seg), int64(len(seg)), func(rec *record, _ int64) error {
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
	frame := encodeRecord(nil, rec.first, rec.snapshot, rec.defs, ids, rs)
	p2, _, err := parseFrame(frame)
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
	if _, _, err := parseFrame(good[:len(good)-1]); !errors.Is(err, errBadFrame) {
		t.Errorf("short frame: %v", err)
	}
}
