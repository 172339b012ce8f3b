package modbus

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/fieldgate/fieldgate/internal/reading"

	"github.com/fieldgate/fieldgate/adapters"
)

// codecCase is one point layout with known registers and the value they
// hold. The same table drives the unit tests and the end-to-end test against
// a real server.
type codecCase struct {
	name   string
	typ    string
	order  string
	bit    int // -1: none
	length int
	regs   []uint16
	want   reading.Value
}

var orders = []string{"ABCD", "CDAB", "BADC", "DCBA"}

// layouts spell out, letter by letter, where each big-endian byte of a value
// goes on the wire, as Telegraf names them. This is the specification the
// codec is tested against, written independently of byteOrder.apply.
var layouts = map[int]map[string]string{
	2: {"ABCD": "AB", "CDAB": "AB", "BADC": "BA", "DCBA": "BA"},
	4: {"ABCD": "ABCD", "CDAB": "CDAB", "BADC": "BADC", "DCBA": "DCBA"},
	8: {"ABCD": "ABCDEFGH", "CDAB": "GHEFCDAB", "BADC": "BADCFEHG", "DCBA": "HGFEDCBA"},
}

func layout(order string, be []byte) []uint16 {
	spec := layouts[len(be)][order]
	wire := make([]byte, len(be))
	for i, letter := range spec {
		wire[i] = be[letter-'A']
	}
	return wireToRegs(wire)
}

func wireToRegs(wire []byte) []uint16 {
	regs := make([]uint16, len(wire)/2)
	for i := range regs {
		regs[i] = binary.BigEndian.Uint16(wire[2*i:])
	}
	return regs
}

func regsToWire(regs []uint16) []byte {
	wire := make([]byte, 2*len(regs))
	for i, r := range regs {
		binary.BigEndian.PutUint16(wire[2*i:], r)
	}
	return wire
}

func codecCases() []codecCase {
	numbers := []struct {
		typ  string
		be   string // big-endian bytes, hex
		want reading.Value
	}{
		{"int16", "0102", reading.Int(258)},
		{"int16", "fffe", reading.Int(-2)},
		{"int16", "8000", reading.Int(math.MinInt16)},
		{"int16", "7fff", reading.Int(math.MaxInt16)},
		{"uint16", "0102", reading.Uint(258)},
		{"uint16", "ffff", reading.Uint(math.MaxUint16)},
		{"uint16", "0000", reading.Uint(0)},
		{"int32", "01020304", reading.Int(0x01020304)},
		{"int32", "ffffffff", reading.Int(-1)},
		{"int32", "80000000", reading.Int(math.MinInt32)},
		{"int32", "7fffffff", reading.Int(math.MaxInt32)},
		{"uint32", "01020304", reading.Uint(0x01020304)},
		{"uint32", "ffffffff", reading.Uint(math.MaxUint32)},
		{"int64", "0102030405060708", reading.Int(0x0102030405060708)},
		{"int64", "fffffffffffffffe", reading.Int(-2)},
		{"int64", "8000000000000000", reading.Int(math.MinInt64)},
		{"int64", "7fffffffffffffff", reading.Int(math.MaxInt64)},
		{"uint64", "0102030405060708", reading.Uint(0x0102030405060708)},
		{"uint64", "ffffffffffffffff", reading.Uint(math.MaxUint64)},
		{"float32", "3fc00000", reading.Float(1.5)},
		{"float32", "c2f6e979", reading.Float(-123.456)}, // the shortest decimal, not -123.45600128173828
		{"float32", "80000000", reading.Float(math.Copysign(0, -1))},
		{"float32", "7f7fffff", reading.Float(3.4028235e38)},
		{"float32", "00000001", reading.Float(1e-45)},
		{"float32", "7f800000", reading.Float(math.Inf(1))},
		{"float32", "ff800000", reading.Float(math.Inf(-1))},
		{"float32", "7fc00000", reading.Float(math.NaN())},
		{"float64", "3ff8000000000000", reading.Float(1.5)},
		{"float64", "0102030405060708", reading.Float(math.Float64frombits(0x0102030405060708))},
		{"float64", "8000000000000000", reading.Float(math.Copysign(0, -1))},
		{"float64", "7fefffffffffffff", reading.Float(math.MaxFloat64)},
		{"float64", "fff0000000000000", reading.Float(math.Inf(-1))},
		{"float64", "7ff8000000000000", reading.Float(math.NaN())},
	}
	var cs []codecCase
	for _, n := range numbers {
		be, err := hex.DecodeString(n.be)
		if err != nil {
			panic(err)
		}
		for _, o := range orders {
			cs = append(cs, codecCase{
				name: fmt.Sprintf("%s_%s_%s", n.typ, n.be, o), typ: n.typ, order: o, bit: -1,
				regs: layout(o, be), want: n.want,
			})
		}
	}
	for _, o := range orders {
		swapped := o == "BADC" || o == "DCBA"
		str := func(name string, length int, ab []uint16, ba []uint16, want string) codecCase {
			regs := ab
			if swapped {
				regs = ba
			}
			return codecCase{name: "string_" + name + "_" + o, typ: "string", order: o, bit: -1, length: length, regs: regs, want: reading.String(want)}
		}
		cs = append(cs,
			str("hello", 3, []uint16{0x4845, 0x4c4c, 0x4f00}, []uint16{0x4548, 0x4c4c, 0x004f}, "HELLO"),
			str("full", 2, []uint16{0x4142, 0x4344}, []uint16{0x4241, 0x4443}, "ABCD"),
			str("empty", 2, []uint16{0, 0}, []uint16{0, 0}, ""),
			str("spaces", 3, []uint16{0x2041, 0x2020, 0x2000}, []uint16{0x4120, 0x2020, 0x0020}, " A"),
			str("inner_nul", 2, []uint16{0x4100, 0x4200}, []uint16{0x0041, 0x0042}, "A\x00B"),
			codecCase{name: "bool_reg_zero_" + o, typ: "bool", order: o, bit: -1, regs: []uint16{0}, want: reading.Bool(false)},
			codecCase{name: "bool_reg_nonzero_" + o, typ: "bool", order: o, bit: -1, regs: []uint16{0x0100}, want: reading.Bool(true)},
		)
		// Bit n of the register as read in the given order: 0x8001 swaps
		// to 0x0180.
		for _, b := range []struct {
			bit     int
			ab, ba  bool
			comment string
		}{{0, true, false, "lsb"}, {15, true, false, "msb"}, {7, false, true, "swapped lsb"}, {8, false, true, "swapped msb"}, {3, false, false, "clear"}} {
			want := b.ab
			if swapped {
				want = b.ba
			}
			cs = append(cs, codecCase{name: fmt.Sprintf("bit%d_%s", b.bit, o), typ: "bool", order: o, bit: b.bit, regs: []uint16{0x8001}, want: reading.Bool(want)})
		}
	}
	return cs
}

