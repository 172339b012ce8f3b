package modbus

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/fieldgate/fieldgate/internal/reading"

	"github.com/fieldgate/fieldgate/adapters"
)

// dataType is a point's type as named in the config.
type dataType uint8

const (
	typeBool dataType = iota + 1
	typeInt16
	typeUint16
	typeInt32
	typeUint32
	typeInt64
	typeUint64
	typeFloat32
	typeFloat64
	typeString
)

var typeNames = [...]string{
	typeBool: "bool", typeInt16: "int16", typeUint16: "uint16",
	typeInt32: "int32", typeUint32: "uint32", typeInt64: "int64",
	typeUint64: "uint64", typeFloat32: "float32", typeFloat64: "float64",
	typeString: "string",
}

// parseType looks up a config type name.
func parseType(name string) (dataType, bool) {
	for t, n := range typeNames {
		if n != "" && n == name {
			return dataType(t), true
		}
	}
	return 0, false
}

func (t dataType) String() string { return typeNames[t] }

// integer reports the width in bits and signedness of an integer type; bits
// is 0 for the other types.
func (t dataType) integer() (bits int, signed bool) {
	switch t {
	case typeInt16:
		return 16, true
	case typeUint16:
		return 16, false
	case typeInt32:
		return 32, true
	case typeUint32:
		return 32, false
	case typeInt64:
		return 64, true
	case typeUint64:
		return 64, false
	}
	return 0, false
}

// byteOrder says how a value's big-endian bytes are laid out in registers.
// The two flags are independent, so every order is its own inverse: applying
// it to wire bytes gives big-endian bytes and vice versa.
type byteOrder struct {
	swapBytes bool // the two bytes within each register are swapped
	swapWords bool // the registers come in reverse order
}

var byteOrders = map[string]byteOrder{
	"ABCD": {},
	"CDAB": {swapWords: true},
	"BADC": {swapBytes: true},
	"DCBA": {swapBytes: true, swapWords: true},
}

// apply returns a reordered copy of b, whose length is even.
func (o byteOrder) apply(b []byte) []byte {
	out := make([]byte, len(b))
	n := len(b) / 2
	for i := range n {
		j := i
		if o.swapWords {
			j = n - 1 - i
		}
		hi, lo := b[2*j], b[2*j+1]
		if o.swapBytes {
			hi, lo = lo, hi
		}
		out[2*i], out[2*i+1] = hi, lo
	}
	return out
}

// codec converts between a point's registers and its engineering value. It
// holds no state, so decoding and encoding are pure functions of it.
type codec struct {
	typ    dataType
	order  byteOrder
	bit    int // 0–15: a bool from this bit of a register; -1: the whole register
	regs   int // registers the value spans
	scale  float64
	offset float64
	// div is 1/scale when that is a whole number (scale 0.1, 0.01, …):
	// dividing by it gives the decimal a technician expects (234 → 23.4)
	// where multiplying by the inexact 0.1 gives 23.400000000000002.
	div float64
}

// newCodec checks a point's type, byte order, bit and scale.
func newCodec(pc PointConfig) (codec, error) {
	typ, ok := parseType(pc.Type)
	if !ok {
		return codec{}, fmt.Errorf("unknown type %q", pc.Type)
	}
	order, ok := byteOrders[pc.ByteOrder]
	if !ok {
		return codec{}, fmt.Errorf("unknown byte_order %q", pc.ByteOrder)
	}
	c := codec{typ: typ, order: order, bit: -1, regs: pc.Registers(), offset: pc.Offset}
	scale := 1.0
	if pc.Scale != nil {
		scale = *pc.Scale
	}
	c = c.scaled(scale)
	switch {
	case c.scale == 0:
		return codec{}, errors.New("scale must not be 0")
	case c.regs < 1:
		return codec{}, errors.New("a string needs length ≥ 1 (registers)")
	case pc.Bit != nil && (typ != typeBool || *pc.Bit < 0 || *pc.Bit > 15):
		return codec{}, errors.New("bit (0–15) applies to a bool only")
	case pc.Bit != nil:
		c.bit = *pc.Bit
	}
	return c, nil
}

// scaled returns c with scale s.
func (c codec) scaled(s float64) codec {
	c.scale, c.div = s, 0
	if inv := 1 / s; math.Abs(inv) > 1 && inv == math.Trunc(inv) {
		c.div = inv
	}
	return c
}

// identity reports whether scale and offset leave values untouched, in which
// case integers keep their exact integer kind.
func (c codec) identity() bool { return c.scale == 1 && c.offset == 0 }

// decode turns 2*regs bytes, as they came off the wire, into a value.
func (c codec) decode(wire []byte) reading.Value {
	switch c.typ {
	case typeString:
		return reading.String(decodeString(wire, c.order.swapBytes))
	case typeBool:
		r := binary.BigEndian.Uint16(c.order.apply(wire))
		if c.bit >= 0 {
			return reading.Bool(r>>c.bit&1 == 1)
		}
		return reading.Bool(r != 0)
	}
	be := c.order.apply(wire)
	var raw reading.Value
	switch c.typ {
	case typeInt16:
		raw = reading.Int(int64(int16(binary.BigEndian.Uint16(be))))
	case typeUint16:
		raw = reading.Uint(uint64(binary.BigEndian.Uint16(be)))
	case typeInt32:
		raw = reading.Int(int64(int32(binary.BigEndian.Uint32(be))))
	case typeUint32:
		raw = reading.Uint(uint64(binary.BigEndian.Uint32(be)))
	case typeInt64:
		raw = reading.Int(int64(binary.BigEndian.Uint64(be)))
	case typeUint64:
		raw = reading.Uint(binary.BigEndian.Uint64(be))
	case typeFloat32:
		raw = reading.Float(widen32(math.Float32frombits(binary.BigEndian.Uint32(be))))
	case typeFloat64:
		raw = reading.Float(math.Float64frombits(binary.BigEndian.Uint64(be)))
	}
	if c.identity() {
		return raw
	}
	f, _ := raw.Float64()
	if c.div != 0 {
		return reading.Float(f/c.div + c.offset)
	}
	return reading.Float(f*c.scale + c.offset)
}

