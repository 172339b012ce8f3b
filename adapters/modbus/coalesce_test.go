package modbus

import (
	"fmt"
	"testing"
	"time"

	"github.com/fieldgate/fieldgate/adapters"
)

func TestCoalesce(t *testing.T) {
	cases := []struct {
		name   string
		spans  []span
		maxGap int
		limit  int
		want   []block
	}{
		{"none", nil, 10, 125, nil},
		{"one", []span{{7, 2}}, 10, 125, []block{{7, 2, []int{0}}}},
		{"contiguous", []span{{0, 1}, {1, 2}, {3, 4}}, 0, 125, []block{{0, 7, []int{0, 1, 2}}}},
		{"gap equals max_gap", []span{{0, 1}, {11, 1}}, 10, 125, []block{{0, 12, []int{0, 1}}}},
		{"gap max_gap+1", []span{{0, 1}, {12, 1}}, 10, 125, []block{{0, 1, []int{0}}, {12, 1, []int{1}}}},
		{"max_gap 0 merges adjacent only", []span{{0, 1}, {1, 1}, {3, 1}}, 0, 125, []block{{0, 2, []int{0, 1}}, {3, 1, []int{2}}}},
		{"exactly 125", []span{{0, 1}, {124, 1}}, 200, 125, []block{{0, 125, []int{0, 1}}}},
		{"126 splits", []span{{0, 1}, {125, 1}}, 200, 125, []block{{0, 1, []int{0}}, {125, 1, []int{1}}}},
		{"straddling the limit starts anew", []span{{0, 2}, {120, 10}}, 200, 125, []block{{0, 2, []int{0}}, {120, 10, []int{1}}}},
		{"ending exactly at the limit", []span{{0, 2}, {121, 4}}, 200, 125, []block{{0, 125, []int{0, 1}}}},
		{"same register twice", []span{{5, 1}, {5, 1}}, 0, 125, []block{{5, 1, []int{0, 1}}}},
		{"inside a wider point", []span{{11, 1}, {10, 4}}, 0, 125, []block{{10, 4, []int{1, 0}}}},
		{"overlap extends", []span{{10, 4}, {12, 4}}, 0, 125, []block{{10, 6, []int{0, 1}}}},
		{"unsorted input", []span{{40, 2}, {0, 1}, {21, 1}}, 18, 125, []block{{0, 1, []int{1}}, {21, 21, []int{2, 0}}}},
		{"full width point", []span{{0, 125}, {125, 1}}, 10, 125, []block{{0, 125, []int{0}}, {125, 1, []int{1}}}},
		{"bits up to 2000", []span{{0, 1}, {1999, 1}}, 2000, 2000, []block{{0, 2000, []int{0, 1}}}},
		{"bits over 2000", []span{{0, 1}, {2000, 1}}, 2000, 2000, []block{{0, 1, []int{0}}, {2000, 1, []int{1}}}},
		{"top of address space", []span{{65534, 1}, {65535, 1}}, 0, 125, []block{{65534, 2, []int{0, 1}}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := coalesce(c.spans, c.maxGap, c.limit)
			if fmt.Sprint(got) != fmt.Sprint(c.want) {
				t.Errorf("coalesce = %v, want %v", got, c.want)
			}
			for _, b := range got {
				if b.count > c.limit {
					t.Errorf("block %v exceeds the limit", b)
				}
			}
		})
	}
}

func TestNextTick(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s := time.Second
	cases := []struct {
		name       string
		now        time.Duration // since t0, the previous tick
		wantNext   time.Duration
		wantMissed int
	}{
		{"on time", 300 * time.Millisecond, s, 0},
		{"just before", s - 1, s, 0},
		{"exactly one interval", s, s, 0},
		{"just after", s + 1, 2 * s, 1},
		{"two and a half", 2500 * time.Millisecond, 3 * s, 2},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			next, missed := nextTick(t0, t0.Add(c.now), s)
			if next != t0.Add(c.wantNext) || missed != c.wantMissed {
				t.Errorf("nextTick = +%v, %d; want +%v, %d", next.Sub(t0), missed, c.wantNext, c.wantMissed)
			}
		})
	}
}

// TestRedial: a socket is redialled at once after its first fault, then
// with back-off growing to 30 s, and at once again after it worked.
func TestRedial(t *testing.T) {
	r := newRedial(defaultPace)
	for round := range 2 {
		if d := r.wait(); d != 0 {
			t.Fatalf("round %d: first retry after %v, want at once", round, d)
		}
		for _, span := range []time.Duration{1, 2, 4, 8, 16, 30, 30} {
			span *= time.Second
			if d := r.wait(); d < span/2 || d > span {
				t.Errorf("round %d: retry after %v, want within [%v, %v]", round, d, span/2, span)
			}
		}
		r.reset()
	}
}

// BenchmarkPlan coalesces the reads of 1000 points spread over the four
// tables, as every poll cycle does.
func BenchmarkPlan(b *testing.B) {
	var points []PointConfig
	for i := range 250 {
		points = append(points,
			pt(fmt.Sprintf("h%d", i), HoldingRegister, 3*i, "float32"),
			pt(fmt.Sprintf("i%d", i), InputRegister, i, "int16"),
			pt(fmt.Sprintf("c%d", i), Coil, 5*i, "bool"),
			pt(fmt.Sprintf("d%d", i), DiscreteInput, i, "bool"))
	}
	a, err := New(deviceConfig("tcp://127.0.0.1:1", time.Second, points...), adapters.Env{})
	if err != nil {
		b.Fatal(err)
	}
	due := a.points.Load().polled
	b.ReportAllocs()
	for b.Loop() {
		_ = a.plan(due)
	}
	b.ReportMetric(float64(len(a.plan(due))), "requests")
}
