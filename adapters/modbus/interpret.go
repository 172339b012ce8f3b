package modbus

import "github.com/fieldgate/fieldgate/internal/reading"

// Interpretation is the value registers read as as a point of one type and
// byte order, with scale 1 and offset 0.
type Interpretation struct {
	Type      string
	ByteOrder string
	Value     reading.Value
}

// Interpret decodes registers (as on the wire, two bytes each) as every
// register type (int16 to float64) that fits in them, and as a string of
// all of them, in every byte order, exactly as a point with that type and
// byte_order would read them: so the right pair can be picked from what a
// device answers. The result is ordered by type, then ABCD, CDAB, BADC,
// DCBA.
func Interpret(registers []byte) []Interpretation {
	var out []Interpretation
	for _, t := range []dataType{typeInt16, typeUint16, typeInt32, typeUint32, typeFloat32, typeInt64, typeUint64, typeFloat64, typeString} {
		pc := PointConfig{Type: t.String(), Length: len(registers) / 2}
		regs := pc.Registers()
		if regs < 1 || 2*regs > len(registers) {
			continue
		}
		for _, order := range byteOrderNames {
			pc.ByteOrder = order
			c, err := newCodec(pc)
			if err != nil {
				panic("modbus: interpreting as " + t.String() + " " + order + ": " + err.Error()) // every pair is valid
			}
			out = append(out, Interpretation{Type: pc.Type, ByteOrder: order, Value: c.decode(registers[:2*regs])})
		}
	}
	return out
}
