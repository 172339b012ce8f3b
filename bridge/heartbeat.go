package bridge

import (
	"sync/atomic"
	"time"
)

const (
	// beatSlack is what a heartbeat's promise allows beyond the wait it
	// covers, for scheduling on a busy machine.
	beatSlack = 10 * time.Second
	// pumpBeat is how often an idle publisher wakes to show it is alive.
	pumpBeat = 5 * time.Second
)

// heartbeat is an upstream goroutine's promise to show progress again by a
// time: before each wait it promises to be back after it, so a goroutine
// stuck anywhere (a blocked call into paho, a bug) breaks its promise, and
// the gateway stops feeding the systemd watchdog (Bridge.Stalled).
type heartbeat struct{ by atomic.Int64 } // UnixNano

// beat promises the next beat within d (plus beatSlack).
func (h *heartbeat) beat(d time.Duration) {
	h.by.Store(time.Now().Add(d + beatSlack).UnixNano())
}

// rest withdraws the promise, for a wait that needs none.
func (h *heartbeat) rest() { h.by.Store(0) }

// late reports whether the promise was broken by now.
func (h *heartbeat) late(now time.Time) bool {
	by := h.by.Load()
	return by != 0 && now.UnixNano() > by
}
