package backoff

import (
	"testing"
	"time"

	cb "github.com/cenkalti/backoff/v4"
)

func TestNew(t *testing.T) {
	const s, ms = time.Second, time.Millisecond
	tests := []struct {
		name       string
		first, max time.Duration
		spans      []time.Duration // each wait must lie in [span/2, span]
	}{
		{"port", s, 30 * s, []time.Duration{1 * s, 2 * s, 4 * s, 8 * s, 16 * s, 30 * s, 30 * s}},
		{"broker", s, 4 * s, []time.Duration{1 * s, 2 * s, 4 * s, 4 * s}},
		{"max below first", s, 200 * ms, []time.Duration{200 * ms, 200 * ms}},
		{"test pace", 10 * ms, 50 * ms, []time.Duration{10 * ms, 20 * ms, 40 * ms, 50 * ms, 50 * ms}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := New(tt.first, tt.max)
			for round := range 2 { // the second after Reset
				for i, span := range tt.spans {
					// Many draws per step would only re-test the library's
					// random numbers: one checks the bounds of the step.
					if d := b.Next(); d < span/2 || d > span {
						t.Fatalf("round %d wait %d = %v, want within [%v, %v]", round, i, d, span/2, span)
					}
				}
				b.Reset()
			}
		})
	}
}

// TestNeverStops: a gateway retries for as long as it runs, here
// a year on the library's clock.
func TestNeverStops(t *testing.T) {
	b := New(time.Second, 30*time.Second)
	clock := &fakeClock{t: time.Now()}
	b.b.Clock = clock
	b.Reset()
	clock.t = clock.t.Add(365 * 24 * time.Hour)
	if d := b.Next(); d == cb.Stop {
		t.Fatal("the back-off gave up")
	}
}

type fakeClock struct{ t time.Time }

func (c *fakeClock) Now() time.Time { return c.t }
