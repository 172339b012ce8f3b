package bridge

import (
	"context"
	"sync"
	"time"

	"github.com/fieldgate/fieldgate/internal/reading"
)

// statusBoard holds each adapter's current status payload. Every change gets
// a new version; each upstream publishes the payloads newer than the ones it
// has sent, and all of them after each (re)connect. An adapter that left
// the configuration keeps a cleared status, an empty payload, so that every
// upstream removes its retained status from the broker.
type statusBoard struct {
	mu         sync.Mutex
	version    uint64
	adapters   map[string]*adapterStatus
	configured map[string]bool            // the adapters of the running configuration
	watchers   map[chan struct{}]struct{} // one per upstream, capacity 1
}

type adapterStatus struct {
	errText string    // "" when ok
	since   time.Time // start of the current error spell
	cleared bool      // the adapter left the configuration: payload is empty
	version uint64
	payload []byte
}

func newStatusBoard() *statusBoard {
	return &statusBoard{adapters: map[string]*adapterStatus{}, configured: map[string]bool{},
		watchers: map[chan struct{}]struct{}{}}
}

// set records an adapter's status and reports whether it changed. Within one
// error spell "since" keeps the spell's start even if the error text changes.
// An adapter not in the configuration has no status: a late report from
// one that a reload removed is ignored.
func (b *statusBoard) set(adapter string, err error, now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.configured[adapter] {
		return false
	}
	cur, known := b.adapters[adapter]
	known = known && !cur.cleared
	next := &adapterStatus{}
	if err != nil {
		next.errText, next.since = err.Error(), now
		if known && cur.errText != "" {
			next.since = cur.since
		}
	}
	if known && cur.errText == next.errText {
		return false
	}
	next.payload = statusPayload(next.errText, next.since)
	b.changeLocked(adapter, next)
	return true
}

// configure takes the adapters of a new configuration: the statuses of
// those it no longer has are cleared on every upstream.
func (b *statusBoard) configure(adapters []string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	clear(b.configured)
	for _, a := range adapters {
		b.configured[a] = true
	}
	for a, st := range b.adapters {
		if !b.configured[a] && !st.cleared {
			b.changeLocked(a, &adapterStatus{cleared: true, payload: []byte{}})
		}
	}
}

// changeLocked records st as adapter's new status, with the next version,
// and tells the watchers; b.mu must be held.
func (b *statusBoard) changeLocked(adapter string, st *adapterStatus) {
	b.version++
	st.version = b.version
	b.adapters[adapter] = st
	for w := range b.watchers {
		select {
		case w <- struct{}{}:
		default: // already signalled
		}
	}
}

// statusPayload encodes {"state":"ok"} or
// {"state":"error","error":"…","since":"RFC 3339"}.
func statusPayload(errText string, since time.Time) []byte {
	if errText == "" {
		return []byte(`{"state":"ok"}`)
	}
	b := append(make([]byte, 0, 64+len(errText)), `{"state":"error","error":`...)
	b = reading.String(errText).AppendJSON(b)
	b = append(b, `,"since":"`...)
	b = since.UTC().AppendFormat(b, time.RFC3339)
	return append(b, `"}`...)
}

// watch registers a channel that is signalled after each change.
func (b *statusBoard) watch(w chan struct{}) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.watchers[w] = struct{}{}
}

func (b *statusBoard) unwatch(w chan struct{}) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.watchers, w)
}

// newer calls fn, outside the lock, for each status newer than the version
// published records, and records it as published.
func (b *statusBoard) newer(published map[string]uint64, fn func(adapter string, payload []byte)) {
	type item struct {
		adapter string
		payload []byte
	}
	var todo []item
	b.mu.Lock()
	for a, st := range b.adapters {
		if st.version > published[a] {
			published[a] = st.version
			todo = append(todo, item{a, st.payload})
		}
	}
	b.mu.Unlock()
	for _, it := range todo {
		fn(it.adapter, it.payload)
	}
}

// statusPublisher keeps one upstream's broker holding every adapter's
// status: all of them at each new link, then each change; an empty
// retained message removes the status of an adapter no longer configured.
type statusPublisher struct {
	board   *statusBoard
	conn    *conn
	ctx     context.Context // the upstream's: ends at its stop
	changed chan struct{}   // capacity 1: the board changed

	mu        sync.Mutex
	linked    bool              // between connected and disconnected: `online` went out first
	published map[string]uint64 // status versions published on the current link
}

func newStatusPublisher(u *upstream) *statusPublisher {
	p := &statusPublisher{board: u.b.status, conn: u.conn, ctx: u.ctx, changed: make(chan struct{}, 1),
		published: map[string]uint64{}}
	p.board.watch(p.changed)
	return p
}

// run publishes changes until the upstream stops.
func (p *statusPublisher) run() {
	defer p.board.unwatch(p.changed)
	for {
		select {
		case <-p.ctx.Done():
			return
		case <-p.changed:
			p.mu.Lock()
			if p.linked {
				p.publishLocked()
			}
			p.mu.Unlock()
		}
	}
}

// connected publishes every status on a new link, after `online` and
// before its readings.
func (p *statusPublisher) connected() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.linked = true
	clear(p.published)
	p.publishLocked()
}

// disconnected notes that the link is gone: changes wait for the next.
func (p *statusPublisher) disconnected() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.linked = false
}

func (p *statusPublisher) publishLocked() {
	p.board.newer(p.published, func(adapter string, payload []byte) {
		p.conn.publish(p.conn.s.adapterStatusTopic(adapter), 1, true, payload)
	})
}
