// Package ratelog keeps floods out of the log. A device sending garbage,
// or anyone publishing thousands of bad commands, would otherwise write a
// line per event into journald, burying everything else and wearing the SD
// card: a Limiter writes the first event of each kind at once and then at
// most one line per kind per interval, which says how many it stands for.
package ratelog

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// maxKinds bounds the kinds a Limiter tracks; callers name kinds from small
// fixed sets, so reaching it means a caller put data into a kind, and the
// excess shares one.
const maxKinds = 256

// overflow is the kind of events past maxKinds.
const overflow = "\x00overflow"

// Limiter rate-limits log lines by kind. It is safe for concurrent use.
type Limiter struct {
	log   *slog.Logger
	every time.Duration

	mu    sync.Mutex
	kinds map[string]*kind
}

// kind is the state of one kind of event.
type kind struct {
	logged time.Time // when its last line was written
	// The events since then that were not written, and the latest of them,
	// which the next line shows.
	suppressed int
	level      slog.Level
	msg        string
	args       []any
	flush      *time.Timer // writes the count if no event comes to carry it
}

// New returns a Limiter writing to log at most one line per kind every
// interval.
func New(log *slog.Logger, every time.Duration) *Limiter {
	return &Limiter{log: log, every: every, kinds: map[string]*kind{}}
}

// Log writes msg with args at level, unless a line of the same kind was
// written less than the interval ago: then the event is held back, and once
// the interval has passed the kind's next line (the next event's, or if none
// comes, the latest held-back event's) carries suppressed=N, the events of
// the kind since the line before that it does not show. Every event is
// thus either written or counted once.
func (l *Limiter) Log(level slog.Level, kindName, msg string, args ...any) {
	now := time.Now()
	l.mu.Lock()
	k := l.kinds[kindName]
	if k == nil {
		if len(l.kinds) >= maxKinds {
			kindName = overflow
			k = l.kinds[kindName]
		}
		if k == nil {
			k = &kind{}
			l.kinds[kindName] = k
		}
	}
	if !k.logged.IsZero() && now.Sub(k.logged) < l.every {
		k.suppressed++
		k.level, k.msg, k.args = level, msg, args
		if k.flush == nil {
			k.flush = time.AfterFunc(k.logged.Add(l.every).Sub(now), func() { l.flush(k) })
		}
		l.mu.Unlock()
		return
	}
	n := k.take(now)
	l.mu.Unlock()
	l.write(level, msg, args, n)
}

// flush writes the suppressed events of k, if no event has done so since
// the timer was set.
func (l *Limiter) flush(k *kind) {
	l.mu.Lock()
	k.flush = nil
	if k.suppressed == 0 {
		l.mu.Unlock()
		return
	}
	level, msg, args := k.level, k.msg, k.args
	n := k.take(time.Now())
	l.mu.Unlock()
	l.write(level, msg, args, n-1) // the line shows one of them
}

// take starts a new interval at now and returns the count suppressed in
// the last one.
func (k *kind) take(now time.Time) int {
	n := k.suppressed
	k.logged, k.suppressed, k.args = now, 0, nil
	if k.flush != nil {
		k.flush.Stop()
		k.flush = nil
	}
	return n
}

func (l *Limiter) write(level slog.Level, msg string, args []any, suppressed int) {
	if suppressed > 0 {
		args = append(args[:len(args):len(args)], "suppressed", suppressed)
	}
	l.log.Log(context.Background(), level, msg, args...)
}
