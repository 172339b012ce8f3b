package sunspec

import (
	"slices"
	"testing"
)

func TestLookup(t *testing.T) {
	m, ok := Lookup(103)
	if !ok || m.Name != "inverter_three_phase" || m.Group.Points[0].Name != "ID" || m.Group.Points[1].Name != "L" {
		t.Fatalf("Lookup(103) = %+v, %t", m, ok)
	}
	if _, ok := Lookup(64999); ok {
		t.Error("Lookup found a model the definitions lack")
	}
	ms := Models()
	if !slices.IsSortedFunc(ms, func(a, b Model) int { return a.ID - b.ID }) {
		t.Error("Models are not sorted by id")
	}
	for _, m := range ms {
		if got, ok := Lookup(m.ID); !ok || got.Name != m.Name {
			t.Errorf("Lookup(%d) = %v, %t", m.ID, got, ok)
		}
	}
}
