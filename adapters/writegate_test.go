package adapters

import (
	"errors"
	"testing"
	"time"
)

func TestWriteGate(t *testing.T) {
	if g := NewWriteGate(0); g != nil || g.Pass(time.Now()) != nil {
		t.Error("a 0 interval does not let every write through")
	}
	g := NewWriteGate(time.Second)
	t0 := time.Now()
	for _, c := range []struct {
		at   time.Duration
		want error
	}{
		{0, nil},
		{999 * time.Millisecond, ErrTooSoon},
		{time.Second, nil}, // a second after the last write let through
		{1500 * time.Millisecond, ErrTooSoon},
		{1999 * time.Millisecond, ErrTooSoon}, // refusals do not restart the interval
		{2 * time.Second, nil},
	} {
		if err := g.Pass(t0.Add(c.at)); !errors.Is(err, c.want) {
			t.Errorf("write at +%v: %v, want %v", c.at, err, c.want)
		}
	}
}
