package bridge

import (
	"strconv"

	"github.com/fieldgate/fieldgate/internal/reading"

	"github.com/fieldgate/fieldgate/buffer"
)

// tsLayout is RFC 3339 with milliseconds; times are converted to UTC first,
// so the zone is always written "Z".
const tsLayout = "2006-01-02T15:04:05.000Z07:00"

// pointKey names one point.
type pointKey struct{ adapter, point string }

// unitsOf indexes the configured units of the points that have one.
func unitsOf(ps []reading.Point) map[pointKey]string {
	units := map[pointKey]string{}
	for _, p := range ps {
		if p.Unit != "" {
			units[pointKey{p.Adapter, p.Name}] = p.Unit
		}
	}
	return units
}

// message is one MQTT publish carrying the readings first..last.
type message struct {
	topic       string
	payload     []byte
	retain      bool
	first, last uint64
}

// encoder turns buffer entries into messages in one upstream's format. It is
// owned by the upstream's publisher goroutine.
type encoder struct {
	s      *settings
	units  map[pointKey]string
	topics map[pointKey]string // reading topics built so far
}

func newEncoder(s *settings, units map[pointKey]string) *encoder {
	return &encoder{s: s, units: units, topics: map[pointKey]string{}}
}

// next encodes the first message of es and reports how many entries it took:
// one, or for the batch format the leading run of one adapter's readings, at
// most batch_max.
func (e *encoder) next(es []buffer.Entry) (message, int) {
	first := es[0]
	if e.s.format == formatBatch {
		n := 1
		for n < len(es) && n < e.s.batchMax && es[n].Adapter == first.Adapter {
			n++
		}
		b := make([]byte, 0, 96*n)
		b = append(b, '[')
		for i, r := range es[:n] {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSON(b, r, e.units[pointKey{r.Adapter, r.Point}], true)
		}
		b = append(b, ']')
		return message{topic: e.s.prefix + "/" + first.Adapter, payload: b,
			first: first.Seq, last: es[n-1].Seq}, n
	}
	k := pointKey{first.Adapter, first.Point}
	topic, ok := e.topics[k]
	if !ok {
		topic = e.s.prefix + "/" + first.Adapter + "/" + first.Point
		e.topics[k] = topic
	}
	var b []byte
	if e.s.format == formatValue {
		b = first.Value.AppendText(make([]byte, 0, 24))
	} else {
		b = appendJSON(make([]byte, 0, 96), first, e.units[k], false)
	}
	return message{topic: topic, payload: b, retain: e.s.retain, first: first.Seq, last: first.Seq}, 1
}

// appendJSON appends one reading in the "json" format:
// {"value":21.5,"ts":"2026-11-21T23:00:00.123Z","seq":1042,"unit":"degC"},
// with "point" first when withPoint is set (batch format) and "unit" only
// when the point has one.
func appendJSON(b []byte, e buffer.Entry, unit string, withPoint bool) []byte {
	b = append(b, '{')
	if withPoint {
		b = append(b, `"point":`...)
		b = appendString(b, e.Point)
		b = append(b, ',')
	}
	b = append(b, `"value":`...)
	b = e.Value.AppendJSON(b)
	b = append(b, `,"ts":"`...)
	b = e.Time.UTC().AppendFormat(b, tsLayout)
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
