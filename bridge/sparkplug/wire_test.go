package sparkplug

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fieldgate/fieldgate/internal/reading"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	pb "github.com/fieldgate/fieldgate/bridge/sparkplug/sparkplugpb"
)

// The generated code in sparkplugpb is the oracle of these tests: what the
// encoder writes must be what proto.Marshal writes for the payload built
// with the generated types, and the command decoder must accept what
// proto.Unmarshal accepts and read the same from it.

func ptr[T any](v T) *T { return &v }

// generatedMetric is the generated code's reading of a metric that
// carries v alone.
func generatedMetric(t testing.TB, v wireValue) *pb.Payload_Metric {
	t.Helper()
	var m pb.Payload_Metric
	if err := proto.Unmarshal(appendWireValue(nil, v), &m); err != nil {
		t.Fatal(err)
	}
	return &m
}

// commandMetricOf reads a metric written by the generated code as a
// command's metric.
func commandMetricOf(t testing.TB, m *pb.Payload_Metric) commandMetric {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	cm, err := readCommandMetric(b, protowire.DefaultRecursionLimit)
	if err != nil {
		t.Fatal(err)
	}
	return cm
}

// byteSource draws the choices of generated test cases from bytes, a
// fuzzer's or random ones; past its end it gives zeros.
type byteSource []byte

func (s *byteSource) byte() byte {
	if len(*s) == 0 {
		return 0
	}
	b := (*s)[0]
	*s = (*s)[1:]
	return b
}

func (s *byteSource) intn(n int) int { return int(s.byte()) % n }

func (s *byteSource) uint64() uint64 {
	var b [8]byte
	for i := range b {
		b[i] = s.byte()
	}
	return binary.LittleEndian.Uint64(b[:])
}

// string gives names and units: empty, ASCII, UTF-8, invalid UTF-8 (which
// proto2 strings may hold) and long enough for two-byte lengths.
func (s *byteSource) string() string {
	return [...]string{"", "x", "pump ü", "\xff\xfe", strings.Repeat("long", 40), fmt.Sprint(s.byte())}[s.intn(6)]
}

var encodedDataTypes = []DataType{Int8, Int16, Int32, Int64, UInt8, UInt16, UInt32, UInt64, Float, Double, Boolean, String, Text}

// value gives values of every kind, most integers small enough for the
// narrow datatypes, floats of any bits (NaN and infinities included).
func (s *byteSource) value() reading.Value {
	switch s.intn(6) {
	case 1:
		return reading.Bool(s.byte()&1 == 1)
	case 2:
		if s.byte()&1 == 0 {
			return reading.Int(int64(int8(s.byte())))
		}
		return reading.Int(int64(s.uint64()))
	case 3:
		if s.byte()&1 == 0 {
			return reading.Uint(uint64(s.byte()))
		}
		return reading.Uint(s.uint64())
	case 4:
		return reading.Float(math.Float64frombits(s.uint64()))
	case 5:
		return reading.String(s.string())
	}
	return reading.Value{} // null
}

func (s *byteSource) sample(e Entry) Sample {
	return Sample{Name: e.Name, Value: s.value(), Time: time.UnixMilli(int64(s.uint64())), Historical: s.byte()&1 == 1}
}

// metricDefs gives up to n metrics, of unique names.
func (s *byteSource) metricDefs(n int) []MetricDef {
	ms := make([]MetricDef, s.intn(n+1))
	for i := range ms {
		ms[i] = MetricDef{Name: fmt.Sprint(i, s.string()), Type: encodedDataTypes[s.intn(len(encodedDataTypes))]}
		if s.byte()&1 == 1 {
			ms[i].Unit = s.string()
		}
	}
	return ms
}