// point is the case's config, as the loader leaves it.
func (c codecCase) point() PointConfig {
	one := 1.0
	p := PointConfig{Name: c.name, Type: c.typ, ByteOrder: c.order, Length: c.length, Scale: &one}
	if c.bit >= 0 {
		p.Bit = &c.bit
	}
	return p
}

func mustCodec(t testing.TB, p PointConfig) codec {
	t.Helper()
	cd, err := newCodec(p)
	if err != nil {
		t.Fatalf("newCodec(%+v): %v", p, err)
	}
	return cd
}

// same compares values treating every NaN as equal, since NaN payloads need
// not survive float32 widening.
func same(a, b reading.Value) bool {
	if a.Kind() == reading.KindFloat && b.Kind() == reading.KindFloat {
		fa, _ := a.Float64()
		fb, _ := b.Float64()
		if math.IsNaN(fa) && math.IsNaN(fb) {
			return true
		}
	}
	return a == b
}

func finite(v reading.Value) bool {
	f, ok := v.Float64()
	return !ok || !(math.IsNaN(f) || math.IsInf(f, 0))
}

func TestDecode(t *testing.T) {
	for _, c := range codecCases() {
		t.Run(c.name, func(t *testing.T) {
			cd := mustCodec(t, c.point())
			if cd.regs != len(c.regs) {
				t.Fatalf("codec spans %d registers, want %d", cd.regs, len(c.regs))
			}
			if got := cd.decode(regsToWire(c.regs)); !same(got, c.want) {
				t.Errorf("decode(%04x) = %v (%s), want %v (%s)", c.regs, got, got.Kind(), c.want, c.want.Kind())
			}
		})
	}
}

