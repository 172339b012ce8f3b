package peers

import (
	"bytes"
	"strings"
	"sync"
	"testing"
	"time"
)

// Lines keeps what a process or a logger writes, line by line, so a test can
// await a line instead of sleeping. It is an io.Writer safe for concurrent
// use; the zero value is ready.
type Lines struct {
	mu    sync.Mutex
	part  []byte // the line being written, not ended yet
	lines []string
	more  chan struct{} // closed and replaced at each new line
}

func (l *Lines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.part = append(l.part, p...)
	n := len(l.lines)
	for {
		line, rest, ok := bytes.Cut(l.part, []byte("\n"))
		if !ok {
			break
		}
		l.lines = append(l.lines, string(line))
		l.part = rest
	}
	l.part = append([]byte(nil), l.part...) // let the written lines go
	if len(l.lines) > n && l.more != nil {
		close(l.more)
		l.more = nil
	}
	return len(p), nil
}

// Len is how many lines have ended so far.
func (l *Lines) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.lines)
}

// Since returns the lines from the n-th (0-based) on, and a channel closed
// when the next line ends.
func (l *Lines) Since(n int) ([]string, <-chan struct{}) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.more == nil {
		l.more = make(chan struct{})
	}
	n = min(n, len(l.lines))
	return l.lines[n:len(l.lines):len(l.lines)], l.more
}

// Await waits for a line, written so far or to come, that contains every
// one of subs, and returns the first; it fails the test after timeout.
func (l *Lines) Await(t testing.TB, timeout time.Duration, subs ...string) string {
	t.Helper()
	return l.AwaitFrom(t, timeout, 0, subs...)
}

// AwaitFrom is Await for the lines from the n-th (0-based, as Len counts)
// on: what happens after a moment the test marked with Len.
func (l *Lines) AwaitFrom(t testing.TB, timeout time.Duration, n int, subs ...string) string {
	t.Helper()
	line, _ := l.await(t, timeout, n, 1, subs)
	return line
}

// AwaitNext is AwaitFrom for lines a test expects in order: it returns how
// many lines had ended with the one found, the n to look for the next from.
func (l *Lines) AwaitNext(t testing.TB, timeout time.Duration, n int, subs ...string) int {
	t.Helper()
	_, next := l.await(t, timeout, n, 1, subs)
	return next
}

// AwaitCount waits for count lines, written so far or to come, that
// contain every one of subs, and returns the last of them.
func (l *Lines) AwaitCount(t testing.TB, timeout time.Duration, count int, subs ...string) string {
	t.Helper()
	line, _ := l.await(t, timeout, 0, count, subs)
	return line
}

// await returns the count-th line from the n-th on that contains every one
// of subs, and how many lines had ended with it.
func (l *Lines) await(t testing.TB, timeout time.Duration, n, count int, subs []string) (string, int) {
	t.Helper()
	line, end, found := l.find(timeout, n, count, subs)
	if !found {
		t.Fatalf("%d lines with %q wanted, from line %d on, within %v", count, subs, n, timeout)
	}
	return line, end
}

// Quiet fails the test if a line that contains every one of subs ends,
// from the n-th on, within d: how long an absence must last to count is
// the test's judgement.
func (l *Lines) Quiet(t testing.TB, d time.Duration, n int, subs ...string) {
	t.Helper()
	if line, _, found := l.find(d, n, 1, subs); found {
		t.Fatalf("unexpected line %q", line)
	}
}

// find looks for the count-th line from the n-th on that contains every
// one of subs, among the lines written so far or ending within d; it
// returns the line and how many lines had ended with it.
func (l *Lines) find(d time.Duration, n, count int, subs []string) (line string, end int, found bool) {
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	for next := n; ; {
		lines, more := l.Since(next)
		for i, line := range lines {
			if containsAll(line, subs) {
				if count--; count <= 0 {
					return line, next + i + 1, true
				}
			}
		}
		next += len(lines)
		select {
		case <-more:
		case <-deadline.C:
			return "", 0, false
		}
	}
}

// String is everything written so far.
func (l *Lines) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(append(l.lines[:len(l.lines):len(l.lines)], string(l.part)), "\n")
}

func containsAll(s string, subs []string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}
