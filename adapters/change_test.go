package adapters

import (
	"testing"
	"time"
)

func TestChangeFilter(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	type step struct {
		v    Value
		sec  int
		pass bool
	}
	cases := []struct {
		name  string
		f     ChangeFilter
		steps []step
	}{
		{"off passes all", ChangeFilter{}, []step{{Float(1), 0, true}, {Float(1), 1, true}}},
		{"on change", ChangeFilter{OnChange: true}, []step{
			{Float(1), 0, true}, {Float(1), 1, false}, {Float(1.5), 2, true}, {Float(1.5), 3, false}}},
		{"deadband", ChangeFilter{OnChange: true, Deadband: 0.5}, []step{
			{Float(10), 0, true}, {Float(10.5), 1, false}, {Float(10.51), 2, true}, {Float(10.2), 3, false}, {Float(9.9), 4, true}}},
		{"heartbeat", ChangeFilter{OnChange: true, Heartbeat: 5 * time.Second}, []step{
			{Int(3), 0, true}, {Int(3), 4, false}, {Int(3), 5, true}, {Int(3), 9, false}, {Int(3), 10, true}}},
		{"bool", ChangeFilter{OnChange: true, Deadband: 5}, []step{
			{Bool(false), 0, true}, {Bool(false), 1, false}, {Bool(true), 2, true}}},
		{"64-bit counter", ChangeFilter{OnChange: true}, []step{
			{Uint(1 << 60), 0, true}, {Uint(1<<60 + 1), 1, true}, {Uint(1<<60 + 1), 2, false}, {Int(-1 << 60), 3, true}}},
		{"string", ChangeFilter{OnChange: true}, []step{
			{String("a"), 0, true}, {String("a"), 1, false}, {String("b"), 2, true}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := c.f
			for i, s := range c.steps {
				if got := f.Pass(s.v, at(s.sec)); got != s.pass {
					t.Fatalf("step %d (%v at %ds): pass=%v, want %v", i, s.v, s.sec, got, s.pass)
				}
			}
		})
	}
}
