package bridge

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fieldgate/fieldgate/buffer"
	"github.com/fieldgate/fieldgate/internal/reading"
)

// compactDict and compactData are the compact format's messages as a
// consumer parses them (README, "The compact format").
type compactDict struct {
	Dict   string            `json:"dict"`
	Points []string          `json:"points"`
	Units  map[string]string `json:"units"`
}

type compactData struct {
	Seq    uint64            `json:"seq"`
	TS     int64             `json:"ts"`
	Dict   string            `json:"dict"`
	Points [][2]int          `json:"points"`
	Times  [][2]int64        `json:"times"`
	Values []json.RawMessage `json:"values"`
}

// decodedReading is one reading recovered from a compact message.
type decodedReading struct {
	seq   uint64
	point string
	ms    int64
	value string
}

// decodeCompact recovers the readings of a data message with the
// dictionaries seen so far, as a consumer would.
func decodeCompact(t testing.TB, dicts map[string]compactDict, payload []byte) []decodedReading {
	t.Helper()
	var m compactData
	if err := json.Unmarshal(payload, &m); err != nil {
		t.Fatalf("compact message %s: %v", payload, err)
	}
	d, ok := dicts[m.Dict]
	if !ok {
		t.Fatalf("compact message %s: dictionary %s not published before it", payload, m.Dict)
	}
	var names []string
	for _, run := range m.Points {
		for i := range run[1] {
			names = append(names, d.Points[run[0]+i])
		}
	}
	var times []int64
	for _, run := range m.Times {
		for range run[0] {
			times = append(times, m.TS+run[1])
		}
	}
	if len(names) != len(m.Values) || len(times) != len(m.Values) {
		t.Fatalf("compact message %s: %d points, %d times, %d values", payload, len(names), len(times), len(m.Values))
	}
	out := make([]decodedReading, len(m.Values))
	for i, v := range m.Values {
		out[i] = decodedReading{seq: m.Seq + uint64(i), point: names[i], ms: times[i], value: string(v)}
	}
	return out
}

// consume runs entries through a compact encoder as the publisher does and
// returns the readings a consumer recovers, the dictionaries published and
// the messages' topics.
func consume(t *testing.T, enc encoder, v *view, es []buffer.Entry) (got []decodedReading, dicts map[string]compactDict, topics []string) {
	t.Helper()
	dicts = map[string]compactDict{}
	for rest := es; len(rest) > 0; {
		m, n := enc.encode(rest, v)
		rest = rest[n:]
		topics = append(topics, m.topic)
		if !json.Valid(m.payload) {
			t.Fatalf("invalid JSON: %s", m.payload)
		}
		if strings.HasSuffix(m.topic, dictSuffix) {
			var d compactDict
			if err := json.Unmarshal(m.payload, &d); err != nil {
				t.Fatal(err)
			}
			if n != 0 || !m.retain || m.minQoS != 1 || m.last+1 != m.first {
				t.Errorf("dictionary message %+v took %d entries: want none, retained, QoS 1", m, n)
			}
			dicts[d.Dict] = d
			continue
		}
		if m.retain || n == 0 {
			t.Errorf("data message %s: retained %v, %d readings", m.payload, m.retain, n)
		}
		rs := decodeCompact(t, dicts, m.payload)
		if m.first != rs[0].seq || m.last != rs[len(rs)-1].seq {
			t.Errorf("message carries seqs %d–%d, says %d–%d", rs[0].seq, rs[len(rs)-1].seq, m.first, m.last)
		}
		got = append(got, rs...)
	}
	return got, dicts, topics
}

