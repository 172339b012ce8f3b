package sparkplug

import (
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/fieldgate/fieldgate/internal/reading"

	"google.golang.org/protobuf/proto"

	"github.com/fieldgate/fieldgate/adapters"
	pb "github.com/fieldgate/fieldgate/bridge/sparkplug/sparkplugpb"
)

func TestPointDataType(t *testing.T) {
	for _, c := range []struct {
		typ    string
		scaled bool
		want   DataType
	}{
		{"bool", false, Boolean},
		{"int16", false, Int16},
		{"uint16", false, UInt16},
		{"int32", false, Int32},
		{"uint32", false, UInt32},
		{"int64", false, Int64},
		{"uint64", false, UInt64}, // also a GPIO counter
		{"float32", false, Float},
		{"float64", false, Double},
		{"string", false, String},
		{"int16", true, Double}, // 234 at scale 0.1 is 23.4
		{"float32", true, Double},
		{"uint64", true, Double},
		{"bool", true, Boolean}, // scale never applies to these
		{"string", true, String},
	} {
		got, err := PointDataType(c.typ, c.scaled)
		if err != nil || got != c.want {
			t.Errorf("PointDataType(%q, %v) = %v, %v; want %v", c.typ, c.scaled, got, err, c.want)
		}
	}
	if _, err := PointDataType("flaot32", false); err == nil {
		t.Error("an unknown type got a datatype")
	}
}

// valueCases feed both the encoder (setValue) and the command decoder
// (valueOf): a value of a datatype, and the protobuf field it travels in.
func valueCases() []struct {
	dt   DataType
	v    reading.Value
	wire *pb.Payload_Metric
} {
	return []struct {
		dt   DataType
		v    reading.Value
		wire *pb.Payload_Metric
	}{
		{Boolean, reading.Bool(true), &pb.Payload_Metric{Value: &pb.Payload_Metric_BooleanValue{BooleanValue: true}}},
		{Boolean, reading.Bool(false), &pb.Payload_Metric{Value: &pb.Payload_Metric_BooleanValue{BooleanValue: false}}},
		{Int8, reading.Int(-128), &pb.Payload_Metric{Value: &pb.Payload_Metric_IntValue{IntValue: 0xffffff80}}},
		{Int16, reading.Int(-5), &pb.Payload_Metric{Value: &pb.Payload_Metric_IntValue{IntValue: 0xfffffffb}}},
		{Int16, reading.Int(math.MaxInt16), &pb.Payload_Metric{Value: &pb.Payload_Metric_IntValue{IntValue: math.MaxInt16}}},
		{Int32, reading.Int(math.MinInt32), &pb.Payload_Metric{Value: &pb.Payload_Metric_IntValue{IntValue: 0x80000000}}},
		{UInt8, reading.Uint(255), &pb.Payload_Metric{Value: &pb.Payload_Metric_IntValue{IntValue: 255}}},
		{UInt16, reading.Uint(65535), &pb.Payload_Metric{Value: &pb.Payload_Metric_IntValue{IntValue: 65535}}},
		{UInt32, reading.Uint(math.MaxUint32), &pb.Payload_Metric{Value: &pb.Payload_Metric_IntValue{IntValue: math.MaxUint32}}},
		{Int64, reading.Int(math.MinInt64), &pb.Payload_Metric{Value: &pb.Payload_Metric_LongValue{LongValue: 1 << 63}}},
		{Int64, reading.Int(-1), &pb.Payload_Metric{Value: &pb.Payload_Metric_LongValue{LongValue: math.MaxUint64}}},
		{UInt64, reading.Uint(math.MaxUint64), &pb.Payload_Metric{Value: &pb.Payload_Metric_LongValue{LongValue: math.MaxUint64}}},
		{Float, reading.Float(21.5), &pb.Payload_Metric{Value: &pb.Payload_Metric_FloatValue{FloatValue: 21.5}}},
		{Float, reading.Float(0.1), &pb.Payload_Metric{Value: &pb.Payload_Metric_FloatValue{FloatValue: 0.1}}},
		{Double, reading.Float(23.4), &pb.Payload_Metric{Value: &pb.Payload_Metric_DoubleValue{DoubleValue: 23.4}}},
		{Double, reading.Float(math.Inf(-1)), &pb.Payload_Metric{Value: &pb.Payload_Metric_DoubleValue{DoubleValue: math.Inf(-1)}}},
		{String, reading.String("pump ü"), &pb.Payload_Metric{Value: &pb.Payload_Metric_StringValue{StringValue: "pump ü"}}},
		{Text, reading.String(""), &pb.Payload_Metric{Value: &pb.Payload_Metric_StringValue{StringValue: ""}}},
	}
}

func TestValuesTravelInTheFieldOfTheirDatatype(t *testing.T) {
	for _, c := range valueCases() {
		v, err := wireValueOf(c.dt, c.v)
		if err != nil {
			t.Errorf("%s %s: %v", c.dt, c.v, err)
			continue
		}
		if m := generatedMetric(t, v); !proto.Equal(m, c.wire) {
			t.Errorf("%s %s: encoded %v, want %v", c.dt, c.v, m, c.wire)
		}
		got, err := valueOf(commandMetricOf(t, c.wire), c.dt)
		if err != nil || got != c.v {
			t.Errorf("%s %v: decoded %s, %v; want %s", c.dt, c.wire, got, err, c.v)
		}
	}
}