// expectedMetric builds with the generated types the metric the encoder
// must write for s (declare as in appendMetric).
func expectedMetric(e Entry, s Sample, declare bool) *pb.Payload_Metric {
	m := &pb.Payload_Metric{Timestamp: ptr(Millis(s.Time))}
	if declare || e.Alias == 0 {
		m.Name = ptr(e.Name)
	}
	if e.Alias != 0 {
		m.Alias = ptr(e.Alias)
	}
	if declare {
		m.Datatype = ptr(uint32(e.Type))
		if e.Unit != "" {
			m.Properties = &pb.Payload_PropertySet{Keys: []string{"engUnit"}, Values: []*pb.Payload_PropertyValue{
				{Type: ptr(uint32(pb.DataType_String)), Value: &pb.Payload_PropertyValue_StringValue{StringValue: e.Unit}},
			}}
		}
	} else if s.Historical {
		m.IsHistorical = ptr(true)
	}
	f, _ := s.Value.Float64()
	switch v := s.Value; {
	case v.Kind() == reading.KindInvalid:
		m.IsNull = ptr(true)
	case e.Type == Int64 || e.Type == UInt64:
		m.Value = &pb.Payload_Metric_LongValue{LongValue: v.Bits()}
	case e.Type >= Int8 && e.Type <= UInt32:
		m.Value = &pb.Payload_Metric_IntValue{IntValue: uint32(v.Bits())}
	case e.Type == Float:
		m.Value = &pb.Payload_Metric_FloatValue{FloatValue: float32(f)}
	case e.Type == Double:
		m.Value = &pb.Payload_Metric_DoubleValue{DoubleValue: f}
	case e.Type == Boolean:
		m.Value = &pb.Payload_Metric_BooleanValue{BooleanValue: v.Bits() != 0}
	default:
		m.Value = &pb.Payload_Metric_StringValue{StringValue: v.Str()}
	}
	return m
}

// checkEncoder builds a catalog and payloads of every kind from s and
// holds each against the generated code.
func checkEncoder(t *testing.T, s byteSource) {
	var devices []Device
	for i := range s.intn(3) + 1 {
		devices = append(devices, Device{ID: fmt.Sprint("d", i), Metrics: s.metricDefs(4)})
	}
	c, err := NewCatalog(s.metricDefs(3), devices)
	if err != nil {
		t.Fatal(err)
	}
	now, seq, bdSeq := time.UnixMilli(int64(s.uint64())), s.uint64(), s.byte()
	// same checks one payload: an error exactly when a sample does not
	// fit its metric, else the bytes proto.Marshal writes.
	same := func(what string, got []byte, err error, want []*pb.Payload_Metric, seq *uint64, fits bool) {
		t.Helper()
		if !fits || err != nil {
			if fits || err == nil {
				t.Fatalf("%s: error %v, but samples fit: %v", what, err, fits)
			}
			return
		}
		wp := &pb.Payload{Timestamp: ptr(Millis(now)), Metrics: want, Seq: seq}
		var p pb.Payload
		if err := proto.Unmarshal(got, &p); err != nil || !proto.Equal(&p, wp) {
			t.Fatalf("%s: decoded as %v, %v; want %v", what, &p, err, wp)
		}
		if wb, _ := proto.Marshal(wp); !bytes.Equal(got, wb) {
			t.Fatalf("%s: %x, proto.Marshal writes %x", what, got, wb)
		}
	}
	births := func(es []Entry) (map[string]Sample, []*pb.Payload_Metric, bool) {
		current := map[string]Sample{}
		var want []*pb.Payload_Metric
		fits := true
		for _, e := range es {
			sm := Sample{Time: now}
			if s.byte()&1 == 1 {
				sm = s.sample(e)
				current[e.Name] = sm
				fits = fits && e.Check(sm.Value) == nil
			}
			want = append(want, expectedMetric(e, sm, true))
		}
		return current, want, fits
	}
	data := func(es []Entry) ([]Sample, []*pb.Payload_Metric, bool) {
		var samples []Sample
		var want []*pb.Payload_Metric
		fits := true
		for range s.intn(6) {
			e := es[s.intn(len(es))]
			sm := s.sample(e)
			samples = append(samples, sm)
			want = append(want, expectedMetric(e, sm, false))
			fits = fits && e.Check(sm.Value) == nil
		}
		return samples, want, fits
	}

	current, want, fits := births(c.node[2:]) // NBirth sets bdSeq and rebirth
	got, err := c.NBirth(seq, now, bdSeq, current)
	want = append([]*pb.Payload_Metric{
		expectedMetric(c.node[0], Sample{Value: reading.Int(int64(bdSeq)), Time: now}, true),
		expectedMetric(c.node[1], Sample{Value: reading.Bool(false), Time: now}, true),
	}, want...)
	same("NBIRTH", got, err, want, &seq, fits)
	samples, want, fits := data(c.node) // bdSeq and rebirth by name, as they have no alias
	got, err = c.NData(seq, now, samples)
	same("NDATA", got, err, want, &seq, fits)
	for _, d := range c.order {
		es := c.devices[d]
		current, want, fits := births(es)
		got, err := c.DBirth(seq, now, d, current)
		same("DBIRTH", got, err, want, &seq, fits)
		if len(es) > 0 {
			samples, want, fits := data(es)
			got, err = c.DData(seq, now, d, samples)
			same("DDATA", got, err, want, &seq, fits)
		}
	}
	same("NDEATH", NDeath(bdSeq, now), nil, []*pb.Payload_Metric{expectedMetric(c.node[0], Sample{Value: reading.Int(int64(bdSeq)), Time: now}, true)}, nil, true)
	same("DDEATH", DDeath(seq, now), nil, nil, &seq, true)
}

