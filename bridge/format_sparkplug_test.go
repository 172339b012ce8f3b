package bridge

import (
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math"
	"reflect"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/fieldgate/fieldgate/bridge/sparkplug"
	pb "github.com/fieldgate/fieldgate/bridge/sparkplug/sparkplugpb"
	"github.com/fieldgate/fieldgate/buffer"
	"github.com/fieldgate/fieldgate/internal/reading"
)

// encoderSession is a Sparkplug session with births behind it, as far as
// its encoder needs one: a catalog for the points, the seq at which
// historical readings end, and the given device marks, applied up to the
// first entry.
func encoderSession(t testing.TB, points []reading.Point, histBelow uint64, marks ...deviceMark) *sparkplugSession {
	t.Helper()
	s := &sparkplugSession{node: sparkplug.Node{Group: group, ID: "gw"}, logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		histBelow: histBelow, marks: marks, dropped: map[pointKey]bool{}}
	defs, problems := defsOf(&view{points: points})
	if len(problems) > 0 {
		t.Fatal(problems)
	}
	cat, err := sparkplug.NewCatalog(defs.node, defs.devices)
	if err != nil {
		t.Fatal(err)
	}
	s.cat.Store(cat)
	s.seq.Birth()
	return s
}

func TestSparkplugEncoderRuns(t *testing.T) {
	points := []reading.Point{
		{Adapter: "boiler", Name: "temp", Type: "int16", Scale: 0.1},
		{Adapter: "boiler", Name: "on", Type: "bool", Scale: 1},
		{Adapter: "scale", Name: "label", Type: "string", Scale: 1},
	}
	s := encoderSession(t, points, 1044, deviceMark{seq: 1045, adapter: "boiler", dead: true})
	e := &sparkplugEncoder{s: s, max: 2}
	es := []buffer.Entry{
		entry(1042, "boiler", "temp", reading.Float(21.5)),
		entry(1043, "boiler", "on", reading.Bool(true)),
		entry(1044, "boiler", "gone", reading.Float(1)),  // not in the births: left out
		entry(1045, "boiler", "on", reading.Bool(false)), // after the boiler's mark: a run of its own
		entry(1046, "boiler", "on", reading.String("x")), // does not fit a Boolean: left out
		entry(1047, "scale", "label", reading.String("ok")),
	}
	type metric struct {
		alias      uint64 // 1 and 2 are the gateway's version and backlog
		historical bool
		value      string
	}
	want := []struct {
		topic       string
		first, last uint64
		seq         uint64
		metrics     []metric
	}{
		{"spBv1.0/plant-1/DDATA/gw/boiler", 1042, 1043, 1, []metric{{3, true, "21.5"}, {4, true, "true"}}},
		{"", 1044, 1044, 0, nil},
		{"spBv1.0/plant-1/DDATA/gw/boiler", 1045, 1046, 2, []metric{{4, false, "false"}}},
		{"spBv1.0/plant-1/DDATA/gw/scale", 1047, 1047, 3, []metric{{5, false, "ok"}}},
	}
	for i, w := range want {
		s.applyMarks(es[0].Seq) // as admit does; the session has no births to publish here
		m, n := e.encode(es, nil)
		es = es[n:]
		if m.topic != w.topic || m.first != w.first || m.last != w.last {
			t.Fatalf("message %d: %s %d..%d, want %s %d..%d", i, m.topic, m.first, m.last, w.topic, w.first, w.last)
		}
		if m.topic == "" {
			continue
		}
		var p pb.Payload
		if err := proto.Unmarshal(m.payload, &p); err != nil {
			t.Fatal(err)
		}
		if p.GetSeq() != w.seq || len(p.Metrics) != len(w.metrics) {
			t.Fatalf("message %d: seq %d, %d metrics; want seq %d, %d", i, p.GetSeq(), len(p.Metrics), w.seq, len(w.metrics))
		}
		for j, wm := range w.metrics {
			pm := p.Metrics[j]
			v := fmt.Sprint(pm.GetDoubleValue())
			switch pm.Value.(type) {
			case *pb.Payload_Metric_BooleanValue:
				v = fmt.Sprint(pm.GetBooleanValue())
			case *pb.Payload_Metric_StringValue:
				v = pm.GetStringValue()
			}
			if pm.GetAlias() != wm.alias || pm.Name != nil || pm.GetIsHistorical() != wm.historical || v != wm.value {
				t.Errorf("message %d metric %d: %v, want %+v", i, j, pm, wm)
			}
		}
	}
	if len(es) != 0 {
		t.Errorf("%d entries left", len(es))
	}
}

