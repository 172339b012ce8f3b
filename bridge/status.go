package bridge

import (
	"sync"
	"time"

	"github.com/fieldgate/fieldgate/internal/reading"
)

// statusBoard holds each adapter's current status payload. Every change gets
// a new version; each upstream publishes the payloads newer than the ones it
// has sent, and all of them after each (re)connect.
type statusBoard struct {
	mu       sync.Mutex
	version  uint64
	adapters map[string]*adapterStatus
	watchers map[chan struct{}]struct{} // one per upstream, capacity 1
}

type adapterStatus struct {
	errText string    // "" when ok
	since   time.Time // start of the current error spell
	version uint64
	payload []byte
}

func newStatusBoard() *statusBoard {
	return &statusBoard{adapters: map[string]*adapterStatus{}, watchers: map[chan struct{}]struct{}{}}
}

// set records an adapter's status and reports whether it changed. Within one
// error spell "since" keeps the spell's start even if the error text changes.
func (b *statusBoard) set(adapter string, err error, now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	cur, known := b.adapters[adapter]
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
	b.version++
	next.version = b.version
	next.payload = statusPayload(next.errText, next.since)
	b.adapters[adapter] = next
	for w := range b.watchers {
		select {
		case w <- struct{}{}:
		default: // already signalled
		}
	}
	return true
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

// newer calls fn, outside the lock, for each status newer than what sent
// records, and records it as sent.
func (b *statusBoard) newer(sent map[string]uint64, fn func(adapter string, payload []byte)) {
	type item struct {
		adapter string
		payload []byte
	}
	var todo []item
	b.mu.Lock()
	for a, st := range b.adapters {
		if st.version > sent[a] {
			sent[a] = st.version
			todo = append(todo, item{a, st.payload})
		}
	}
	b.mu.Unlock()
	for _, it := range todo {
		fn(it.adapter, it.payload)
	}
}