// decodeString reads two characters per register, high byte first unless
// swapped, and drops the NUL and space padding devices put after the text.
func decodeString(wire []byte, swap bool) string {
	b := byteOrder{swapBytes: swap}.apply(wire)
	return strings.TrimRight(string(b), "\x00 ")
}

// encode turns a command value into the wire bytes of the point's registers,
// the inverse of decode. A value that does not fit gives an error wrapping
// adapters.ErrBadValue. A bool taken from one bit cannot be encoded alone:
// the caller refuses it before.
func (c codec) encode(v reading.Value) ([]byte, error) {
	be := make([]byte, 2*c.regs)
	switch c.typ {
	case typeString:
		s := v.String()
		if len(s) > len(be) {
			return nil, fmt.Errorf("%w: %d bytes do not fit in %d registers", adapters.ErrBadValue, len(s), c.regs)
		}
		copy(be, s) // the rest stays NUL
		return byteOrder{swapBytes: c.order.swapBytes}.apply(be), nil
	case typeBool:
		on, err := adapters.AsBool(v)
		if err != nil {
			return nil, err
		}
		if on {
			be[1] = 1
		}
	case typeFloat32, typeFloat64:
		x, err := c.unscaleFloat(v)
		if err != nil {
			return nil, err
		}
		if c.typ == typeFloat64 {
			binary.BigEndian.PutUint64(be, math.Float64bits(x))
			break
		}
		if math.IsInf(float64(float32(x)), 0) { // values that round to ±MaxFloat32 fit
			return nil, fmt.Errorf("%w: %s is out of float32 range", adapters.ErrBadValue, v)
		}
		binary.BigEndian.PutUint32(be, math.Float32bits(float32(x)))
	default:
		raw, err := c.unscaleInt(v)
		if err != nil {
			return nil, err
		}
		for i := range be { // the low len(be) bytes of raw, big-endian
			be[len(be)-1-i] = byte(raw >> (8 * i))
		}
	}
	return c.order.apply(be), nil
}

// unscaleFloat inverts scale and offset for a float point, without rounding.
func (c codec) unscaleFloat(v reading.Value) (float64, error) {
	f, err := adapters.AsFloat(v)
	if err != nil {
		return 0, err
	}
	x := (f - c.offset) / c.scale
	if math.IsInf(x, 0) || math.IsNaN(x) {
		return 0, fmt.Errorf("%w: %s is out of range after scale and offset", adapters.ErrBadValue, v)
	}
	return x, nil
}

// unscaleInt computes round((v - offset) / scale) and checks it fits the
// integer type; it returns the two's complement bits. With identity scaling,
// integers (and integer text) are taken exactly, so 64-bit values survive.
func (c codec) unscaleInt(v reading.Value) (uint64, error) {
	bits, signed := c.typ.integer()
	if c.identity() {
		if i, u, neg, ok := exactInteger(v); ok {
			if fitsInteger(i, u, neg, bits, signed) {
				return u, nil
			}
			return 0, fmt.Errorf("%w: %s is out of range for %s", adapters.ErrBadValue, v, c.typ)
		}
	}
	f, err := adapters.AsFloat(v)
	if err != nil {
		return 0, err
	}
	x := math.Round((f - c.offset) / c.scale)
	lo, hi := 0.0, math.Ldexp(1, bits) // hi is exclusive; powers of two are exact
	if signed {
		lo, hi = -math.Ldexp(1, bits-1), math.Ldexp(1, bits-1)
	}
	if !(x >= lo && x < hi) {
		return 0, fmt.Errorf("%w: %s gives raw %.0f, out of range for %s", adapters.ErrBadValue, v, x, c.typ)
	}
	if signed {
		return uint64(int64(x)), nil
	}
	return uint64(x), nil
}

// exactInteger extracts an integer without going through float64: i is the
// signed reading, u the same bits, neg whether the value is below zero.
func exactInteger(v reading.Value) (i int64, u uint64, neg, ok bool) {
	switch v.Kind() {
	case reading.KindInt, reading.KindUint:
		u = v.Bits()
		return int64(u), u, v.Kind() == reading.KindInt && int64(u) < 0, true
	case reading.KindString:
		s := strings.TrimSpace(v.Str())
		if n, err := strconv.ParseInt(s, 10, 64); err == nil {
			return n, uint64(n), n < 0, true
		}
		if n, err := strconv.ParseUint(s, 10, 64); err == nil {
			return int64(n), n, false, true
		}
	}
	return 0, 0, false, false
}

// fitsInteger reports whether an exact integer fits bits wide.
func fitsInteger(i int64, u uint64, neg bool, bits int, signed bool) bool {
	if !signed {
		return !neg && u>>bits == 0
	}
	if !neg && u > math.MaxInt64 {
		return false
	}
	shift := 64 - bits
	return i<<shift>>shift == i
}

// widen32 converts a float32 to the float64 of its shortest decimal form, so
// a device's 21.7 is published as 21.7 rather than 21.700000762939453; the
// result converts back to the same float32, so writes and round trips keep
// every bit.
func widen32(f float32) float64 {
	var buf [32]byte
	v, _ := strconv.ParseFloat(string(strconv.AppendFloat(buf[:0], float64(f), 'g', -1, 32)), 64)
	return v
}
