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
		{"bool", false, pb.DataType_Boolean},
		{"int16", false, pb.DataType_Int16},
		{"uint16", false, pb.DataType_UInt16},
		{"int32", false, pb.DataType_Int32},
		{"uint32", false, pb.DataType_UInt32},
		{"int64", false, pb.DataType_Int64},
		{"uint64", false, pb.DataType_UInt64}, // also a GPIO counter
		{"float32", false, pb.DataType_Float},
		{"float64", false, pb.DataType_Double},
		{"string", false, pb.DataType_String},
		{"int16", true, pb.DataType_Double}, // 234 at scale 0.1 is 23.4
		{"float32", true, pb.DataType_Double},
		{"uint64", true, pb.DataType_Double},
		{"bool", true, pb.DataType_Boolean}, // scale never applies to these
		{"string", true, pb.DataType_String},
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
		{pb.DataType_Boolean, reading.Bool(true), &pb.Payload_Metric{Value: &pb.Payload_Metric_BooleanValue{BooleanValue: true}}},
		{pb.DataType_Boolean, reading.Bool(false), &pb.Payload_Metric{Value: &pb.Payload_Metric_BooleanValue{BooleanValue: false}}},
		{pb.DataType_Int8, reading.Int(-128), &pb.Payload_Metric{Value: &pb.Payload_Metric_IntValue{IntValue: 0xffffff80}}},
		{pb.DataType_Int16, reading.Int(-5), &pb.Payload_Metric{Value: &pb.Payload_Metric_IntValue{IntValue: 0xfffffffb}}},
		{pb.DataType_Int16, reading.Int(math.MaxInt16), &pb.Payload_Metric{Value: &pb.Payload_Metric_IntValue{IntValue: math.MaxInt16}}},
		{pb.DataType_Int32, reading.Int(math.MinInt32), &pb.Payload_Metric{Value: &pb.Payload_Metric_IntValue{IntValue: 0x80000000}}},
		{pb.DataType_UInt8, reading.Uint(255), &pb.Payload_Metric{Value: &pb.Payload_Metric_IntValue{IntValue: 255}}},
		{pb.DataType_UInt16, reading.Uint(65535), &pb.Payload_Metric{Value: &pb.Payload_Metric_IntValue{IntValue: 65535}}},
		{pb.DataType_UInt32, reading.Uint(math.MaxUint32), &pb.Payload_Metric{Value: &pb.Payload_Metric_IntValue{IntValue: math.MaxUint32}}},
		{pb.DataType_Int64, reading.Int(math.MinInt64), &pb.Payload_Metric{Value: &pb.Payload_Metric_LongValue{LongValue: 1 << 63}}},
		{pb.DataType_Int64, reading.Int(-1), &pb.Payload_Metric{Value: &pb.Payload_Metric_LongValue{LongValue: math.MaxUint64}}},
		{pb.DataType_UInt64, reading.Uint(math.MaxUint64), &pb.Payload_Metric{Value: &pb.Payload_Metric_LongValue{LongValue: math.MaxUint64}}},
		{pb.DataType_Float, reading.Float(21.5), &pb.Payload_Metric{Value: &pb.Payload_Metric_FloatValue{FloatValue: 21.5}}},
		{pb.DataType_Float, reading.Float(0.1), &pb.Payload_Metric{Value: &pb.Payload_Metric_FloatValue{FloatValue: 0.1}}},
		{pb.DataType_Double, reading.Float(23.4), &pb.Payload_Metric{Value: &pb.Payload_Metric_DoubleValue{DoubleValue: 23.4}}},
		{pb.DataType_Double, reading.Float(math.Inf(-1)), &pb.Payload_Metric{Value: &pb.Payload_Metric_DoubleValue{DoubleValue: math.Inf(-1)}}},
		{pb.DataType_String, reading.String("pump ü"), &pb.Payload_Metric{Value: &pb.Payload_Metric_StringValue{StringValue: "pump ü"}}},
		{pb.DataType_Text, reading.String(""), &pb.Payload_Metric{Value: &pb.Payload_Metric_StringValue{StringValue: ""}}},
	}
}

