package bridge

import (
	"testing"
	"time"
)

func TestStatusPayload(t *testing.T) {
	b := newStatusBoard()
	b.configure([]string{"boiler"})
	w := make(chan struct{}, 1)
	b.watch(w)
	t0 := time.Date(2026, 11, 21, 23, 0, 0, 0, time.UTC)
	steps := []struct {
		err     error
		changed bool
		want    string
	}{
		{nil, true, `{"state":"ok"}`},
		{nil, false, `{"state":"ok"}`},
		{errString("timeout"), true, `{"state":"error","error":"timeout","since":"2026-11-21T23:00:02Z"}`},
		{errString("timeout"), false, `{"state":"error","error":"timeout","since":"2026-11-21T23:00:02Z"}`},
		{errString("exception \"2\""), true, `{"state":"error","error":"exception \"2\"","since":"2026-11-21T23:00:02Z"}`},
		{nil, true, `{"state":"ok"}`},
	}
	sent := map[string]uint64{}
	for i, s := range steps {
		if got := b.set("boiler", s.err, t0.Add(time.Duration(i)*time.Second)); got != s.changed {
			t.Fatalf("step %d: changed = %v, want %v", i, got, s.changed)
		}
		select {
		case <-w:
			if !s.changed {
				t.Fatalf("step %d: watcher signalled without a change", i)
			}
		default:
			if s.changed {
				t.Fatalf("step %d: watcher not signalled", i)
			}
		}
		var got []string
		b.newer(sent, func(a string, p []byte) { got = append(got, a+" "+string(p)) })
		if s.changed && (len(got) != 1 || got[0] != "boiler "+s.want) || !s.changed && len(got) != 0 {
			t.Fatalf("step %d: published %q, want %s", i, got, s.want)
		}
	}
}

// TestStatusCleared: an adapter a reload removes gets an empty status,
// published once more to each upstream, and its later reports are
// ignored; put back, it has a status again.
func TestStatusCleared(t *testing.T) {
	b := newStatusBoard()
	b.configure([]string{"boiler", "scale"})
	now := time.Now()
	b.set("boiler", nil, now)
	b.set("scale", errString("timeout"), now)
	if b.set("pump", nil, now) {
		t.Error("a status of an adapter not configured changed")
	}
	published := map[string]uint64{} // by one upstream's link
	statuses := func(published map[string]uint64) map[string]string {
		got := map[string]string{}
		b.newer(published, func(a string, p []byte) { got[a] = string(p) })
		return got
	}
	if got := statuses(published); len(got) != 2 {
		t.Fatalf("published %v, want boiler and scale", got)
	}

	w := make(chan struct{}, 1)
	b.watch(w)
	b.configure([]string{"boiler"})
	select {
	case <-w:
	default:
		t.Error("watcher not signalled by the removal")
	}
	if got := statuses(published); len(got) != 1 || !cleared(got, "scale") {
		t.Errorf("after the removal: %q, want scale cleared", got)
	}
	if b.set("scale", nil, now) {
		t.Error("a removed adapter's late report changed its status")
	}
	b.configure([]string{"boiler"})
	if got := statuses(published); len(got) != 0 {
		t.Errorf("a second reload published %q again", got)
	}
	// A new link publishes the clearing again, for a broker that missed it.
	if got := statuses(map[string]uint64{}); !cleared(got, "scale") || got["boiler"] != `{"state":"ok"}` {
		t.Errorf("on a new link: %q", got)
	}

	b.configure([]string{"boiler", "scale"})
	if !b.set("scale", nil, now) {
		t.Error("the adapter put back has no status")
	}
	if got := statuses(published); got["scale"] != `{"state":"ok"}` {
		t.Errorf("the adapter put back: %q", got)
	}
}

// cleared reports whether statuses has an empty payload for adapter.
func cleared(statuses map[string]string, adapter string) bool {
	p, ok := statuses[adapter]
	return ok && p == ""
}

type errString string

func (e errString) Error() string { return string(e) }
