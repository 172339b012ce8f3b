package bridge

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
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

// BenchmarkEncode measures the per-reading hot path of each format: a poll
// cycle of 200 numbers with units, encoded into its messages, and the
// payload bytes each reading costs.
func BenchmarkEncode(b *testing.B) {
	es := make([]buffer.Entry, 200)
	units := map[pointKey]string{}
	for i := range es {
		es[i] = entry(uint64(1_000_000+i), "plc", fmt.Sprintf("p%d", i), reading.Uint(uint64(97*i%10000)))
		if i%4 == 0 {
			units[pointKey{"plc", es[i].Point}] = "degC"
		}
	}
	v := &view{units: units}
	for _, format := range []string{formatJSON, formatValue, formatBatch, formatCompact} {
		b.Run(format, func(b *testing.B) {
			enc := newEncoder(&settings{prefix: "fieldgate/pi-gw-01", format: format, batchMax: 100})
			size := 0
			encode := func() {
				size = 0
				for rest := es; len(rest) > 0; {
					m, n := enc.encode(rest, v)
					rest = rest[n:]
					if n > 0 {
						size += len(m.payload)
					}
				}
			}
			encode() // a dictionary, for compact
			b.ReportAllocs()
			for b.Loop() {
				encode()
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(es)), "ns/reading")
			b.ReportMetric(float64(size)/float64(len(es)), "bytes/reading")
		})
	}
}

// TestAppendTS: appendTS writes what the layout does, for times across the
// range a reading can carry, with every millisecond digit and other zones
// converted to UTC.
func TestAppendTS(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	zone := time.FixedZone("UTC+5:30", 5*3600+1800)
	times := []time.Time{{}, time.Unix(0, 0), time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC),
		time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC)}
	for range 100000 {
		times = append(times, time.Unix(0, rng.Int64N(1<<62)).In(zone))
	}
	for _, ts := range times {
		if got, want := string(appendTS(nil, ts)), ts.UTC().Format(tsLayout); got != want {
			t.Fatalf("appendTS(%v) = %s, want %s", ts, got, want)
		}
	}
	// tsText formats each time once: repeats, returns and the same
	// instant in another zone all give the layout's text.
	var c tsText
	for i, ts := range times[:1000] {
		for _, again := range []time.Time{ts, ts, times[i/2], ts.UTC(), times[i/2].Add(time.Millisecond)} {
			if got, want := string(c.append([]byte("x"), again)), "x"+again.UTC().Format(tsLayout); got != want {
				t.Fatalf("tsText.append(%v) = %s, want %s", again, got, want)
			}
		}
	}
}
