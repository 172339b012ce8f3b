package sparkplug

import (
	"errors"

	"google.golang.org/protobuf/encoding/protowire"
)

// This file writes and reads Sparkplug B payloads with protobuf's wire
// format API rather than the types generated into sparkplugpb: the
// generated code links protobuf's reflection runtime, which doubled the
// size of a binary that must stay small on its gateways. The field numbers
// and types are those of sparkplug_b.proto; the tests hold the result
// against the generated code.

// Field numbers of sparkplug_b.proto that fieldgate writes or reads.
const (
	payloadTimestamp protowire.Number = 1 // uint64
	payloadMetrics   protowire.Number = 2 // repeated Metric
	payloadSeq       protowire.Number = 3 // uint64

	metricName         protowire.Number = 1 // string
	metricAlias        protowire.Number = 2 // uint64
	metricTimestamp    protowire.Number = 3 // uint64
	metricDatatype     protowire.Number = 4 // uint32
	metricIsHistorical protowire.Number = 5 // bool
	metricIsNull       protowire.Number = 7 // bool
	metricProperties   protowire.Number = 9 // PropertySet
	// The value oneof, int_value to extension_value.
	metricIntValue       protowire.Number = 10 // uint32
	metricLongValue      protowire.Number = 11 // uint64
	metricFloatValue     protowire.Number = 12 // float
	metricDoubleValue    protowire.Number = 13 // double
	metricBooleanValue   protowire.Number = 14 // bool
	metricStringValue    protowire.Number = 15 // string
	metricExtensionValue protowire.Number = 19 // MetricValueExtension; bytes, DataSet and Template lie between

	propertySetKeys          protowire.Number = 1 // repeated string
	propertySetValues        protowire.Number = 2 // repeated PropertyValue
	propertyValueType        protowire.Number = 1 // uint32
	propertyValueStringValue protowire.Number = 8 // string
)

// wireValue is a metric's value as it travels: the field of the value
// oneof that carries it, or is_null for a null, and its content.
type wireValue struct {
	field protowire.Number
	bits  uint64 // a varint, or the bits of a float or a double
	str   string // string_value
}

func appendWireValue(b []byte, v wireValue) []byte {
	switch v.field {
	case metricFloatValue:
		b = protowire.AppendTag(b, v.field, protowire.Fixed32Type)
		return protowire.AppendFixed32(b, uint32(v.bits))
	case metricDoubleValue:
		b = protowire.AppendTag(b, v.field, protowire.Fixed64Type)
		return protowire.AppendFixed64(b, v.bits)
	case metricStringValue:
		return appendString(b, v.field, v.str)
	}
	return appendVarint(b, v.field, v.bits)
}

func appendVarint(b []byte, num protowire.Number, v uint64) []byte {
	return protowire.AppendVarint(protowire.AppendTag(b, num, protowire.VarintType), v)
}

func appendString(b []byte, num protowire.Number, s string) []byte {
	return protowire.AppendString(protowire.AppendTag(b, num, protowire.BytesType), s)
}

// beginMessage appends the tag of a nested message, whose fields follow;
// endMessage, given the offset it returns, puts the length in front of
// them.
func beginMessage(b []byte, num protowire.Number) ([]byte, int) {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return b, len(b)
}

// endMessage prefixes the message begun at start with its length, moving
// its fields up by the size of the length: one copy, instead of sizing
// every message before writing it (as proto.Marshal does) or writing it
// into a buffer of its own.
func endMessage(b []byte, start int) []byte {
	n := uint64(len(b) - start)
	k := protowire.SizeVarint(n)
	b = append(b, make([]byte, k)...)
	copy(b[start+k:], b[start:len(b)-k])
	protowire.AppendVarint(b[start:start], n) // writes within b: its capacity is b's
	return b
}

// appendMetric appends a metric of e with the value of s to a payload. A
// metric that declares e, as births do, has its name, datatype and unit;
// one that only carries a value, as DATA messages do, has its name only
// when it has no alias, and is_historical when s is historical.
func appendMetric(b []byte, e Entry, s Sample, declare bool) ([]byte, error) {
	v, err := e.wireValue(s.Value)
	if err != nil {
		return nil, err
	}
	b, start := beginMessage(b, payloadMetrics)
	if declare || e.Alias == 0 {
		b = appendString(b, metricName, e.Name)
	}
	if e.Alias != 0 {
		b = appendVarint(b, metricAlias, e.Alias)
	}
	b = appendVarint(b, metricTimestamp, Millis(s.Time))
	if declare {
		b = appendVarint(b, metricDatatype, uint64(uint32(e.Type)))
	}
	if s.Historical && !declare {
		b = appendVarint(b, metricIsHistorical, 1)
	}
	// Fields go in the order of their numbers, as proto.Marshal writes
	// them: is_null (7) before the properties (9), a value (10–15) after.
	if v.field == metricIsNull {
		b = appendWireValue(b, v)
	}
	if declare && e.Unit != "" {
		var props, value int
		b, props = beginMessage(b, metricProperties)
		b = appendString(b, propertySetKeys, PropertyUnit)
		b, value = beginMessage(b, propertySetValues)
		b = appendVarint(b, propertyValueType, uint64(String))
		b = appendString(b, propertyValueStringValue, e.Unit)
		b = endMessage(endMessage(b, value), props)
	}
	if v.field != metricIsNull {
		b = appendWireValue(b, v)
	}
	return endMessage(b, start), nil
}

