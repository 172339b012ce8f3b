package bridge

import (
	"strconv"

	"github.com/fieldgate/fieldgate/buffer"
	"github.com/fieldgate/fieldgate/internal/reading"
)

// jsonEncoder is format "json": one message per reading on the point's
// topic, {"value":21.5,"ts":"…","seq":1042,"unit":"degC"}.
type jsonEncoder struct {
	topics topics
	retain bool
	ts     tsText
}

func (e *jsonEncoder) encode(es []buffer.Entry, v *view) (message, int) {
	r := es[0]
	k := pointKey{r.Adapter, r.Point}
	b := appendJSON(make([]byte, 0, 96), r, v.units[k], false, &e.ts)
	return message{topic: e.topics.of(k), payload: b, retain: e.retain, first: r.Seq, last: r.Seq}, 1
}

func (e *jsonEncoder) entries(n int) int { return n }

// appendJSON appends one reading in the "json" format:
// {"value":21.5,"ts":"2026-11-21T23:00:00.123Z","seq":1042,"unit":"degC"},
// with "point" first when withPoint is set (batch format) and "unit" only
// when the point has one; ts formats the read time.
func appendJSON(b []byte, e buffer.Entry, unit string, withPoint bool, ts *tsText) []byte {
	b = append(b, '{')
	if withPoint {
		b = append(b, `"point":`...)
		b = appendString(b, e.Point)
		b = append(b, ',')
	}
	b = append(b, `"value":`...)
	b = e.Value.AppendJSON(b)
	b = append(b, `,"ts":"`...)
	b = ts.append(b, e.Time)
	b = append(b, `","seq":`...)
	b = strconv.AppendUint(b, e.Seq, 10)
	if unit != "" {
		b = append(b, `,"unit":`...)
		b = appendString(b, unit)
	}
	return append(b, '}')
}

// appendString appends s as a JSON string. Names and units are plain text, so
// they are copied as they are; anything that needs escaping goes through
// encoding/json.
func appendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' || c >= 0x80 {
			return reading.String(s).AppendJSON(b)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}
