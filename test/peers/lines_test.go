package peers

import (
	"fmt"
	"slices"
	"testing"
	"time"
)

func TestLinesSplit(t *testing.T) {
	cases := []struct {
		name   string
		writes []string
		lines  []string // ended lines
		all    string   // String()
	}{
		{"nothing", nil, nil, ""},
		{"one line", []string{"a\n"}, []string{"a"}, "a\n"},
		{"unended", []string{"a\nb"}, []string{"a"}, "a\nb"},
		{"split across writes", []string{"ab", "c\nd", "e\n"}, []string{"abc", "de"}, "abc\nde\n"},
		{"several in one write", []string{"a\nb\n\nc\n"}, []string{"a", "b", "", "c"}, "a\nb\n\nc\n"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var l Lines
			for _, w := range c.writes {
				if n, err := l.Write([]byte(w)); n != len(w) || err != nil {
					t.Fatalf("Write(%q) = %d, %v", w, n, err)
				}
			}
			if got, _ := l.Since(0); !slices.Equal(got, c.lines) {
				t.Errorf("lines %q, want %q", got, c.lines)
			}
			if got := l.String(); got != c.all {
				t.Errorf("String() = %q, want %q", got, c.all)
			}
		})
	}
}

// TestLinesAwait awaits a line written by another goroutine, part by part,
// and one written before the wait.
func TestLinesAwait(t *testing.T) {
	var l Lines
	fmt.Fprintln(&l, "level=INFO msg=started")
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 100 {
			fmt.Fprintf(&l, "line %d\n", i)
		}
		fmt.Fprint(&l, "level=WARN msg=")
		fmt.Fprint(&l, "\"connection lost\" upstream=cloud\n")
	}()
	defer func() { <-done }()
	if got := l.Await(t, 10*time.Second, "connection lost", "upstream=cloud"); got != `level=WARN msg="connection lost" upstream=cloud` {
		t.Errorf("Await = %q", got)
	}
	if got := l.Await(t, time.Second, "started"); got != "level=INFO msg=started" {
		t.Errorf("Await = %q", got)
	}
	if lines, _ := l.Since(l.Len() + 5); len(lines) != 0 {
		t.Errorf("Since beyond the end = %q", lines)
	}
}

// TestLinesInOrder awaits lines expected in order with AwaitNext, and
// checks that Quiet passes over a line it does not want and an absence.
func TestLinesInOrder(t *testing.T) {
	var l Lines
	for _, s := range []string{"READY=1", "WATCHDOG=1", "RELOADING=1", "READY=1"} {
		fmt.Fprintln(&l, s)
	}
	next := l.AwaitNext(t, time.Second, 0, "READY=1")
	if next != 1 {
		t.Errorf("the first READY=1 ended line %d, want 1", next)
	}
	if next = l.AwaitNext(t, time.Second, next, "READY=1"); next != 4 {
		t.Errorf("the second READY=1 ended line %d, want 4", next)
	}
	l.Quiet(t, 10*time.Millisecond, 2, "WATCHDOG=1") // written before line 2
	l.Quiet(t, 10*time.Millisecond, 0, "STOPPING=1")
}
