package sparkplug

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fieldgate/fieldgate/internal/reading"

	"google.golang.org/protobuf/proto"

	pb "github.com/fieldgate/fieldgate/bridge/sparkplug/sparkplugpb"
)

// testCatalog is a gateway with two adapters, as a config would give it.
func testCatalog(t testing.TB) *Catalog {
	t.Helper()
	c, err := NewCatalog(GatewayMetrics([]string{"boiler", "io"}), []Device{
		{ID: "boiler", Metrics: []MetricDef{
			{Name: "supply_temp", Type: pb.DataType_Double, Unit: "degC"},
			{Name: "setpoint", Type: pb.DataType_Int16},
			{Name: "serial", Type: pb.DataType_String},
		}},
		{ID: "io", Metrics: []MetricDef{
			{Name: "door", Type: pb.DataType_Boolean},
			{Name: "pulses", Type: pb.DataType_UInt64},
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func decode(t testing.TB, b []byte) *pb.Payload {
	t.Helper()
	var p pb.Payload
	if err := proto.Unmarshal(b, &p); err != nil {
		t.Fatal(err)
	}
	return &p
}

func TestAliasesAreUniqueAcrossTheNodeAndDeterministic(t *testing.T) {
	c := testCatalog(t)
	want := []struct {
		device, name string
		alias        uint64
	}{
		{"", MetricBdSeq, 0}, {"", MetricRebirth, 0}, // none: never in DATA
		{"", MetricVersion, 1}, {"", MetricBacklog, 2},
		{"", AdapterStateMetric("boiler"), 3}, {"", AdapterStateMetric("io"), 4},
		{"boiler", "supply_temp", 5}, {"boiler", "setpoint", 6}, {"boiler", "serial", 7},
		{"io", "door", 8}, {"io", "pulses", 9},
	}
	for _, w := range want {
		e, ok := c.Lookup(w.device, w.name)
		if !ok || e.Alias != w.alias || e.Device != w.device || e.Name != w.name {
			t.Errorf("Lookup(%q, %q) = %+v, %v; want alias %d", w.device, w.name, e, ok, w.alias)
		}
		if w.alias == 0 {
			continue
		}
		if back, ok := c.ByAlias(w.alias); !ok || back != e {
			t.Errorf("ByAlias(%d) = %+v, %v; want %+v", w.alias, back, ok, e)
		}
	}
	if _, ok := c.ByAlias(10); ok {
		t.Error("alias 10 resolves")
	}
	if _, ok := c.Lookup("io", "supply_temp"); ok {
		t.Error("a metric of boiler resolves on io")
	}
	if got := c.Devices(); !slices.Equal(got, []string{"boiler", "io"}) {
		t.Errorf("devices %q", got)
	}
	if again := testCatalog(t); again.byAlias[6] != c.byAlias[6] {
		t.Error("the same configuration gave other aliases")
	}
}

func TestCatalogRefusesWhatABirthCannotDeclare(t *testing.T) {
	_, err := NewCatalog([]MetricDef{{Name: MetricRebirth, Type: pb.DataType_Boolean}}, []Device{
		{ID: "a/b"},
		{ID: "d", Metrics: []MetricDef{{Name: "x", Type: pb.DataType_Int16}, {Name: "x", Type: pb.DataType_Int16}, {Name: ""}}},
		{ID: "d"},
		{ID: "e", Metrics: []MetricDef{{Name: "blob", Type: pb.DataType_Bytes}}},
	})
	if err == nil {
		t.Fatal("NewCatalog accepted a bad configuration")
	}
	for _, want := range []string{`"Node Control/Rebirth" declared twice`, `"a/b"`, `metric "x" declared twice`, "without a name", `device "d" declared twice`, "Bytes is not supported"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
}

var (
	now  = time.Date(2026, 11, 21, 23, 0, 0, 123e6, time.UTC)
	read = now.Add(-1500 * time.Millisecond)
)

func TestNBirthDeclaresBdSeqRebirthAndTheGatewayMetrics(t *testing.T) {
	c := testCatalog(t)
	b, err := c.NBirth(0, now, 7, map[string]Sample{
		MetricVersion:                {Value: reading.String("1.2.3"), Time: now},
		MetricBacklog:                {Value: reading.Uint(42), Time: now},
		AdapterStateMetric("boiler"): {Value: reading.String("ok"), Time: read},
	})
	if err != nil {
		t.Fatal(err)
	}
	p := decode(t, b)
	if p.Seq == nil || p.GetSeq() != 0 || p.GetTimestamp() != uint64(now.UnixMilli()) {
		t.Errorf("seq %v timestamp %v", p.Seq, p.Timestamp)
	}
	want := []*pb.Payload_Metric{
		{Name: ptr(MetricBdSeq), Timestamp: ptr(Millis(now)), Datatype: ptr(uint32(pb.DataType_Int64)), Value: &pb.Payload_Metric_LongValue{LongValue: 7}},
		{Name: ptr(MetricRebirth), Timestamp: ptr(Millis(now)), Datatype: ptr(uint32(pb.DataType_Boolean)), Value: &pb.Payload_Metric_BooleanValue{BooleanValue: false}},
		{Name: ptr(MetricVersion), Alias: ptr(uint64(1)), Timestamp: ptr(Millis(now)), Datatype: ptr(uint32(pb.DataType_String)), Value: &pb.Payload_Metric_StringValue{StringValue: "1.2.3"}},
		{Name: ptr(MetricBacklog), Alias: ptr(uint64(2)), Timestamp: ptr(Millis(now)), Datatype: ptr(uint32(pb.DataType_UInt64)), Value: &pb.Payload_Metric_LongValue{LongValue: 42}},
		{Name: ptr(AdapterStateMetric("boiler")), Alias: ptr(uint64(3)), Timestamp: ptr(Millis(read)), Datatype: ptr(uint32(pb.DataType_String)), Value: &pb.Payload_Metric_StringValue{StringValue: "ok"}},
		{Name: ptr(AdapterStateMetric("io")), Alias: ptr(uint64(4)), Timestamp: ptr(Millis(now)), Datatype: ptr(uint32(pb.DataType_String)), IsNull: ptr(true)},
	}
	checkMetrics(t, p, want)
}

func TestDBirthDeclaresEveryPointWithValueDatatypeAliasAndUnit(t *testing.T) {
	c := testCatalog(t)
	b, err := c.DBirth(1, now, "boiler", map[string]Sample{
		"supply_temp": {Name: "supply_temp", Value: reading.Float(21.5), Time: read},
		"setpoint":    {Name: "setpoint", Value: reading.Int(-4), Time: read},
	})
	if err != nil {
		t.Fatal(err)
	}
	p := decode(t, b)
	if p.GetSeq() != 1 || p.GetTimestamp() != Millis(now) {
		t.Errorf("seq %v timestamp %v", p.Seq, p.Timestamp)
	}
	unit := &pb.Payload_PropertySet{Keys: []string{"engUnit"}, Values: []*pb.Payload_PropertyValue{
		{Type: ptr(uint32(pb.DataType_String)), Value: &pb.Payload_PropertyValue_StringValue{StringValue: "degC"}},
	}}
	checkMetrics(t, p, []*pb.Payload_Metric{
		{Name: ptr("supply_temp"), Alias: ptr(uint64(5)), Timestamp: ptr(Millis(read)), Datatype: ptr(uint32(pb.DataType_Double)), Properties: unit, Value: &pb.Payload_Metric_DoubleValue{DoubleValue: 21.5}},
		{Name: ptr("setpoint"), Alias: ptr(uint64(6)), Timestamp: ptr(Millis(read)), Datatype: ptr(uint32(pb.DataType_Int16)), Value: &pb.Payload_Metric_IntValue{IntValue: 0xfffffffc}},
		{Name: ptr("serial"), Alias: ptr(uint64(7)), Timestamp: ptr(Millis(now)), Datatype: ptr(uint32(pb.DataType_String)), IsNull: ptr(true)},
	})
	if _, err := c.DBirth(1, now, "nope", nil); err == nil {
		t.Error("a DBIRTH for an unknown device")
	}
	if _, err := c.DBirth(1, now, "boiler", map[string]Sample{"setpoint": {Value: reading.Float(1.5)}}); err == nil {
		t.Error("a DBIRTH with a float in an Int16")
	}
}

func TestDDataCarriesMetricsByAliasWithTheirTimeAndHistoricalFlag(t *testing.T) {
	c := testCatalog(t)
	old := read.Add(-time.Hour)
	b, err := c.DData(200, now, "io", []Sample{
		{Name: "pulses", Value: reading.Uint(10), Time: old, Historical: true},
		{Name: "door", Value: reading.Bool(true), Time: read},
	})
	if err != nil {
		t.Fatal(err)
	}
	p := decode(t, b)
	if p.GetSeq() != 200 || p.GetTimestamp() != Millis(now) {
		t.Errorf("seq %v timestamp %v", p.Seq, p.Timestamp)
	}
	checkMetrics(t, p, []*pb.Payload_Metric{
		{Alias: ptr(uint64(9)), Timestamp: ptr(Millis(old)), IsHistorical: ptr(true), Value: &pb.Payload_Metric_LongValue{LongValue: 10}},
		{Alias: ptr(uint64(8)), Timestamp: ptr(Millis(read)), Value: &pb.Payload_Metric_BooleanValue{BooleanValue: true}},
	})
	if _, err := c.DData(1, now, "io", []Sample{{Name: "supply_temp", Value: reading.Float(1)}}); err == nil {
		t.Error("DDATA with another device's metric")
	}
	if _, err := c.DData(1, now, "nope", nil); err == nil {
		t.Error("DDATA for an unknown device")
	}
	nd, err := c.NData(201, now, []Sample{{Name: MetricBacklog, Value: reading.Uint(0), Time: now}})
	if err != nil {
		t.Fatal(err)
	}
	checkMetrics(t, decode(t, nd), []*pb.Payload_Metric{{Alias: ptr(uint64(2)), Timestamp: ptr(Millis(now)), Value: &pb.Payload_Metric_LongValue{LongValue: 0}}})
}

func TestDeathCertificates(t *testing.T) {
	nd := decode(t, NDeath(255, now))
	if nd.Seq != nil {
		t.Errorf("NDEATH carries seq %d", nd.GetSeq())
	}
	checkMetrics(t, nd, []*pb.Payload_Metric{
		{Name: ptr(MetricBdSeq), Timestamp: ptr(Millis(now)), Datatype: ptr(uint32(pb.DataType_Int64)), Value: &pb.Payload_Metric_LongValue{LongValue: 255}},
	})
	dd := decode(t, DDeath(3, now))
	if dd.Seq == nil || dd.GetSeq() != 3 || dd.GetTimestamp() != Millis(now) || len(dd.Metrics) != 0 {
		t.Errorf("DDEATH %v", dd)
	}
}

func TestSeqRunsFromTheNBirthTo255AndWraps(t *testing.T) {
	var s Seq
	for session := range 2 {
		if got := s.Birth(); got != 0 {
			t.Fatalf("session %d: NBIRTH seq %d", session, got)
		}
		for want := 1; want < 600; want++ {
			if got := s.Next(); got != uint64(want%256) {
				t.Fatalf("session %d: message %d got seq %d, want %d", session, want, got, want%256)
			}
		}
	}
}

func checkMetrics(t *testing.T, p *pb.Payload, want []*pb.Payload_Metric) {
	t.Helper()
	if len(p.Metrics) != len(want) {
		t.Fatalf("%d metrics, want %d:\n%v", len(p.Metrics), len(want), p)
	}
	for i, m := range p.Metrics {
		if !proto.Equal(m, want[i]) {
			t.Errorf("metric %d:\n got  %v\n want %v", i, m, want[i])
		}
	}
}

// BenchmarkDData encodes DDATA with 1 and 50 Float metrics and reports the
// message size.
func BenchmarkDData(b *testing.B) {
	for _, n := range []int{1, 50} {
		ms := make([]MetricDef, n)
		ss := make([]Sample, n)
		for i := range ms {
			ms[i] = MetricDef{Name: fmt.Sprintf("p%d", i), Type: pb.DataType_Float}
			ss[i] = Sample{Name: ms[i].Name, Value: reading.Float(21.5 + float64(i)), Time: read}
		}
		c, err := NewCatalog(nil, []Device{{ID: "boiler", Metrics: ms}})
		if err != nil {
			b.Fatal(err)
		}
		b.Run(fmt.Sprintf("%dmetrics", n), func(b *testing.B) {
			var size int
			for b.Loop() {
				p, err := c.DData(1, now, "boiler", ss)
				if err != nil {
					b.Fatal(err)
				}
				size = len(p)
			}
			b.ReportMetric(float64(size), "bytes/msg")
		})
	}
}

func TestEntryCheckTellsValuesAPayloadCannotCarry(t *testing.T) {
	c := testCatalog(t)
	setpoint, _ := c.Lookup("boiler", "setpoint")
	for _, tc := range []struct {
		v  reading.Value
		ok bool
	}{
		{reading.Int(-3), true}, {reading.Uint(7), true}, {reading.Value{}, true}, // a null fits any metric
		{reading.Int(40000), false}, {reading.Float(1.5), false}, {reading.String("1"), false},
	} {
		if err := setpoint.Check(tc.v); (err == nil) != tc.ok {
			t.Errorf("Int16 Check(%v) = %v, want ok %v", tc.v, err, tc.ok)
		}
	}
}
