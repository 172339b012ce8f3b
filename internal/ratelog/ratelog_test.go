package ratelog

import (
	"log/slog"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fieldgate/fieldgate/test/peers"
)

// TestFlood logs 5,000 events of one kind and 3 of another in a burst: each
// kind gets its first line at once and one more after the interval, and the
// lines account for every event.
func TestFlood(t *testing.T) {
	logs := &peers.Lines{}
	l := New(slog.New(slog.NewTextHandler(logs, nil)), 50*time.Millisecond)
	for i := range 5000 {
		l.Log(slog.LevelWarn, "busy", "command refused", "id", i)
		if i < 3 {
			l.Log(slog.LevelInfo, "other", "something else", "id", i)
		}
	}
	logs.Await(t, 5*time.Second, "command refused", "suppressed=4998", "id=4999")
	logs.Await(t, 5*time.Second, "something else", "suppressed=1", "id=2")
	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	if len(lines) != 4 {
		t.Fatalf("%d lines, want 4:\n%s", len(lines), logs)
	}
	counted := map[string]int{}
	suppressed := regexp.MustCompile(`suppressed=(\d+)`)
	for _, line := range lines {
		n := 1
		if m := suppressed.FindStringSubmatch(line); m != nil {
			s, _ := strconv.Atoi(m[1])
			n += s
		}
		counted[strings.Split(line, `msg="`)[1][:10]] += n
	}
	if counted["command re"] != 5000 || counted["something "] != 3 {
		t.Errorf("lines account for %v events, want 5000 and 3:\n%s", counted, logs)
	}
}

// TestSteadyTrickle logs events further apart than the interval: each is
// written, with nothing suppressed.
func TestSteadyTrickle(t *testing.T) {
	logs := &peers.Lines{}
	l := New(slog.New(slog.NewTextHandler(logs, nil)), time.Millisecond)
	for i := range 3 {
		l.Log(slog.LevelWarn, "k", "event", "i", i)
		time.Sleep(2 * time.Millisecond) // spacing events beyond the interval is the point of the test
	}
	if s := logs.String(); strings.Count(s, "msg=event") != 3 || strings.Contains(s, "suppressed") {
		t.Errorf("log:\n%s", s)
	}
}

// TestKindsBounded names more kinds than a Limiter tracks: the excess share
// one kind instead of growing the map.
func TestKindsBounded(t *testing.T) {
	l := New(slog.New(slog.DiscardHandler), time.Hour)
	for i := range 10 * maxKinds {
		l.Log(slog.LevelWarn, strconv.Itoa(i), "event")
	}
	if n := len(l.kinds); n > maxKinds+1 {
		t.Errorf("%d kinds tracked, want at most %d", n, maxKinds+1)
	}
}