func TestEncodingConvertsOnlyWhenExact(t *testing.T) {
	for _, c := range []struct {
		dt DataType
		v  reading.Value
		ok bool
	}{
		{UInt16, reading.Int(7), true},                    // an Int that fits
		{Int64, reading.Uint(7), true},                    // a Uint that fits
		{Double, reading.Int(-3), true},                   // an integer as a number
		{Float, reading.Uint(3), true},                    //
		{UInt16, reading.Int(-1), false},                  // negative into unsigned
		{Int16, reading.Int(40000), false},                // too large
		{Int64, reading.Uint(math.MaxUint64), false},      // too large
		{Int16, reading.Float(2), false},                  // never a float into an integer
		{Double, reading.Bool(true), false},               // a boolean is no number
		{Boolean, reading.Int(1), false},                  // nor a number a boolean
		{String, reading.Float(1), false},                 // nor anything a string
		{DateTime, reading.Uint(1), false},                // unsupported datatype
		{Int32, reading.String("5"), false},               //
		{UInt64, reading.Uint(math.MaxUint64), true},      //
		{Int8, reading.Int(math.MinInt8 - 1), false},      //
		{UInt32, reading.Uint(math.MaxUint32 + 1), false}, //
	} {
		if _, err := wireValueOf(c.dt, c.v); (err == nil) != c.ok {
			t.Errorf("wireValueOf(%s, %s %s) = %v, want ok %v", c.dt, c.v.Kind(), c.v, err, c.ok)
		}
	}
	v, err := wireValueOf(Int16, reading.Value{})
	if m := generatedMetric(t, v); err != nil || !m.GetIsNull() || m.Value != nil {
		t.Errorf("the invalid Value encoded as %v, %v; want is_null and no value", m, err)
	}
}

func TestCommandValuesMustFitTheirDatatype(t *testing.T) {
	for _, c := range []struct {
		dt    DataType
		m     *pb.Payload_Metric
		want  reading.Value
		ok    bool
		cause string
	}{
		// Eclipse Tahu's JavaScript library sends UInt32 in long_value.
		{UInt32, &pb.Payload_Metric{Value: &pb.Payload_Metric_LongValue{LongValue: 70000}}, reading.Uint(70000), true, ""},
		{UInt32, &pb.Payload_Metric{Value: &pb.Payload_Metric_LongValue{LongValue: 1 << 32}}, reading.Value{}, false, "out of range"},
		{Int8, &pb.Payload_Metric{Value: &pb.Payload_Metric_IntValue{IntValue: 300}}, reading.Value{}, false, "out of range"},
		{UInt16, &pb.Payload_Metric{Value: &pb.Payload_Metric_IntValue{IntValue: 70000}}, reading.Value{}, false, "out of range"},
		{Boolean, &pb.Payload_Metric{Value: &pb.Payload_Metric_IntValue{IntValue: 1}}, reading.Value{}, false, "int_value"},
		{Double, &pb.Payload_Metric{Value: &pb.Payload_Metric_FloatValue{FloatValue: 1}}, reading.Value{}, false, "float_value"},
		{Int64, &pb.Payload_Metric{Value: &pb.Payload_Metric_IntValue{IntValue: 1}}, reading.Value{}, false, "int_value"},
		{String, &pb.Payload_Metric{Value: &pb.Payload_Metric_BytesValue{BytesValue: []byte("x")}}, reading.Value{}, false, "another type"},
		{Int16, &pb.Payload_Metric{}, reading.Value{}, false, "no value"},
		{Int16, &pb.Payload_Metric{IsNull: ptr(true)}, reading.Value{}, false, "null"},
	} {
		got, err := valueOf(commandMetricOf(t, c.m), c.dt)
		if (err == nil) != c.ok || got != c.want {
			t.Errorf("valueOf(%v, %s) = %s, %v; want %s, ok %v", c.m, c.dt, got, err, c.want, c.ok)
		}
		if err != nil && (!errors.Is(err, adapters.ErrBadValue) || !strings.Contains(err.Error(), c.cause)) {
			t.Errorf("valueOf(%v, %s): error %q, want ErrBadValue mentioning %q", c.m, c.dt, err, c.cause)
		}
	}
}

func TestDataTypesAreThoseOfTheProtoFile(t *testing.T) {
	for n := int32(-1); n <= int32(DateTimeArray)+1; n++ {
		if got, want := DataType(n).String(), pb.DataType(n).String(); got != want {
			t.Errorf("datatype %d is %s, sparkplug_b.proto's %s", n, got, want)
		}
	}
	if Text != DataType(pb.DataType_Text) || DateTimeArray != DataType(pb.DataType_DateTimeArray) {
		t.Error("the constants are not numbered as sparkplug_b.proto")
	}
}