// message names the messages of sparkplug_b.proto by what proto.Unmarshal
// checks in their fields beyond the wire format: the content of nested
// messages, and of packed varints.
type message uint8

const (
	flatMessage            message = iota // MetaData and the *Extension messages: no nested ones
	payloadMessage                        // Payload
	metricMessage                         // Payload.Metric
	propertySetMessage                    // Payload.PropertySet
	propertyValueMessage                  // Payload.PropertyValue
	propertySetListMessage                // Payload.PropertySetList
	dataSetMessage                        // Payload.DataSet
	rowMessage                            // Payload.DataSet.Row
	dataSetValueMessage                   // Payload.DataSet.DataSetValue
	templateMessage                       // Payload.Template
	parameterMessage                      // Payload.Template.Parameter
	packedVarints                         // not a message: DataSet.types (repeated uint32) in packed form
)

// nestedFields lists, by message, the length-delimited fields that hold a
// message or packed varints, and what they hold.
var nestedFields = [...]map[protowire.Number]message{
	payloadMessage: {payloadMetrics: metricMessage},
	metricMessage: {
		8:                    flatMessage,        // metadata
		metricProperties:     propertySetMessage, //
		17:                   dataSetMessage,     // dataset_value
		18:                   templateMessage,    // template_value
		metricExtensionValue: flatMessage,
	},
	propertySetMessage:     {propertySetValues: propertyValueMessage},
	propertyValueMessage:   {9: propertySetMessage, 10: propertySetListMessage, 11: flatMessage}, // propertyset_value, propertysets_value, extension_value
	propertySetListMessage: {1: propertySetMessage},                                              // propertyset
	dataSetMessage:         {3: packedVarints, 4: rowMessage},                                    // types, rows
	rowMessage:             {1: dataSetValueMessage},                                             // elements
	dataSetValueMessage:    {7: flatMessage},                                                     // extension_value
	templateMessage:        {2: metricMessage, 3: parameterMessage},                              // metrics, parameters
	parameterMessage:       {9: flatMessage},                                                     // extension_value
}

var (
	errFieldNumber = errors.New("field number out of range")
	errEndGroup    = errors.New("end of a group that did not start")
	errDepth       = errors.New("messages nested too deeply")
)

// wireField is a field as it travels: a varint or a fixed-size value in
// u, a length-delimited one's content in b.
type wireField struct {
	num protowire.Number
	typ protowire.Type
	u   uint64
	b   []byte
}

// readFields reads the fields of a message m from b and passes each, in
// order, to each (when not nil). It checks the message as proto.Unmarshal
// checks the generated type, so that it refuses exactly what that does:
// every tag and value complete and well-formed for its wire type, field
// numbers within range, groups closed, nested messages checked in turn
// down to depth levels (the top one included), packed varints whole.
// Strings are not checked for UTF-8, as proto2's are not. A field whose
// wire type is not its declared one is unknown to proto.Unmarshal, which
// keeps it aside: readers of a field check its wire type too.
func readFields(b []byte, m message, depth int, each func(wireField) error) error {
	if depth--; depth < 0 {
		return errDepth
	}
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		if num > protowire.MaxValidNumber {
			return errFieldNumber
		}
		b = b[n:]
		f := wireField{num: num, typ: typ}
		switch typ {
		case protowire.VarintType:
			f.u, n = protowire.ConsumeVarint(b)
		case protowire.Fixed32Type:
			var u uint32
			u, n = protowire.ConsumeFixed32(b)
			f.u = uint64(u)
		case protowire.Fixed64Type:
			f.u, n = protowire.ConsumeFixed64(b)
		case protowire.BytesType:
			f.b, n = protowire.ConsumeBytes(b)
		case protowire.EndGroupType:
			return errEndGroup
		default: // a group, skipped whole, or a reserved wire type
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		if in, ok := nestedFields[m][num]; ok && typ == protowire.BytesType {
			if err := checkNested(f.b, in, depth); err != nil {
				return err
			}
		}
		if each != nil {
			if err := each(f); err != nil {
				return err
			}
		}
	}
	return nil
}

// checkNested checks the content of a nested message, or packed varints.
func checkNested(b []byte, m message, depth int) error {
	if m != packedVarints {
		return readFields(b, m, depth, nil)
	}
	for len(b) > 0 {
		_, n := protowire.ConsumeVarint(b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
	}
	return nil
}
