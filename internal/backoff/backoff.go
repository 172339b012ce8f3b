// Package backoff paces every reconnecting part of fieldgate (hardware
// ports, device sockets, brokers, restarted adapters) with one policy.
package backoff

import (
	"time"

	cb "github.com/cenkalti/backoff/v4"
)

// Backoff yields the waits between attempts: at most first, then each span
// doubles up to max, and each wait is drawn at random from the upper half of
// its span, so gateways restarted together spread out while no wait ever
// exceeds max (SPEC: the backlog resumes within reconnect_max plus a second).
// It never gives up; Reset starts over at first. A first larger than max is
// taken as max. It belongs to one goroutine.
type Backoff struct {
	b *cb.ExponentialBackOff
}

// New returns a Backoff from first to max.
//
// The library jitters ±RandomizationFactor around its interval and caps the
// interval, not the wait; an interval at 3/4 of the span with a factor of
// 1/3 draws the wait from [span/2, span].
func New(first, max time.Duration) *Backoff {
	centre := func(span time.Duration) time.Duration { return span - span/4 }
	b := &cb.ExponentialBackOff{
		InitialInterval:     centre(min(first, max)),
		RandomizationFactor: 1.0 / 3,
		Multiplier:          2,
		MaxInterval:         centre(max),
		MaxElapsedTime:      0, // never stop
		Stop:                cb.Stop,
		Clock:               cb.SystemClock,
	}
	b.Reset()
	return &Backoff{b: b}
}

// Next returns the wait before the next attempt.
func (b *Backoff) Next() time.Duration { return b.b.NextBackOff() }

// Reset starts the waits over at first, after an attempt that worked.
func (b *Backoff) Reset() { b.b.Reset() }
