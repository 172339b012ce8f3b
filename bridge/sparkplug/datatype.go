package sparkplug

import (
	"fmt"
	"math"
	"strconv"

	"github.com/fieldgate/fieldgate/internal/reading"

	"github.com/fieldgate/fieldgate/adapters"
	pb "github.com/fieldgate/fieldgate/bridge/sparkplug/sparkplugpb"
)

// DataType is a metric's Sparkplug datatype.
type DataType = pb.DataType

// PointDataType returns the Sparkplug datatype of a fieldgate point type
// (SPEC §2: bool int16 uint16 int32 uint32 int64 uint64 float32 float64
// string; a GPIO counter is uint64). A numeric point with a scale or an
// offset publishes engineering values that are no longer integers (a
// register of 234 at scale 0.1 is 23.4), so scaled says whether it has one
// and makes any numeric type a Double.
func PointDataType(pointType string, scaled bool) (DataType, error) {
	dt, ok := pointDataTypes[pointType]
	switch {
	case !ok:
		return pb.DataType_Unknown, fmt.Errorf("no Sparkplug datatype for point type %q", pointType)
	case scaled && dt != pb.DataType_Boolean && dt != pb.DataType_String:
		return pb.DataType_Double, nil
	}
	return dt, nil
}

var pointDataTypes = map[string]DataType{
	"bool":    pb.DataType_Boolean,
	"int16":   pb.DataType_Int16,
	"uint16":  pb.DataType_UInt16,
	"int32":   pb.DataType_Int32,
	"uint32":  pb.DataType_UInt32,
	"int64":   pb.DataType_Int64,
	"uint64":  pb.DataType_UInt64,
	"float32": pb.DataType_Float,
	"float64": pb.DataType_Double,
	"string":  pb.DataType_String,
}

// intRange is the span of the integer datatypes, by datatype.
var intRange = map[DataType]struct {
	min int64
	max uint64
}{
	pb.DataType_Int8:   {math.MinInt8, math.MaxInt8},
	pb.DataType_Int16:  {math.MinInt16, math.MaxInt16},
	pb.DataType_Int32:  {math.MinInt32, math.MaxInt32},
	pb.DataType_Int64:  {math.MinInt64, math.MaxInt64},
	pb.DataType_UInt8:  {0, math.MaxUint8},
	pb.DataType_UInt16: {0, math.MaxUint16},
	pb.DataType_UInt32: {0, math.MaxUint32},
	pb.DataType_UInt64: {0, math.MaxUint64},
}

// supported reports whether fieldgate encodes and decodes values of dt.
func supported(dt DataType) bool {
	_, isInt := intRange[dt]
	switch dt {
	case pb.DataType_Float, pb.DataType_Double, pb.DataType_Boolean, pb.DataType_String, pb.DataType_Text:
		return true
	}
	return isInt
}

// setValue stores v in m's value field for datatype dt, as the Sparkplug
// 3.0 datatype table says: the 8 to 32-bit integers in int_value (signed
// ones as their two's complement bits), the 64-bit ones in long_value.
// The invalid (zero) Value is a null: is_null and no value. A value of
// another kind is converted only when that is exact: an Int into an
// unsigned type when it is not negative, any integer into Float or Double,
// never a Float into an integer type.
func setValue(m *pb.Payload_Metric, dt DataType, v reading.Value) error {
	if v.Kind() == reading.KindInvalid {
		m.IsNull = ptr(true)
		return nil
	}
	if r, ok := intRange[dt]; ok {
		bits, err := intBits(v, r.min, r.max)
		if err != nil {
			return fmt.Errorf("%s value %s: %w", dt, v, err)
		}
		if dt == pb.DataType_Int64 || dt == pb.DataType_UInt64 {
			m.Value = &pb.Payload_Metric_LongValue{LongValue: bits}
		} else {
			m.Value = &pb.Payload_Metric_IntValue{IntValue: uint32(bits)}
		}
		return nil
	}
	switch dt {
	case pb.DataType_Float, pb.DataType_Double:
		f, ok := v.Float64()
		if !ok || v.Kind() == reading.KindBool {
			return fmt.Errorf("%s value %s: not a number", dt, v)
		}
		if dt == pb.DataType_Float {
			m.Value = &pb.Payload_Metric_FloatValue{FloatValue: float32(f)}
		} else {
			m.Value = &pb.Payload_Metric_DoubleValue{DoubleValue: f}
		}
	case pb.DataType_Boolean:
		if v.Kind() != reading.KindBool {
			return fmt.Errorf("%s value %s: not a boolean", dt, v)
		}
		m.Value = &pb.Payload_Metric_BooleanValue{BooleanValue: v.Bits() != 0}
	case pb.DataType_String, pb.DataType_Text:
		if v.Kind() != reading.KindString {
			return fmt.Errorf("%s value %s: not a string", dt, v)
		}
		m.Value = &pb.Payload_Metric_StringValue{StringValue: v.Str()}
	default:
		return fmt.Errorf("datatype %s is not supported", dt)
	}
	return nil
}

