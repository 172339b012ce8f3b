package bridge

import (
	"sync"

	"github.com/fieldgate/fieldgate/internal/reading"
)

// latest holds each point's newest reading as the gateway polled it, fed
// by Bridge.Observe. Sparkplug births carry these as the points' current
// values: an upstream reading its backlog from the buffer may be hours
// behind them. It is safe for concurrent use.
type latest struct {
	mu sync.Mutex
	rs map[pointKey]reading.Reading
}

func newLatest() *latest { return &latest{rs: map[pointKey]reading.Reading{}} }

// observe keeps each reading unless the point has a newer one: a command's
// read-back and a poll of the same point may be handed over in either
// order.
func (l *latest) observe(rs []reading.Reading) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, r := range rs {
		k := pointKey{r.Adapter, r.Point}
		if old, ok := l.rs[k]; !ok || !r.Time.Before(old.Time) {
			l.rs[k] = r
		}
	}
}

// forget drops every reading.
func (l *latest) forget() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.rs = map[pointKey]reading.Reading{}
}

// of returns the newest reading of a point, if it has one.
func (l *latest) of(k pointKey) (reading.Reading, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	r, ok := l.rs[k]
	return r, ok
}

// adapter returns the newest reading of each point of adapter, by point.
func (l *latest) adapter(adapter string) map[string]reading.Reading {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := map[string]reading.Reading{}
	for k, r := range l.rs {
		if k.adapter == adapter {
			out[k.point] = r
		}
	}
	return out
}