func TestEncoderWritesWhatTheGeneratedCodeWrites(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		b := make([]byte, 512)
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		checkEncoder(t, b)
	}
}

func FuzzEncoder(f *testing.F) {
	f.Add([]byte{})
	f.Add(bytes.Repeat([]byte{1, 3, 5, 7, 255}, 100))
	f.Fuzz(func(t *testing.T, b []byte) { checkEncoder(t, b) })
}

// generatedCommand is the generated code's reading of a command's
// payload, in readCommand's terms.
func generatedCommand(payload []byte) (time.Time, []commandMetric, error) {
	var p pb.Payload
	if err := proto.Unmarshal(payload, &p); err != nil {
		return time.Time{}, nil, err
	}
	var sent time.Time
	if p.Timestamp != nil {
		sent = time.UnixMilli(int64(p.GetTimestamp())).UTC()
	}
	var ms []commandMetric
	for _, m := range p.Metrics {
		cm := commandMetric{name: m.GetName(), alias: m.GetAlias(), hasAlias: m.Alias != nil, datatype: m.GetDatatype(), hasDatatype: m.Datatype != nil, isNull: m.GetIsNull()}
		switch v := m.Value.(type) {
		case *pb.Payload_Metric_IntValue:
			cm.value = wireField{num: metricIntValue, u: uint64(v.IntValue)}
		case *pb.Payload_Metric_LongValue:
			cm.value = wireField{num: metricLongValue, u: v.LongValue}
		case *pb.Payload_Metric_FloatValue:
			cm.value = wireField{num: metricFloatValue, u: uint64(math.Float32bits(v.FloatValue))}
		case *pb.Payload_Metric_DoubleValue:
			cm.value = wireField{num: metricDoubleValue, u: math.Float64bits(v.DoubleValue)}
		case *pb.Payload_Metric_BooleanValue:
			cm.value = wireField{num: metricBooleanValue, u: map[bool]uint64{true: 1}[v.BooleanValue]}
		case *pb.Payload_Metric_StringValue:
			cm.value = wireField{num: metricStringValue, b: []byte(v.StringValue)}
		case *pb.Payload_Metric_BytesValue:
			cm.value = wireField{num: 16, b: v.BytesValue}
		case *pb.Payload_Metric_DatasetValue:
			cm.value = wireField{num: 17}
		case *pb.Payload_Metric_TemplateValue:
			cm.value = wireField{num: 18}
		case *pb.Payload_Metric_ExtensionValue:
			cm.value = wireField{num: metricExtensionValue}
		}
		ms = append(ms, cm)
	}
	return sent, ms, nil
}