// intBits returns an integer value's two's complement bits when it lies in
// [lo, hi].
func intBits(v reading.Value, lo int64, hi uint64) (uint64, error) {
	switch v.Kind() {
	case reading.KindInt:
		i := int64(v.Bits())
		if i < lo || (i >= 0 && uint64(i) > hi) {
			return 0, fmt.Errorf("out of range")
		}
		return v.Bits(), nil
	case reading.KindUint:
		if v.Bits() > hi {
			return 0, fmt.Errorf("out of range")
		}
		return v.Bits(), nil
	}
	return 0, fmt.Errorf("not an integer")
}

// valueOf reads the value of a command metric whose datatype is dt. The
// value must sit in the field the datatype table assigns to dt; a UInt32
// is also taken from long_value, where Eclipse Tahu's JavaScript library
// puts it (and its Java library accepts it). Signed integers are
// sign-extended from their width; a Float becomes the float64 of its
// shortest decimal form (0.1, not 0.10000000149011612), as fieldgate
// decodes float32 registers.
func valueOf(m *pb.Payload_Metric, dt DataType) (reading.Value, error) {
	if m.GetIsNull() {
		return reading.Value{}, fmt.Errorf("%w: a null value cannot be written", adapters.ErrBadValue)
	}
	wrong := func() (reading.Value, error) {
		if m.Value == nil {
			return reading.Value{}, fmt.Errorf("%w: no value", adapters.ErrBadValue)
		}
		return reading.Value{}, fmt.Errorf("%w: a %s metric cannot carry %s", adapters.ErrBadValue, dt, valueField(m))
	}
	r, isInt := intRange[dt]
	switch v := m.Value.(type) {
	case *pb.Payload_Metric_IntValue:
		if !isInt || dt == pb.DataType_Int64 || dt == pb.DataType_UInt64 {
			return wrong()
		}
		if r.min < 0 {
			return checkInt(reading.Int(int64(int32(v.IntValue))), dt, r.min, r.max)
		}
		return checkInt(reading.Uint(uint64(v.IntValue)), dt, r.min, r.max)
	case *pb.Payload_Metric_LongValue:
		switch dt {
		case pb.DataType_Int64:
			return reading.Int(int64(v.LongValue)), nil
		case pb.DataType_UInt64, pb.DataType_UInt32:
			return checkInt(reading.Uint(v.LongValue), dt, r.min, r.max)
		}
	case *pb.Payload_Metric_FloatValue:
		if dt == pb.DataType_Float {
			f, _ := strconv.ParseFloat(strconv.FormatFloat(float64(v.FloatValue), 'g', -1, 32), 64)
			return reading.Float(f), nil
		}
	case *pb.Payload_Metric_DoubleValue:
		if dt == pb.DataType_Double {
			return reading.Float(v.DoubleValue), nil
		}
	case *pb.Payload_Metric_BooleanValue:
		if dt == pb.DataType_Boolean {
			return reading.Bool(v.BooleanValue), nil
		}
	case *pb.Payload_Metric_StringValue:
		if dt == pb.DataType_String || dt == pb.DataType_Text {
			return reading.String(v.StringValue), nil
		}
	}
	return wrong()
}

// checkInt refuses an integer that does not fit dt: an Int8 of 300 in its
// 32-bit field.
func checkInt(v reading.Value, dt DataType, lo int64, hi uint64) (reading.Value, error) {
	if _, err := intBits(v, lo, hi); err != nil {
		return reading.Value{}, fmt.Errorf("%w: %s is out of range for %s", adapters.ErrBadValue, v, dt)
	}
	return v, nil
}

// valueField names the field a metric's value is in, for error messages.
func valueField(m *pb.Payload_Metric) string {
	switch m.Value.(type) {
	case *pb.Payload_Metric_IntValue:
		return "int_value"
	case *pb.Payload_Metric_LongValue:
		return "long_value"
	case *pb.Payload_Metric_FloatValue:
		return "float_value"
	case *pb.Payload_Metric_DoubleValue:
		return "double_value"
	case *pb.Payload_Metric_BooleanValue:
		return "boolean_value"
	case *pb.Payload_Metric_StringValue:
		return "string_value"
	}
	return "a value of another type"
}

func ptr[T any](v T) *T { return &v }
