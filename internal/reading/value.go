// Package reading is fieldgate's vocabulary for what is read from the
// hardware: a Reading of one point at one time, its Value and the Value's
// Kind. Adapters produce readings, the buffer stores them (the Kind
// numbering is part of its on-disk format) and the bridge encodes them; this
// package imports none of them.
package reading

import (
	"encoding/json"
	"math"
	"strconv"
	"time"
)

// Reading is one value read from one point of one adapter.
type Reading struct {
	Adapter string
	Point   string
	Time    time.Time // when the hardware was read
	Value   Value
}

// Kind is the type of a Value.
type Kind uint8

// Value kinds. The numbering is part of the buffer's on-disk format: append
// only.
const (
	KindInvalid Kind = iota
	KindFloat
	KindInt
	KindUint
	KindBool
	KindString
)

func (k Kind) String() string {
	switch k {
	case KindFloat:
		return "float"
	case KindInt:
		return "int"
	case KindUint:
		return "uint"
	case KindBool:
		return "bool"
	case KindString:
		return "string"
	}
	return "invalid"
}

// Value is a scalar reading or command value. It is small and comparable so
// readings can be passed and stored by value; the numeric payload is kept as
// raw bits so 64-bit integers survive exactly.
type Value struct {
	kind Kind
	bits uint64
	str  string
}

// Float returns a float value.
func Float(f float64) Value { return Value{kind: KindFloat, bits: math.Float64bits(f)} }

// Int returns a signed integer value.
func Int(i int64) Value { return Value{kind: KindInt, bits: uint64(i)} }

// Uint returns an unsigned integer value.
func Uint(u uint64) Value { return Value{kind: KindUint, bits: u} }

// Bool returns a boolean value.
func Bool(b bool) Value {
	if b {
		return Value{kind: KindBool, bits: 1}
	}
	return Value{kind: KindBool}
}

// String returns a string value.
func String(s string) Value { return Value{kind: KindString, str: s} }

// FromBits rebuilds a non-string value from its kind and raw bits, as stored
// by the buffer.
func FromBits(k Kind, bits uint64) Value { return Value{kind: k, bits: bits} }

// Kind reports the value's kind.
func (v Value) Kind() Kind { return v.kind }

// Bits returns the raw 64-bit payload of a non-string value.
func (v Value) Bits() uint64 { return v.bits }

// Str returns the text of a string value.
func (v Value) Str() string { return v.str }

// Float64 converts a numeric or boolean value to float64.
func (v Value) Float64() (float64, bool) {
	switch v.kind {
	case KindFloat:
		return math.Float64frombits(v.bits), true
	case KindInt:
		return float64(int64(v.bits)), true
	case KindUint:
		return float64(v.bits), true
	case KindBool:
		return float64(v.bits), true
	}
	return 0, false
}

// String formats the value as the "value" payload format does: numbers in
// their shortest exact form, booleans as true/false, strings as they are.
func (v Value) String() string { return string(v.AppendText(nil)) }

// AppendText appends the value's plain-text form to b.
func (v Value) AppendText(b []byte) []byte {
	switch v.kind {
	case KindFloat:
		return strconv.AppendFloat(b, math.Float64frombits(v.bits), 'g', -1, 64)
	case KindInt:
		return strconv.AppendInt(b, int64(v.bits), 10)
	case KindUint:
		return strconv.AppendUint(b, v.bits, 10)
	case KindBool:
		return strconv.AppendBool(b, v.bits != 0)
	case KindString:
		return append(b, v.str...)
	}
	return append(b, "null"...)
}

// AppendJSON appends the value as a JSON literal. NaN and infinities, which
// JSON cannot carry, become null.
func (v Value) AppendJSON(b []byte) []byte {
	switch v.kind {
	case KindString:
		q, _ := json.Marshal(v.str) // a string always marshals
		return append(b, q...)
	case KindFloat:
		f := math.Float64frombits(v.bits)
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return append(b, "null"...)
		}
	}
	return v.AppendText(b)
}