// sameCommandMetric compares two readings of a metric in what valueOf and
// Catalog.command use: the value's content as its field's type reads it
// (an int_value of its varint's low 32 bits, a boolean_value true if not
// 0), not the content of a message-valued one.
func sameCommandMetric(a, b commandMetric) bool {
	va, vb := a.value, b.value
	if a.name != b.name || a.alias != b.alias || a.hasAlias != b.hasAlias || a.datatype != b.datatype ||
		a.hasDatatype != b.hasDatatype || a.isNull != b.isNull || va.num != vb.num {
		return false
	}
	switch va.num {
	case metricIntValue, metricFloatValue:
		return uint32(va.u) == uint32(vb.u)
	case metricBooleanValue:
		return (va.u != 0) == (vb.u != 0)
	case metricLongValue, metricDoubleValue:
		return va.u == vb.u
	case metricStringValue, 16:
		return bytes.Equal(va.b, vb.b)
	}
	return true
}

// checkDecoder holds readCommand against the generated code's reading of
// payload: both refuse it, or both read the same from it.
func checkDecoder(t *testing.T, payload []byte) {
	t.Helper()
	sent, ms, err := readCommand(payload)
	wsent, wms, werr := generatedCommand(payload)
	if (err == nil) != (werr == nil) {
		t.Fatalf("%x: error %v, the generated code's %v", payload, err, werr)
	}
	if !sent.Equal(wsent) || len(ms) != len(wms) {
		t.Fatalf("%x: sent %v with %d metrics, the generated code reads %v with %d", payload, sent, len(ms), wsent, len(wms))
	}
	for i := range ms {
		if !sameCommandMetric(ms[i], wms[i]) {
			t.Fatalf("%x: metric %d is %+v, the generated code reads %+v", payload, i, ms[i], wms[i])
		}
	}
}

// nest gives a payload of messages nested 3 + n deep: a metric's
// properties, then n levels of PropertySet.values and
// PropertyValue.propertyset_value in turn.
func nest(n int) []byte {
	var b []byte
	for i := range n {
		num := propertySetValues // in a PropertySet, outermost
		if (n-1-i)%2 == 1 {
			num = 9 // in a PropertyValue
		}
		b = protowire.AppendBytes(protowire.AppendTag(nil, num, protowire.BytesType), b)
	}
	b = protowire.AppendBytes(protowire.AppendTag(nil, metricProperties, protowire.BytesType), b)
	return protowire.AppendBytes(protowire.AppendTag(nil, payloadMetrics, protowire.BytesType), b)
}

