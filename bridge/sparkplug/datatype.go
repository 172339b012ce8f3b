package sparkplug

import (
	"fmt"
	"math"
	"strconv"

	"github.com/fieldgate/fieldgate/internal/reading"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/fieldgate/fieldgate/adapters"
)

// DataType is a metric's Sparkplug datatype: the DataType enum of
// sparkplug_b.proto, whose number travels in a metric's datatype field.
type DataType int32

// The datatypes of sparkplug_b.proto, with its numbers.
const (
	Unknown DataType = iota
	Int8
	Int16
	Int32
	Int64
	UInt8
	UInt16
	UInt32
	UInt64
	Float
	Double
	Boolean
	String
	DateTime
	Text
	UUID
	DataSet
	Bytes
	File
	Template
	PropertySet
	PropertySetList
	Int8Array
	Int16Array
	Int32Array
	Int64Array
	UInt8Array
	UInt16Array
	UInt32Array
	UInt64Array
	FloatArray
	DoubleArray
	BooleanArray
	StringArray
	DateTimeArray
)

var dataTypeNames = [...]string{
	"Unknown", "Int8", "Int16", "Int32", "Int64", "UInt8", "UInt16", "UInt32", "UInt64", "Float", "Double",
	"Boolean", "String", "DateTime", "Text", "UUID", "DataSet", "Bytes", "File", "Template", "PropertySet",
	"PropertySetList", "Int8Array", "Int16Array", "Int32Array", "Int64Array", "UInt8Array", "UInt16Array",
	"UInt32Array", "UInt64Array", "FloatArray", "DoubleArray", "BooleanArray", "StringArray", "DateTimeArray",
}

// String returns the datatype's name in sparkplug_b.proto, or its number
// for one the file does not define (as the generated code names them).
func (dt DataType) String() string {
	if dt >= 0 && int(dt) < len(dataTypeNames) {
		return dataTypeNames[dt]
	}
	return strconv.Itoa(int(dt))
}

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
		return Unknown, fmt.Errorf("no Sparkplug datatype for point type %q", pointType)
	case scaled && dt != Boolean && dt != String:
		return Double, nil
	}
	return dt, nil
}

var pointDataTypes = map[string]DataType{
	"bool":    Boolean,
	"int16":   Int16,
	"uint16":  UInt16,
	"int32":   Int32,
	"uint32":  UInt32,
	"int64":   Int64,
	"uint64":  UInt64,
	"float32": Float,
	"float64": Double,
	"string":  String,
}

// intRange is the span of the integer datatypes, by datatype.
var intRange = map[DataType]struct {
	min int64
	max uint64
}{
	Int8:   {math.MinInt8, math.MaxInt8},
	Int16:  {math.MinInt16, math.MaxInt16},
	Int32:  {math.MinInt32, math.MaxInt32},
	Int64:  {math.MinInt64, math.MaxInt64},
	UInt8:  {0, math.MaxUint8},
	UInt16: {0, math.MaxUint16},
	UInt32: {0, math.MaxUint32},
	UInt64: {0, math.MaxUint64},
}

// supported reports whether fieldgate encodes and decodes values of dt.
func supported(dt DataType) bool {
	_, isInt := intRange[dt]
	switch dt {
	case Float, Double, Boolean, String, Text:
		return true
	}
	return isInt
}

