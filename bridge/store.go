package bridge

import (
	"cmp"
	"slices"
	"sync"

	"github.com/eclipse/paho.mqtt.golang/packets"
)

// sessionStore is paho's session state for one upstream (mqtt.Store), kept in
// memory for the life of the upstream's client. Unlike paho's MemoryStore it
// returns packets in the order they were stored, so resent messages keep
// their seq order, and it tells the publisher when a packet leaves, which is
// how messages resent by paho are seen to be confirmed.
type sessionStore struct {
	mu      sync.Mutex
	n       uint64 // deliveries stored so far: each one's number, and All's order
	msgs    map[string]storedPacket
	changed chan struct{} // closed at the next Del or Reset; nil until asked for
}

// storeMark identifies one delivery in the store, whatever packet of it the
// store holds (a resent PUBLISH, or a QoS 2 PUBREL, replaces the packet
// under its key until the broker confirms it), so that a later message
// under the same key is not taken for it.
type storeMark struct {
	key string
	n   uint64
}

type storedPacket struct {
	n uint64 // the delivery's number
	p packets.ControlPacket
}

func newSessionStore() *sessionStore {
	return &sessionStore{msgs: map[string]storedPacket{}}
}

// Open does nothing: the contents must survive the client's disconnects.
func (s *sessionStore) Open() {}

// Close does nothing, for the same reason as Open.
func (s *sessionStore) Close() {}

// Put stores a packet under key, replacing the one of the same delivery,
// if any: a key is only reused after its delivery is deleted.
func (s *sessionStore) Put(key string, p packets.ControlPacket) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sp, ok := s.msgs[key]
	if !ok {
		s.n++
		sp.n = s.n
	}
	sp.p = p
	s.msgs[key] = sp
}

// Get returns the packet stored under key, or nil.
func (s *sessionStore) Get(key string) packets.ControlPacket {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.msgs[key].p
}

// All returns every key, oldest first.
func (s *sessionStore) All() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	keys := make([]string, 0, len(s.msgs))
	for k := range s.msgs {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b string) int {
		return cmp.Compare(s.msgs[a].n, s.msgs[b].n)
	})
	return keys
}

// Del removes the packet under key.
func (s *sessionStore) Del(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.msgs, key)
	s.signal()
}

// Reset removes everything (paho calls it when a clean session starts).
func (s *sessionStore) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.msgs)
	s.signal()
}

func (s *sessionStore) signal() {
	if s.changed != nil {
		close(s.changed)
		s.changed = nil
	}
}

// mark returns the mark of the message stored under key, if any.
func (s *sessionStore) mark(key string) (storeMark, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sp, ok := s.msgs[key]
	return storeMark{key, sp.n}, ok
}

// holds reports whether the marked message is still in the store: paho
// deletes it when the broker confirms delivery (PUBACK, PUBCOMP).
func (s *sessionStore) holds(m storeMark) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	sp, ok := s.msgs[m.key]
	return ok && sp.n == m.n
}

// wait returns a channel closed at the next removal.
func (s *sessionStore) wait() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.changed == nil {
		s.changed = make(chan struct{})
	}
	return s.changed
}