// wireCases are command payloads at the edges of the wire format, each
// with whether the generated code takes it.
func wireCases() []struct {
	name    string
	payload []byte
	ok      bool
} {
	tag := func(num protowire.Number, typ protowire.Type) []byte { return protowire.AppendTag(nil, num, typ) }
	cat := func(bs ...[]byte) []byte { return bytes.Join(bs, nil) }
	msg := func(num protowire.Number, bs ...[]byte) []byte {
		return protowire.AppendBytes(tag(num, protowire.BytesType), cat(bs...))
	}
	varint := func(num protowire.Number, v uint64) []byte {
		return protowire.AppendVarint(tag(num, protowire.VarintType), v)
	}
	metric := func(bs ...[]byte) []byte { return msg(payloadMetrics, bs...) }
	setpoint := metric(msg(metricName, []byte("setpoint")), varint(metricIntValue, 7))
	return []struct {
		name    string
		payload []byte
		ok      bool
	}{
		{"empty", nil, true},
		{"a command", cat(varint(payloadTimestamp, 1), setpoint), true},
		{"truncated varint", []byte{byte(payloadTimestamp << 3), 0x80}, false},
		{"varint of 11 bytes", append(tag(payloadTimestamp, protowire.VarintType), bytes.Repeat([]byte{0xff}, 10)...), false},
		{"truncated length", setpoint[:len(setpoint)-1], false},
		{"length past the end", cat(tag(payloadMetrics, protowire.BytesType), []byte{5, 0}), false},
		{"truncated float", metric(tag(metricFloatValue, protowire.Fixed32Type), []byte{0, 0}), false},
		{"truncated tag", []byte{0x80}, false},
		{"field number 0", varint(0, 1), false},
		{"field number past the largest", varint(protowire.MaxValidNumber+1, 1), false},
		{"the largest field number", varint(protowire.MaxValidNumber, 1), true},
		{"wire type 6", tag(100, 6), false},
		{"wire type 7", cat(tag(100, 7), []byte{0}), false},
		{"end group alone", tag(100, protowire.EndGroupType), false},
		{"unknown group", cat(tag(100, protowire.StartGroupType), varint(1, 1), tag(100, protowire.EndGroupType)), true},
		{"unclosed group", cat(tag(100, protowire.StartGroupType), varint(1, 1)), false},
		{"group closed by another", cat(tag(100, protowire.StartGroupType), tag(101, protowire.EndGroupType)), false},
		{"metrics as a group", cat(tag(payloadMetrics, protowire.StartGroupType), tag(payloadMetrics, protowire.EndGroupType)), true},
		{"unknown fields", cat(varint(100, 1), msg(6, []byte{0xff}), setpoint), true},
		{"known fields of other wire types", metric(varint(metricName, 1), protowire.AppendFixed64(tag(metricAlias, protowire.Fixed64Type), 5), msg(metricIntValue, []byte{1}), varint(metricIsNull, 1)), true},
		{"timestamp of another wire type", protowire.AppendFixed32(tag(payloadTimestamp, protowire.Fixed32Type), 1), true},
		{"the last value of the oneof", metric(varint(metricIntValue, 7), msg(17), msg(metricStringValue, []byte("x"))), true},
		{"a value of another wire type after one", metric(varint(metricBooleanValue, 2), protowire.AppendFixed32(tag(metricIntValue, protowire.Fixed32Type), 1)), true},
		{"an int_value past 32 bits", metric(varint(metricIntValue, 1<<40|3)), true},
		{"invalid UTF-8 in a proto2 string", metric(msg(metricName, []byte("\xff")), msg(metricStringValue, []byte("\xc3"))), true},
		{"a bad metric in a good payload", cat(setpoint, metric([]byte{0x80})), false},
		{"a bad nested message", metric(msg(metricProperties, msg(propertySetValues, []byte{0x08}))), false},
		{"a bad extension", metric(msg(metricExtensionValue, []byte{0x08})), false},
		{"a bad metadata", metric(msg(8, tag(1, protowire.EndGroupType))), false},
		{"packed DataSet types", metric(msg(17, msg(3, []byte{1, 0x80, 1}))), true},
		{"a truncated packed varint", metric(msg(17, msg(3, []byte{1, 0x80}))), false},
		{"DataSet types unpacked", metric(msg(17, varint(3, 1))), true},
		{"a bad row in a template's dataset", metric(msg(18, metric(msg(17, msg(4, msg(1, []byte{0x80})))))), false},
		{"a bad parameter", metric(msg(18, msg(3, msg(9, []byte{0x0d})))), false},
		{"a bad property set list", metric(msg(metricProperties, msg(propertySetValues, msg(10, msg(1, []byte{0x12, 2}))))), false},
		{"a bytes value is not looked into", metric(msg(16, []byte{0x80})), true},
		{"nested as deep as allowed", nest(protowire.DefaultRecursionLimit - 3), true},
		{"nested one deeper", nest(protowire.DefaultRecursionLimit - 2), false},
	}
}

func TestDecoderTakesWhatTheGeneratedCodeTakes(t *testing.T) {
	for _, c := range wireCases() {
		t.Run(c.name, func(t *testing.T) {
			if _, _, err := readCommand(c.payload); (err == nil) != c.ok {
				t.Errorf("error %v, want ok %v", err, c.ok)
			}
			checkDecoder(t, c.payload)
		})
	}
}

// The reason for writing the wire format here: fieldgate's binary links
// no more of protobuf than protowire.
func TestFieldgateDoesNotLinkTheProtobufRuntime(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "github.com/fieldgate/fieldgate/cmd/fieldgate").Output()
	if err != nil {
		t.Fatal(err)
	}
	deps := strings.Fields(string(out))
	for _, p := range []string{"google.golang.org/protobuf/proto", "google.golang.org/protobuf/reflect/protoreflect", "google.golang.org/protobuf/internal/impl"} {
		if slices.Contains(deps, p) {
			t.Errorf("fieldgate imports %s", p)
		}
	}
}
