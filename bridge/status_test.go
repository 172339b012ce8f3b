package bridge

import (
	"testing"
	"time"
)

func TestStatusPayload(t *testing.T) {
	b := newStatusBoard()
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

type errString string

func (e errString) Error() string { return string(e) }