// TestEncodeRoundTrip checks encode against the same table: numbers encode to
// exactly the registers they were read from; every finite value reads back
// as itself.
func TestEncodeRoundTrip(t *testing.T) {
	for _, c := range codecCases() {
		if c.bit >= 0 {
			continue // bit writes are refused before encoding
		}
		t.Run(c.name, func(t *testing.T) {
			cd := mustCodec(t, c.point())
			wire, err := cd.encode(c.want)
			if !finite(c.want) {
				if !errors.Is(err, adapters.ErrBadValue) {
					t.Fatalf("encode(%v) err = %v, want ErrBadValue", c.want, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("encode(%v): %v", c.want, err)
			}
			if got := cd.decode(wire); !same(got, c.want) {
				t.Errorf("decode(encode(%v)) = %v", c.want, got)
			}
			if c.typ != "string" && c.typ != "bool" {
				if got := wireToRegs(wire); fmt.Sprint(got) != fmt.Sprint(c.regs) {
					t.Errorf("encode(%v) = %04x, want %04x", c.want, got, c.regs)
				}
			}
		})
	}
}

func TestScale(t *testing.T) {
	cases := []struct {
		name          string
		typ           string
		scale, offset float64
		regs          []uint16
		want          reading.Value
	}{
		{"int16 halves", "int16", 0.5, 0, []uint16{0xffff}, reading.Float(-0.5)},
		{"offset only", "uint16", 1, -40, []uint16{100}, reading.Float(60)},
		{"decimal scale is exact", "int16", 0.1, 0, []uint16{234}, reading.Float(23.4)},
		{"centi scale is exact", "uint16", 0.01, 0, []uint16{1999}, reading.Float(19.99)},
		{"scale and offset", "int32", 0.25, 10, []uint16{0, 4}, reading.Float(11)},
		{"float scaled", "float32", 2, 1, []uint16{0x3fc0, 0}, reading.Float(4)},
		{"identity keeps uint", "uint64", 1, 0, []uint16{0xffff, 0xffff, 0xffff, 0xffff}, reading.Uint(math.MaxUint64)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cd := mustCodec(t, PointConfig{Type: c.typ, ByteOrder: "ABCD", Scale: &c.scale, Offset: c.offset})
			if got := cd.decode(regsToWire(c.regs)); got != c.want {
				t.Errorf("decode = %v (%s), want %v (%s)", got, got.Kind(), c.want, c.want.Kind())
			}
		})
	}
}

func TestEncode(t *testing.T) {
	const bad = "bad"
	cases := []struct {
		name          string
		typ           string
		order         string
		scale, offset float64
		length        int
		v             reading.Value
		regs          []uint16 // nil with err
		err           string
	}{
		{"tenths rounds to nearest", "int16", "ABCD", 0.1, 0, 0, reading.Float(21.54), []uint16{215}, ""},
		{"half rounds away from zero", "int16", "ABCD", 1, 0.5, 0, reading.Float(-1), []uint16{0xfffe}, ""},
		{"offset inverted", "uint16", "ABCD", 0.5, -40, 0, reading.Float(10), []uint16{100}, ""},
		{"max after scale", "int16", "ABCD", 0.1, 0, 0, reading.Float(3276.74), []uint16{0x7fff}, ""},
		{"over max after scale", "int16", "ABCD", 0.1, 0, 0, reading.Float(3276.8), nil, bad},
		{"under min", "int16", "ABCD", 1, 0, 0, reading.Int(-32769), nil, bad},
		{"uint16 negative", "uint16", "ABCD", 1, 0, 0, reading.Int(-1), nil, bad},
		{"uint16 from text", "uint16", "BADC", 1, 0, 0, reading.String(" 258 "), []uint16{0x0201}, ""},
		{"int32 word swap", "int32", "CDAB", 1, 0, 0, reading.Int(-2), []uint16{0xfffe, 0xffff}, ""},
		{"uint32 max", "uint32", "ABCD", 1, 0, 0, reading.Uint(math.MaxUint32), []uint16{0xffff, 0xffff}, ""},
		{"uint32 over", "uint32", "ABCD", 1, 0, 0, reading.Uint(1 << 32), nil, bad},
		{"uint64 exact max", "uint64", "ABCD", 1, 0, 0, reading.Uint(math.MaxUint64), []uint16{0xffff, 0xffff, 0xffff, 0xffff}, ""},
		{"uint64 exact text", "uint64", "DCBA", 1, 0, 0, reading.String("18446744073709551614"), []uint16{0xfeff, 0xffff, 0xffff, 0xffff}, ""},
		{"uint64 negative", "uint64", "ABCD", 1, 0, 0, reading.Int(-1), nil, bad},
		{"int64 exact min text", "int64", "ABCD", 1, 0, 0, reading.String("-9223372036854775808"), []uint16{0x8000, 0, 0, 0}, ""},
		{"int64 from huge uint", "int64", "ABCD", 1, 0, 0, reading.Uint(1 << 63), nil, bad},
		{"int64 scaled at 2^63", "int64", "ABCD", 2, 0, 0, reading.Float(math.Ldexp(1, 64)), nil, bad},
		{"uint64 scaled below 2^64", "uint64", "ABCD", 0.5, 0, 0, reading.Float(math.Ldexp(1, 62)), []uint16{0x8000, 0, 0, 0}, ""},
		{"bool not a number", "int16", "ABCD", 1, 0, 0, reading.Bool(true), nil, bad},
		{"text not a number", "int16", "ABCD", 1, 0, 0, reading.String("abc"), nil, bad},
		{"float32 no rounding", "float32", "ABCD", 1, 0, 0, reading.Float(1.5), []uint16{0x3fc0, 0}, ""},
		{"float32 scaled", "float32", "CDAB", 2, 1, 0, reading.Float(4), []uint16{0, 0x3fc0}, ""},
		{"float32 too big", "float32", "ABCD", 1, 0, 0, reading.Float(1e39), nil, bad},
		{"float32 rounding to max", "float32", "ABCD", 1, 0, 0, reading.Float(3.4028235e38), []uint16{0x7f7f, 0xffff}, ""},
		{"float64 overflow after scale", "float64", "ABCD", 1e-300, 0, 0, reading.Float(1e300), nil, bad},
		{"float NaN", "float64", "ABCD", 1, 0, 0, reading.Float(math.NaN()), nil, bad},
		{"float from int", "float64", "ABCD", 1, 0, 0, reading.Int(3), []uint16{0x4008, 0, 0, 0}, ""},
		{"string padded", "string", "ABCD", 1, 0, 3, reading.String("ABC"), []uint16{0x4142, 0x4300, 0}, ""},
		{"string swapped", "string", "DCBA", 1, 0, 2, reading.String("ABC"), []uint16{0x4241, 0x0043}, ""},
		{"string exactly full", "string", "ABCD", 1, 0, 1, reading.String("AB"), []uint16{0x4142}, ""},
		{"string too long", "string", "ABCD", 1, 0, 1, reading.String("ABC"), nil, bad},
		{"string from number", "string", "ABCD", 1, 0, 2, reading.Float(21.5), []uint16{0x3231, 0x2e35}, ""},
		{"string empty", "string", "ABCD", 1, 0, 2, reading.String(""), []uint16{0, 0}, ""},
		{"bool register on", "bool", "BADC", 1, 0, 0, reading.String("ON"), []uint16{0x0100}, ""},
		{"bool register bad", "bool", "ABCD", 1, 0, 0, reading.String("maybe"), nil, bad},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cd := mustCodec(t, PointConfig{Type: c.typ, ByteOrder: c.order, Length: c.length, Scale: &c.scale, Offset: c.offset})
			wire, err := cd.encode(c.v)
			if c.err != "" {
				if !errors.Is(err, adapters.ErrBadValue) {
					t.Fatalf("encode(%v) = %04x, %v; want ErrBadValue", c.v, wireToRegs(wire), err)
				}
				return
			}
			if err != nil {
				t.Fatalf("encode(%v): %v", c.v, err)
			}
			if got := wireToRegs(wire); fmt.Sprint(got) != fmt.Sprint(c.regs) {
				t.Errorf("encode(%v) = %04x, want %04x", c.v, got, c.regs)
			}
		})
	}
}