// BenchmarkMessageSizes reports what the same readings of one adapter
// (float32 points without a unit) take on the wire in each format: all the
// messages' payloads and topics, for one reading and for a poll cycle of
// 50 points. The compact format's dictionary is counted in the first
// iteration only (as it is sent once per connection).
func BenchmarkMessageSizes(b *testing.B) {
	for _, n := range []int{1, 50} {
		var points []reading.Point
		var es []buffer.Entry
		for i := range n {
			name := fmt.Sprintf("p%d", i)
			points = append(points, reading.Point{Adapter: "boiler", Name: name, Type: "float32", Scale: 1})
			es = append(es, entry(uint64(1000+i), "boiler", name, reading.Float(21.5+float64(i)/10)))
		}
		for _, f := range []string{formatJSON, formatBatch, formatCompact, formatSparkplug} {
			b.Run(fmt.Sprintf("%s/%d", f, n), func(b *testing.B) {
				enc := newEncoder(&settings{prefix: "fieldgate/pi-gw-01", format: f, batchMax: 100})
				if f == formatSparkplug {
					enc = &sparkplugEncoder{s: encoderSession(b, points, 0), max: 100}
				}
				var payload, topics, msgs int
				for b.Loop() {
					payload, topics, msgs = 0, 0, 0
					for rest := es; len(rest) > 0; {
						m, k := enc.encode(rest, &view{})
						rest = rest[k:]
						payload, topics, msgs = payload+len(m.payload), topics+len(m.topic), msgs+1
					}
				}
				b.ReportMetric(float64(payload), "payload-bytes")
				b.ReportMetric(float64(topics), "topic-bytes")
				b.ReportMetric(float64(msgs), "messages")
			})
		}
	}
}

// TestSparkplugDeclarations: each adapter with points is a device, in the
// config's order; a point's datatype follows its type and scaling; names
// that differ only in case and types without a datatype are reported.
func TestSparkplugDeclarations(t *testing.T) {
	defs, problems := defsOf(&view{adapters: []string{"io", "boiler", "sunspec"}, points: []reading.Point{
		{Adapter: "io", Name: "door", Type: "bool", Scale: 1},
		{Adapter: "boiler", Name: "Temp", Type: "int16", Scale: 1, Unit: "degC"},
		{Adapter: "boiler", Name: "temp", Type: "int16", Scale: 1, Offset: -40},
		{Adapter: "boiler", Name: "blob", Type: "bytes", Scale: 1},
	}})
	want := catalogDefs{
		node: sparkplug.GatewayMetrics([]string{"io", "boiler", "sunspec"}),
		devices: []sparkplug.Device{
			{ID: "io", Metrics: []sparkplug.MetricDef{{Name: "door", Type: pb.DataType_Boolean}}},
			{ID: "boiler", Metrics: []sparkplug.MetricDef{
				{Name: "Temp", Type: pb.DataType_Int16, Unit: "degC"},
				{Name: "temp", Type: pb.DataType_Double},
			}},
		},
	}
	if !reflect.DeepEqual(defs, want) {
		t.Errorf("declarations\n%+v\nwant\n%+v", defs, want)
	}
	if len(problems) != 2 || !strings.Contains(problems[0], "differ only in case") || !strings.Contains(problems[1], "boiler/blob left out") {
		t.Errorf("problems %q", problems)
	}
}

// TestSparkplugMarksAreBounded: beyond maxMarks the oldest marks count as
// passed, so the devices' states at the end of the stream stay right.
func TestSparkplugMarksAreBounded(t *testing.T) {
	s := &sparkplugSession{baseDead: map[string]bool{}}
	var ms []deviceMark
	for i := range maxMarks + 5 {
		ms = append(ms, deviceMark{seq: uint64(i), adapter: fmt.Sprint("a", i%3), dead: i%2 == 0})
	}
	s.addMarks(ms[:10])
	s.applied = 7
	s.addMarks(ms[10:])
	if len(s.marks) != maxMarks || s.marks[0].seq != 5 || s.applied != 2 {
		t.Errorf("%d marks from seq %d, %d applied; want %d from 5, 2", len(s.marks), s.marks[0].seq, s.applied, maxMarks)
	}
	if want := map[string]bool{"a0": false, "a1": true, "a2": true}; !maps.Equal(s.deadAt(0), want) {
		t.Errorf("states before the kept marks %v, want those of the dropped ones %v", s.deadAt(0), want)
	}
	if got := s.deadAt(math.MaxUint64); got["a0"] != ms[len(ms)-3].dead || got["a1"] != ms[len(ms)-2].dead || got["a2"] != ms[len(ms)-1].dead {
		t.Errorf("states at the end %v", got)
	}
}
