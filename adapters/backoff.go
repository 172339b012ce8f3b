package adapters

import (
	"time"

	"github.com/cenkalti/backoff/v4"
)

// NewBackoff returns the back-off every reconnecting part of fieldgate uses
// (hardware ports, device sockets, brokers): NextBackOff yields a wait of at
// most first, then each span doubles up to max, and each wait is drawn at
// random from the upper half of its span, so gateways restarted together
// spread out while no wait ever exceeds max (SPEC: the backlog resumes
// within reconnect_max plus a second). It never gives up; Reset starts over
// at first. A first larger than max is taken as max. Like any
// ExponentialBackOff it belongs to one goroutine.
//
// The library jitters ±RandomizationFactor around its interval and caps the
// interval, not the wait; an interval at 3/4 of the span with a factor of
// 1/3 draws the wait from [span/2, span].
func NewBackoff(first, max time.Duration) *backoff.ExponentialBackOff {
	centre := func(span time.Duration) time.Duration { return span - span/4 }
	b := &backoff.ExponentialBackOff{
		InitialInterval:     centre(min(first, max)),
		RandomizationFactor: 1.0 / 3,
		Multiplier:          2,
		MaxInterval:         centre(max),
		MaxElapsedTime:      0, // never stop
		Stop:                backoff.Stop,
		Clock:               backoff.SystemClock,
	}
	b.Reset()
	return b
}