func TestByteOrderIsInvolution(t *testing.T) {
	b := []byte{1, 2, 3, 4, 5, 6, 7, 8}
	for name, o := range byteOrders {
		if got := o.apply(o.apply(b)); string(got) != string(b) {
			t.Errorf("%s twice = %v", name, got)
		}
	}
}

func FuzzDecodeEncode(f *testing.F) {
	f.Add("int32", "CDAB", []byte{1, 2, 3, 4})
	f.Add("float64", "DCBA", []byte{1, 2, 3, 4, 5, 6, 7, 8})
	f.Add("string", "BADC", []byte("hi there"))
	f.Add("bool", "BADC", []byte{0, 2})
	f.Fuzz(func(t *testing.T, typ, order string, wire []byte) {
		cd, err := newCodec(PointConfig{Type: typ, ByteOrder: order, Length: len(wire) / 2})
		if err != nil || len(wire) != 2*cd.regs {
			return
		}
		v := cd.decode(wire)
		if !finite(v) {
			return
		}
		again, err := cd.encode(v)
		if err != nil {
			t.Fatalf("encode(decode(%x) = %v): %v", wire, v, err)
		}
		if got := cd.decode(again); !same(got, v) {
			t.Fatalf("decode(encode(%v)) = %v", v, got)
		}
	})
}

// BenchmarkDecode decodes one register value of each common kind, as a
// poll cycle does for every point.
func BenchmarkDecode(b *testing.B) {
	for _, c := range []struct {
		typ  string
		wire []byte
		opts []func(*PointConfig)
	}{
		{"uint16", []byte{0x01, 0x02}, nil},
		{"int16 scaled", []byte{0xff, 0x02}, []func(*PointConfig){scaled(0.1)}},
		{"float32", []byte{0x41, 0xac, 0x00, 0x00}, nil},
	} {
		b.Run(c.typ, func(b *testing.B) {
			cd, err := newCodec(pt("p", HoldingRegister, 0, strings.Fields(c.typ)[0], c.opts...))
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				_ = cd.decode(c.wire)
			}
		})
	}
}
