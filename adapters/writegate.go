package adapters

import (
	"fmt"
	"sync"
	"time"
)

// WriteGate enforces a point's min_write_interval: a write sooner than the
// interval after the last one let through is refused with ErrTooSoon, so a
// runaway automation cannot chatter a relay or hammer a valve. Only writes
// that go to the hardware count; refusals for other reasons do not. It is
// safe for concurrent use; nil lets everything through.
type WriteGate struct {
	min  time.Duration
	mu   sync.Mutex
	last time.Time
}

// NewWriteGate returns the gate of a point with the given interval; nil for
// 0, which needs none.
func NewWriteGate(min time.Duration) *WriteGate {
	if min <= 0 {
		return nil
	}
	return &WriteGate{min: min}
}

// Pass lets a write through at now, counting it, or refuses it.
func (g *WriteGate) Pass(now time.Time) error {
	if g == nil {
		return nil
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.last.IsZero() && now.Sub(g.last) < g.min {
		return fmt.Errorf("%w: min_write_interval is %s", ErrTooSoon, g.min)
	}
	g.last = now
	return nil
}