// wireValueOf returns the field of a metric that carries v as datatype
// dt, as the Sparkplug 3.0 datatype table says: the 8 to 32-bit integers
// in int_value (signed ones as their two's complement bits), the 64-bit
// ones in long_value. The invalid (zero) Value is a null: is_null and no
// value. A value of another kind is converted only when that is exact: an
// Int into an unsigned type when it is not negative, any integer into
// Float or Double, never a Float into an integer type.
func wireValueOf(dt DataType, v reading.Value) (wireValue, error) {
	if v.Kind() == reading.KindInvalid {
		return wireValue{field: metricIsNull, bits: 1}, nil
	}
	if r, ok := intRange[dt]; ok {
		bits, err := intBits(v, r.min, r.max)
		if err != nil {
			return wireValue{}, fmt.Errorf("%s value %s: %w", dt, v, err)
		}
		if dt == Int64 || dt == UInt64 {
			return wireValue{field: metricLongValue, bits: bits}, nil
		}
		return wireValue{field: metricIntValue, bits: uint64(uint32(bits))}, nil
	}
	switch dt {
	case Float, Double:
		f, ok := v.Float64()
		if !ok || v.Kind() == reading.KindBool {
			return wireValue{}, fmt.Errorf("%s value %s: not a number", dt, v)
		}
		if dt == Float {
			return wireValue{field: metricFloatValue, bits: uint64(math.Float32bits(float32(f)))}, nil
		}
		return wireValue{field: metricDoubleValue, bits: math.Float64bits(f)}, nil
	case Boolean:
		if v.Kind() != reading.KindBool {
			return wireValue{}, fmt.Errorf("%s value %s: not a boolean", dt, v)
		}
		return wireValue{field: metricBooleanValue, bits: v.Bits()}, nil
	case String, Text:
		if v.Kind() != reading.KindString {
			return wireValue{}, fmt.Errorf("%s value %s: not a string", dt, v)
		}
		return wireValue{field: metricStringValue, str: v.Str()}, nil
	}
	return wireValue{}, fmt.Errorf("datatype %s is not supported", dt)
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
func valueOf(m commandMetric, dt DataType) (reading.Value, error) {
	if m.isNull {
		return reading.Value{}, fmt.Errorf("%w: a null value cannot be written", adapters.ErrBadValue)
	}
	r, isInt := intRange[dt]
	switch v := m.value; v.num {
	case metricIntValue:
		if !isInt || dt == Int64 || dt == UInt64 {
			break
		}
		if r.min < 0 {
			return checkInt(reading.Int(int64(int32(v.u))), dt, r.min, r.max)
		}
		return checkInt(reading.Uint(uint64(uint32(v.u))), dt, r.min, r.max)
	case metricLongValue:
		switch dt {
		case Int64:
			return reading.Int(int64(v.u)), nil
		case UInt64, UInt32:
			return checkInt(reading.Uint(v.u), dt, r.min, r.max)
		}
	case metricFloatValue:
		if dt == Float {
			f, _ := strconv.ParseFloat(strconv.FormatFloat(float64(math.Float32frombits(uint32(v.u))), 'g', -1, 32), 64)
			return reading.Float(f), nil
		}
	case metricDoubleValue:
		if dt == Double {
			return reading.Float(math.Float64frombits(v.u)), nil
		}
	case metricBooleanValue:
		if dt == Boolean {
			return reading.Bool(v.u != 0), nil
		}
	case metricStringValue:
		if dt == String || dt == Text {
			return reading.String(string(v.b)), nil
		}
	case 0:
		return reading.Value{}, fmt.Errorf("%w: no value", adapters.ErrBadValue)
	}
	return reading.Value{}, fmt.Errorf("%w: a %s metric cannot carry %s", adapters.ErrBadValue, dt, valueFieldName(m.value.num))
}

// checkInt refuses an integer that does not fit dt: an Int8 of 300 in its
// 32-bit field.
func checkInt(v reading.Value, dt DataType, lo int64, hi uint64) (reading.Value, error) {
	if _, err := intBits(v, lo, hi); err != nil {
		return reading.Value{}, fmt.Errorf("%w: %s is out of range for %s", adapters.ErrBadValue, v, dt)
	}
	return v, nil
}

// valueFieldName names a field of a metric's value oneof, for error
// messages.
func valueFieldName(num protowire.Number) string {
	switch num {
	case metricIntValue:
		return "int_value"
	case metricLongValue:
		return "long_value"
	case metricFloatValue:
		return "float_value"
	case metricDoubleValue:
		return "double_value"
	case metricBooleanValue:
		return "boolean_value"
	case metricStringValue:
		return "string_value"
	}
	return "a value of another type"
}
