package bridge

import (
	"log/slog"
	"slices"
	"strings"
	"testing"

	"github.com/fieldgate/fieldgate/internal/reading"
	"github.com/fieldgate/fieldgate/internal/statefile"
)

// TestAnnouncementsFollowTheDevice: the points an adapter announced stay in
// the view across a restart and a reload while its device (its config
// summary) stays the same, and are dropped, in memory and at the next
// start, once the config names another device.
func TestAnnouncementsFollowTheDevice(t *testing.T) {
	state, err := statefile.OpenDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	start := func(adapters string) *Bridge {
		return New(mustLoad(t, adapters), nil, nil, slog.New(slog.DiscardHandler), WithState(state))
	}
	extra := reading.Point{Adapter: "boiler", Name: "extra", Type: "float64", Unit: "W", Scale: 1}
	has := func(b *Bridge) bool { return slices.Contains(b.view.Load().points, extra) }
	other := strings.Replace(testAdapters, "127.0.0.1:502", "127.0.0.1:503", 1)

	b := start(testAdapters)
	b.SetPoints("boiler", []reading.Point{extra})
	if !has(b) {
		t.Fatal("the announced point is not in the view")
	}
	b = start(testAdapters)
	if !has(b) {
		t.Error("the announced point was lost at a restart")
	}
	if err := b.Reload(mustLoad(t, testAdapters)); err != nil || !has(b) {
		t.Errorf("after a reload with the same device (err %v): announced point kept %t, want true", err, has(b))
	}
	if err := b.Reload(mustLoad(t, other)); err != nil || has(b) {
		t.Errorf("after a reload naming another device (err %v): announced point kept %t, want false", err, has(b))
	}
	if b = start(other); has(b) {
		t.Error("the announcement for the old device came back at a restart")
	}
}
