package peers

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// Message is one MQTT message as a test peer saw it.
type Message struct {
	ClientID string // the publisher, where the peer knows it (mochi)
	Topic    string
	Payload  []byte
	QoS      byte
	Retained bool
}

func (m Message) String() string {
	r := ""
	if m.Retained {
		r = " retained"
	}
	return fmt.Sprintf("%s q%d%s %s", m.Topic, m.QoS, r, m.Payload)
}

// Inbox collects the messages a peer sees and lets a test await them. The
// zero value is ready.
type Inbox struct {
	mu   sync.Mutex
	msgs []Message
	more chan struct{} // closed and replaced at each message
}

func newInbox() *Inbox { return &Inbox{more: make(chan struct{})} }

// Add records a message, for a test's own clients.
func (in *Inbox) Add(m Message) {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.msgs = append(in.msgs, m)
	if in.more != nil {
		close(in.more)
	}
	in.more = make(chan struct{})
}

// All returns a copy of every message so far, in arrival order.
func (in *Inbox) All() []Message {
	in.mu.Lock()
	defer in.mu.Unlock()
	return append([]Message(nil), in.msgs...)
}

// Topic returns the messages so far on one topic, in arrival order.
func (in *Inbox) Topic(topic string) []Message {
	var ms []Message
	for _, m := range in.All() {
		if m.Topic == topic {
			ms = append(ms, m)
		}
	}
	return ms
}

// Await waits until done, called with every message so far after each
// arrival, returns true; it fails the test after timeout.
func (in *Inbox) Await(t testing.TB, timeout time.Duration, what string, done func([]Message) bool) []Message {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		in.mu.Lock()
		if in.more == nil {
			in.more = make(chan struct{})
		}
		msgs, more := in.msgs, in.more
		in.mu.Unlock()
		if done(msgs) {
			return append([]Message(nil), msgs...)
		}
		select {
		case <-more:
		case <-deadline.C:
			t.Fatalf("waited %v for %s; got %d messages:\n%s", timeout, what, len(msgs), summary(msgs))
			return nil
		}
	}
}

// AwaitMessage waits for a message on topic whose payload satisfies match
// (nil: any) and returns the first such message.
func (in *Inbox) AwaitMessage(t testing.TB, timeout time.Duration, topic string, match func([]byte) bool) Message {
	t.Helper()
	var found Message
	in.Await(t, timeout, "a message on "+topic, func(ms []Message) bool {
		for _, m := range ms {
			if m.Topic == topic && (match == nil || match(m.Payload)) {
				found = m
				return true
			}
		}
		return false
	})
	return found
}

// summary lists the last messages, enough to debug a failed wait.
func summary(ms []Message) string {
	const last = 30
	var b strings.Builder
	if len(ms) > last {
		fmt.Fprintf(&b, "  … %d earlier\n", len(ms)-last)
		ms = ms[len(ms)-last:]
	}
	for _, m := range ms {
		fmt.Fprintf(&b, "  %s\n", m)
	}
	return b.String()
}
