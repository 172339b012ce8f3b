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
	n       uint64 // insertion counter: All's order
	msgs    map[string]storedPacket
	changed chan struct{} // closed at the next Del or Reset; nil until asked for
	// dels counts the deletions of each key, resets the Resets, so a mark
	// tells a message still in the store from a later one under its key.
	dels   map[string]uint64
	resets uint64
}

// storeMark identifies one message in the store, whatever packet of its
// delivery the store holds: paho replaces a QoS 2 PUBLISH with its PUBREL
// under the same key at PUBREC, and deletes it only at PUBCOMP.
type storeMark struct {
	key          string
	dels, resets uint64
}

type storedPacket struct {
	n uint64
	p packets.ControlPacket
}

func newSessionStore() *sessionStore {
	return &sessionStore{msgs: map[string]storedPacket{}, dels: map[string]uint64{}}
}

// Open does nothing: the contents must survive the client's disconnects.
func (s *sessionStore) Open() {}

// Close does nothing, for the same reason as Open.
func (s *sessionStore) Close() {}

// Put stores a packet under key, replacing any other.
func (s *sessionStore) Put(key string, p packets.ControlPacket) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.n++
	s.msgs[key] = storedPacket{n: s.n, p: p}
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
	s.dels[key]++
	s.signal()
}

// Reset removes everything (paho calls it when a clean session starts).
func (s *sessionStore) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.msgs)
	s.resets++
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
	_, ok := s.msgs[key]
	return storeMark{key, s.dels[key], s.resets}, ok
}

// holds reports whether the marked message is still in the store: paho
// deletes it when the broker confirms delivery (PUBACK, PUBCOMP).
func (s *sessionStore) holds(m storeMark) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.msgs[m.key]
	return ok && s.dels[m.key] == m.dels && s.resets == m.resets
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
