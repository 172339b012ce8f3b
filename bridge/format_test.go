package bridge

import (
	"encoding/json"
	"math"
	"testing"
	"time"

	"github.com/fieldgate/fieldgate/internal/reading"

	"github.com/fieldgate/fieldgate/buffer"
)

var ts = time.Date(2026, 11, 21, 23, 0, 0, 123456789, time.FixedZone("CET", 3600))

func entry(seq uint64, adapter, point string, v reading.Value) buffer.Entry {
	return buffer.Entry{Seq: seq, Reading: reading.Reading{Adapter: adapter, Point: point, Time: ts, Value: v}}
}

func TestEncode(t *testing.T) {
	units := map[pointKey]string{{"boiler", "temp"}: "degC", {"boiler", "odd"}: "µ\"x\""}
	es := []buffer.Entry{
		entry(1042, "boiler", "temp", reading.Float(21.5)),
		entry(1043, "boiler", "on", reading.Bool(true)),
		entry(1044, "boiler", "odd", reading.Float(math.NaN())),
		entry(1045, "scale", "label", reading.String("a\"b\x00")),
		entry(1046, "scale", "count", reading.Uint(math.MaxUint64)),
	}
	type msg struct {
		topic, payload string
		retain         bool
		first, last    uint64
	}
	tests := []struct {
		name string
		s    settings
		want []msg
	}{
		{"json", settings{prefix: "fg/gw", format: formatJSON, retain: true}, []msg{
			{"fg/gw/boiler/temp", `{"value":21.5,"ts":"2026-11-21T22:00:00.123Z","seq":1042,"unit":"degC"}`, true, 1042, 1042},
			{"fg/gw/boiler/on", `{"value":true,"ts":"2026-11-21T22:00:00.123Z","seq":1043}`, true, 1043, 1043},
			{"fg/gw/boiler/odd", `{"value":null,"ts":"2026-11-21T22:00:00.123Z","seq":1044,"unit":"µ\"x\""}`, true, 1044, 1044},
			{"fg/gw/scale/label", `{"value":"a\"b\u0000","ts":"2026-11-21T22:00:00.123Z","seq":1045}`, true, 1045, 1045},
			{"fg/gw/scale/count", `{"value":18446744073709551615,"ts":"2026-11-21T22:00:00.123Z","seq":1046}`, true, 1046, 1046},
		}},
		{"value", settings{prefix: "p", format: formatValue}, []msg{
			{"p/boiler/temp", `21.5`, false, 1042, 1042},
			{"p/boiler/on", `true`, false, 1043, 1043},
			{"p/boiler/odd", `NaN`, false, 1044, 1044},
			{"p/scale/label", "a\"b\x00", false, 1045, 1045},
			{"p/scale/count", `18446744073709551615`, false, 1046, 1046},
		}},
		{"batch splits at adapters and batch_max, never retained", settings{prefix: "p", format: formatBatch, batchMax: 2, retain: true}, []msg{
			{"p/boiler", `[{"point":"temp","value":21.5,"ts":"2026-11-21T22:00:00.123Z","seq":1042,"unit":"degC"},` +
				`{"point":"on","value":true,"ts":"2026-11-21T22:00:00.123Z","seq":1043}]`, false, 1042, 1043},
			{"p/boiler", `[{"point":"odd","value":null,"ts":"2026-11-21T22:00:00.123Z","seq":1044,"unit":"µ\"x\""}]`, false, 1044, 1044},
			{"p/scale", `[{"point":"label","value":"a\"b\u0000","ts":"2026-11-21T22:00:00.123Z","seq":1045},` +
				`{"point":"count","value":18446744073709551615,"ts":"2026-11-21T22:00:00.123Z","seq":1046}]`, false, 1045, 1046},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			enc := newEncoder(&tt.s)
			var got []msg
			for rest := es; len(rest) > 0; {
				m, n := enc.encode(rest, &view{units: units})
				rest = rest[n:]
				got = append(got, msg{m.topic, string(m.payload), m.retain, m.first, m.last})
				if tt.s.format != formatValue && !json.Valid(m.payload) {
					t.Errorf("invalid JSON: %s", m.payload)
				}
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %d messages, want %d: %+v", len(got), len(tt.want), got)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Errorf("message %d:\n got %+v\nwant %+v", i, got[i], tt.want[i])
				}
			}
		})
	}
}

// BenchmarkEncodeJSON measures the per-reading hot path: one reading with a
// unit to a "json" payload.
func BenchmarkEncodeJSON(b *testing.B) {
	s := &settings{prefix: "fieldgate/pi-gw-01", format: formatJSON}
	enc := newEncoder(s)
	units := map[pointKey]string{{"boiler", "supply_temp"}: "degC"}
	es := []buffer.Entry{entry(1042, "boiler", "supply_temp", reading.Float(21.5))}
	b.ReportAllocs()
	var size int
	for b.Loop() {
		m, _ := enc.encode(es, &view{units: units})
		size = len(m.payload)
	}
	b.ReportMetric(float64(size), "bytes/msg")
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}
