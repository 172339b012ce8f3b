package modbus

import "testing"

func TestRegisters(t *testing.T) {
	for _, tt := range []struct {
		typ    string
		length int
		want   int
	}{
		{"bool", 0, 1}, {"int16", 0, 1}, {"uint16", 0, 1},
		{"int32", 0, 2}, {"uint32", 0, 2}, {"float32", 0, 2},
		{"int64", 0, 4}, {"uint64", 0, 4}, {"float64", 0, 4},
		{"string", 10, 10}, {"flaot32", 0, 0},
	} {
		if got := (PointConfig{Type: tt.typ, Length: tt.length}).Registers(); got != tt.want {
			t.Errorf("%s: %d registers, want %d", tt.typ, got, tt.want)
		}
	}
}