func TestCompactKeepsEverySeqTimeAndValue(t *testing.T) {
	base := time.Date(2026, 11, 21, 23, 0, 0, 0, time.UTC)
	var es []buffer.Entry
	at := func(ms int) time.Time { return base.Add(time.Duration(ms)*time.Millisecond + 700*time.Microsecond) }
	seq := uint64(1000)
	for cycle := range 3 {
		for i := range 7 {
			ms := cycle * 1000
			if i >= 4 {
				ms += 3 // a second request of the cycle, answered 3 ms later
			}
			es = append(es, buffer.Entry{Seq: seq, Reading: reading.Reading{Adapter: "plc", Point: fmt.Sprintf("p%d", i),
				Time: at(ms), Value: reading.Int(int64(cycle*100 + i))}})
			seq++
		}
		if cycle == 1 {
			seq += 5 // seqs skipped after a power cut
		}
	}
	es = append(es,
		buffer.Entry{Seq: seq, Reading: reading.Reading{Adapter: "meter", Point: "kwh", Time: at(5000), Value: reading.Float(12.25)}},
		buffer.Entry{Seq: seq + 1, Reading: reading.Reading{Adapter: "plc", Point: "p2", Time: at(5001), Value: reading.Bool(true)}},
		buffer.Entry{Seq: seq + 2, Reading: reading.Reading{Adapter: "plc", Point: "label", Time: at(5001), Value: reading.String("a\"b")}},
		buffer.Entry{Seq: seq + 3, Reading: reading.Reading{Adapter: "plc", Point: "nan", Time: at(4999), Value: reading.Float(math.NaN())}},
	)
	v := &view{units: map[pointKey]string{{"meter", "kwh"}: "kWh"}}
	got, dicts, topics := consume(t, newEncoder(&settings{prefix: "fg", format: formatCompact, batchMax: 5}), v, es)

	if len(got) != len(es) {
		t.Fatalf("recovered %d readings of %d", len(got), len(es))
	}
	for i, e := range es {
		want := decodedReading{seq: e.Seq, point: e.Point, ms: e.Time.UnixMilli(), value: string(e.Value.AppendJSON(nil))}
		if got[i] != want {
			t.Errorf("reading %d: got %+v, want %+v", i, got[i], want)
		}
	}
	// Every point of the entries read is in the first dictionary, so the
	// messages share it.
	if n := strings.Count(strings.Join(topics, " "), "fg/plc/$points"); n != 1 {
		t.Errorf("plc's dictionary published %d times, want once: %v", n, topics)
	}
	var names []string
	for _, d := range dicts {
		names = append(names, fmt.Sprintf("%v %v", d.Points, d.Units))
	}
	slices.Sort(names)
	if want := "[kwh] map[kwh:kWh]\n[p0 p1 p2 p3 p4 p5 p6 label nan] map[]"; strings.Join(names, "\n") != want {
		t.Errorf("dictionaries:\n%s\nwant\n%s", strings.Join(names, "\n"), want)
	}
}

func TestCompactMessage(t *testing.T) {
	es := []buffer.Entry{
		entry(1042, "boiler", "temp", reading.Float(21.5)),
		entry(1043, "boiler", "on", reading.Bool(true)),
	}
	es[1].Time = es[1].Time.Add(2 * time.Millisecond)
	enc := newEncoder(&settings{prefix: "p", format: formatCompact, batchMax: 100})
	v := &view{units: map[pointKey]string{{"boiler", "temp"}: "degC"}}
	want := []string{
		`p/boiler/$points {"dict":"31b01c4d","points":["temp","on"],"units":{"temp":"degC"}}`,
		`p/boiler {"seq":1042,"ts":1795298400123,"dict":"31b01c4d","points":[[0,2]],"times":[[1,0],[1,2]],"values":[21.5,true]}`,
		// A new link: the broker may have lost the retained dictionary.
		`p/boiler/$points {"dict":"31b01c4d","points":["temp","on"],"units":{"temp":"degC"}}`,
		`p/boiler {"seq":1042,"ts":1795298400123,"dict":"31b01c4d","points":[[0,2]],"times":[[1,0],[1,2]],"values":[21.5,true]}`,
		// A reload changed a unit: a new dictionary.
		`p/boiler/$points {"dict":"358a30ef","points":["temp","on"],"units":{"temp":"K"}}`,
		`p/boiler {"seq":1042,"ts":1795298400123,"dict":"358a30ef","points":[[0,2]],"times":[[1,0],[1,2]],"values":[21.5,true]}`,
	}
	var got []string
	run := func(v *view) {
		for rest := es; len(rest) > 0; {
			m, n := enc.encode(rest, v)
			rest = rest[n:]
			got = append(got, m.topic+" "+string(m.payload))
		}
	}
	run(v)
	enc.(linkStarter).linkStarted()
	run(v)
	run(&view{units: map[pointKey]string{{"boiler", "temp"}: "K"}})
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
