package adapters

import (
	"math"
	"time"

	"github.com/fieldgate/fieldgate/internal/reading"
)

// ChangeFilter implements a point's on_change, deadband and heartbeat
// settings: with OnChange set, a reading passes only when its value moved by
// more than Deadband (numbers) or changed at all (other kinds), or when
// Heartbeat has passed since the last reading that passed. The zero value
// passes everything. It is not safe for concurrent use; each point owns one.
type ChangeFilter struct {
	OnChange  bool
	Deadband  float64
	Heartbeat time.Duration

	last     reading.Value
	lastTime time.Time
	seen     bool
}

// Pass reports whether a reading of v taken at t should be emitted, and if so
// remembers it as the last emitted value.
func (f *ChangeFilter) Pass(v reading.Value, t time.Time) bool {
	if f.OnChange && f.seen && !f.changed(v) &&
		(f.Heartbeat <= 0 || t.Sub(f.lastTime) < f.Heartbeat) {
		return false
	}
	f.last, f.lastTime, f.seen = v, t, true
	return true
}

// changed compares numbers through float64 only against a deadband: without
// one the comparison is exact, as float64 cannot tell apart 64-bit integers
// (counters, energy totals) above 2^53.
func (f *ChangeFilter) changed(v reading.Value) bool {
	if f.Deadband > 0 && f.last.Kind() != reading.KindBool {
		a, okA := f.last.Float64()
		b, okB := v.Float64()
		if okA && okB {
			return math.Abs(b-a) > f.Deadband
		}
	}
	return v != f.last
}
