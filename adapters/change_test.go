package adapters

import (
	"testing"
	"time"

	"github.com/fieldgate/fieldgate/internal/reading"
)

func TestChangeFilter(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	type step struct {
		v    reading.Value
		sec  int
		pass bool
	}
	cases := []struct {
		name  string
		f     ChangeFilter
		steps []step
	}{
		{"off passes all", ChangeFilter{}, []step{{reading.Float(1), 0, true}, {reading.Float(1), 1, true}}},
		{"on change", ChangeFilter{OnChange: true}, []step{
			{reading.Float(1), 0, true}, {reading.Float(1), 1, false}, {reading.Float(1.5), 2, true}, {reading.Float(1.5), 3, false}}},
		{"deadband", ChangeFilter{OnChange: true, Deadband: 0.5}, []step{
			{reading.Float(10), 0, true}, {reading.Float(10.5), 1, false}, {reading.Float(10.51), 2, true}, {reading.Float(10.2), 3, false}, {reading.Float(9.9), 4, true}}},
		{"heartbeat", ChangeFilter{OnChange: true, Heartbeat: 5 * time.Second}, []step{
			{reading.Int(3), 0, true}, {reading.Int(3), 4, false}, {reading.Int(3), 5, true}, {reading.Int(3), 9, false}, {reading.Int(3), 10, true}}},
		{"bool", ChangeFilter{OnChange: true, Deadband: 5}, []step{
			{reading.Bool(false), 0, true}, {reading.Bool(false), 1, false}, {reading.Bool(true), 2, true}}},
		{"64-bit counter", ChangeFilter{OnChange: true}, []step{
			{reading.Uint(1 << 60), 0, true}, {reading.Uint(1<<60 + 1), 1, true}, {reading.Uint(1<<60 + 1), 2, false}, {reading.Int(-1 << 60), 3, true}}},
		{"string", ChangeFilter{OnChange: true}, []step{
			{reading.String("a"), 0, true}, {reading.String("a"), 1, false}, {reading.String("b"), 2, true}}},
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
