package peers

import (
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// Notify is a systemd notification socket (NOTIFY_SOCKET) for a test: it
// records every state a process sends to Path, in order.
type Notify struct {
	Path string

	mu     sync.Mutex
	states []string
	more   chan struct{} // closed and replaced at each state
}

// ListenNotify opens the socket until the test ends.
func ListenNotify(t testing.TB) *Notify {
	t.Helper()
	n := &Notify{Path: filepath.Join(t.TempDir(), "notify"), more: make(chan struct{})}
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: n.Path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	var reader sync.WaitGroup
	reader.Go(func() {
		buf := make([]byte, 4096)
		for {
			k, err := conn.Read(buf)
			if err != nil {
				return
			}
			n.mu.Lock()
			n.states = append(n.states, string(buf[:k]))
			close(n.more)
			n.more = make(chan struct{})
			n.mu.Unlock()
		}
	})
	t.Cleanup(func() {
		_ = conn.Close()
		reader.Wait()
	})
	return n
}

// Len is how many states have arrived so far.
func (n *Notify) Len() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return len(n.states)
}

// Await waits for a state containing want, from the from-th (0-based) on,
// and returns the count of states up to and including it; it fails the
// test after timeout.
func (n *Notify) Await(t testing.TB, timeout time.Duration, from int, want string) int {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		n.mu.Lock()
		states, more := n.states, n.more
		n.mu.Unlock()
		for i := from; i < len(states); i++ {
			if strings.Contains(states[i], want) {
				return i + 1
			}
		}
		from = len(states)
		select {
		case <-more:
		case <-deadline.C:
			t.Fatalf("no %s notification within %v", want, timeout)
			return 0
		}
	}
}

// Quiet fails the test if a state containing unwanted arrives, from the
// from-th on, within d: how long an absence must last to count is the
// test's judgement.
func (n *Notify) Quiet(t testing.TB, d time.Duration, from int, unwanted string) {
	t.Helper()
	end := time.NewTimer(d)
	defer end.Stop()
	for {
		n.mu.Lock()
		states, more := n.states, n.more
		n.mu.Unlock()
		for i := from; i < len(states); i++ {
			if strings.Contains(states[i], unwanted) {
				t.Fatalf("unexpected %s notification", states[i])
			}
		}
		from = len(states)
		select {
		case <-more:
		case <-end.C:
			return
		}
	}
}