func TestValuesTravelInTheFieldOfTheirDatatype(t *testing.T) {
	for _, c := range valueCases() {
		var m pb.Payload_Metric
		if err := setValue(&m, c.dt, c.v); err != nil {
			t.Errorf("%s %s: %v", c.dt, c.v, err)
			continue
		}
		if !proto.Equal(&m, c.wire) {
			t.Errorf("%s %s: encoded %v, want %v", c.dt, c.v, &m, c.wire)
		}
		got, err := valueOf(c.wire, c.dt)
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
		{pb.DataType_UInt16, reading.Int(7), true},                    // an Int that fits
		{pb.DataType_Int64, reading.Uint(7), true},                    // a Uint that fits
		{pb.DataType_Double, reading.Int(-3), true},                   // an integer as a number
		{pb.DataType_Float, reading.Uint(3), true},                    //
		{pb.DataType_UInt16, reading.Int(-1), false},                  // negative into unsigned
		{pb.DataType_Int16, reading.Int(40000), false},                // too large
		{pb.DataType_Int64, reading.Uint(math.MaxUint64), false},      // too large
		{pb.DataType_Int16, reading.Float(2), false},                  // never a float into an integer
		{pb.DataType_Double, reading.Bool(true), false},               // a boolean is no number
		{pb.DataType_Boolean, reading.Int(1), false},                  // nor a number a boolean
		{pb.DataType_String, reading.Float(1), false},                 // nor anything a string
		{pb.DataType_DateTime, reading.Uint(1), false},                // unsupported datatype
		{pb.DataType_Int32, reading.String("5"), false},               //
		{pb.DataType_UInt64, reading.Uint(math.MaxUint64), true},      //
		{pb.DataType_Int8, reading.Int(math.MinInt8 - 1), false},      //
		{pb.DataType_UInt32, reading.Uint(math.MaxUint32 + 1), false}, //
	} {
		var m pb.Payload_Metric
		if err := setValue(&m, c.dt, c.v); (err == nil) != c.ok {
			t.Errorf("setValue(%s, %s %s) = %v, want ok %v", c.dt, c.v.Kind(), c.v, err, c.ok)
		}
	}
	var m pb.Payload_Metric
	if err := setValue(&m, pb.DataType_Int16, reading.Value{}); err != nil || !m.GetIsNull() || m.Value != nil {
		t.Errorf("the invalid Value encoded as %v, %v; want is_null and no value", &m, err)
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
		{pb.DataType_UInt32, &pb.Payload_Metric{Value: &pb.Payload_Metric_LongValue{LongValue: 70000}}, reading.Uint(70000), true, ""},
		{pb.DataType_UInt32, &pb.Payload_Metric{Value: &pb.Payload_Metric_LongValue{LongValue: 1 << 32}}, reading.Value{}, false, "out of range"},
		{pb.DataType_Int8, &pb.Payload_Metric{Value: &pb.Payload_Metric_IntValue{IntValue: 300}}, reading.Value{}, false, "out of range"},
		{pb.DataType_UInt16, &pb.Payload_Metric{Value: &pb.Payload_Metric_IntValue{IntValue: 70000}}, reading.Value{}, false, "out of range"},
		{pb.DataType_Boolean, &pb.Payload_Metric{Value: &pb.Payload_Metric_IntValue{IntValue: 1}}, reading.Value{}, false, "int_value"},
		{pb.DataType_Double, &pb.Payload_Metric{Value: &pb.Payload_Metric_FloatValue{FloatValue: 1}}, reading.Value{}, false, "float_value"},
		{pb.DataType_Int64, &pb.Payload_Metric{Value: &pb.Payload_Metric_IntValue{IntValue: 1}}, reading.Value{}, false, "int_value"},
		{pb.DataType_String, &pb.Payload_Metric{Value: &pb.Payload_Metric_BytesValue{BytesValue: []byte("x")}}, reading.Value{}, false, "another type"},
		{pb.DataType_Int16, &pb.Payload_Metric{}, reading.Value{}, false, "no value"},
		{pb.DataType_Int16, &pb.Payload_Metric{IsNull: ptr(true)}, reading.Value{}, false, "null"},
	} {
		got, err := valueOf(c.m, c.dt)
		if (err == nil) != c.ok || got != c.want {
			t.Errorf("valueOf(%v, %s) = %s, %v; want %s, ok %v", c.m, c.dt, got, err, c.want, c.ok)
		}
		if err != nil && (!errors.Is(err, adapters.ErrBadValue) || !strings.Contains(err.Error(), c.cause)) {
			t.Errorf("valueOf(%v, %s): error %q, want ErrBadValue mentioning %q", c.m, c.dt, err, c.cause)
		}
	}
}
