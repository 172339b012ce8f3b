package modbus

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/fieldgate/fieldgate/adapters"
	"github.com/fieldgate/fieldgate/adapters/adapterstest"
	"github.com/fieldgate/fieldgate/test/modbussim"
)

// fewestRequests is the least number of read requests that cover spans of
// one table under the coalescing rules (a request reads at most limit
// addresses; the holes it reads over are at most maxGap wide), found by
// trying every partition of the spans in address order, independently of
// coalesce's greedy pass.
func fewestRequests(spans []span, maxGap, limit int) int {
	s := slices.SortedFunc(slices.Values(spans), func(a, b span) int {
		return cmp.Or(cmp.Compare(a.addr, b.addr), cmp.Compare(b.width, a.width))
	})
	// best[i] is the fewest requests for the first i spans.
	best := make([]int, len(s)+1)
	for i := 1; i <= len(s); i++ {
		best[i] = len(s) + 1
		end := 0
		for j := i - 1; j >= 0; j-- { // the last request reads spans j…i-1
			start := s[j].addr
			end = max(end, s[j].addr+s[j].width)
			if end-start > limit {
				break
			}
			ok := true
			for k, reach := j+1, s[j].addr+s[j].width; k < i; k++ {
				if s[k].addr-reach > maxGap {
					ok = false
					break
				}
				reach = max(reach, s[k].addr+s[k].width)
			}
			if ok {
				best[i] = min(best[i], best[j]+1)
			}
		}
	}
	return best[len(s)]
}

// TestPollSendsTheFewestRequests polls a device whose points lie in all four
// tables, at distances around max_gap and the request limits, and counts
// the requests the server answers in each cycle: exactly the fewest the
// coalescing rules allow.
func TestPollSendsTheFewestRequests(t *testing.T) {
	const maxGap = 10
	var points []PointConfig
	add := func(table string, addr int, typ string) {
		points = append(points, pt(fmt.Sprintf("%s_%d", table, addr), table, addr, typ))
	}
	// Holding registers: float32 pairs 2 apart, a hole of max_gap and one
	// of max_gap+1, a run crossing the 125-register limit, a lone far one.
	for a := 0; a < 40; a += 2 {
		add(HoldingRegister, a, "float32")
	}
	add(HoldingRegister, 40+maxGap, "uint16")
	add(HoldingRegister, 40+maxGap+1+maxGap+1, "int32")
	for a := 100; a < 260; a += 4 {
		add(HoldingRegister, a, "float64")
	}
	add(HoldingRegister, 5000, "string")
	// Input registers: a dense run and one just out of reach.
	for a := range 30 {
		add(InputRegister, 1000+a, "int16")
	}
	add(InputRegister, 1030+maxGap+1, "uint16")
	// Coils: 2000 a request, holes around max_gap.
	for a := 0; a < 2100; a += 7 {
		add(Coil, a, "bool")
	}
	add(Coil, 2100+maxGap+5, "bool")
	// Discrete inputs: two clusters.
	for _, a := range []int{3, 4, 5, 30, 31} {
		add(DiscreteInput, a, "bool")
	}
	for i := range points {
		if points[i].Type == "string" {
			points[i].Length = 8
		}
	}

	bank := modbussim.NewBank()
	srv := serve(t, bank, "127.0.0.1:0").Addr
	cfg := deviceConfig("tcp://"+srv, time.Hour, points...)
	cfg.MaxGap = maxGap
	a, err := New(cfg, adapters.Env{})
	if err != nil {
		t.Fatal(err)
	}
	byTable := map[table][]span{}
	for _, p := range a.configured {
		byTable[p.table] = append(byTable[p.table], span{p.addr, p.width()})
	}
	want := 0
	for tb, spans := range byTable {
		want += fewestRequests(spans, maxGap, tb.limit())
	}

	m, err := a.attach()
	if err != nil {
		t.Fatal(err)
	}
	defer m.detach()
	for cycle := range 3 {
		before := bank.Reads()
		rec := &adapterstest.Recorder{}
		rec.Status(a.poll(context.Background(), m, rec, a.points.Load().all))
		c := rec.NextCycle(t)
		if c.Err != nil || len(c.Readings) != len(points) {
			t.Fatalf("cycle %d: %d readings of %d, status %v", cycle, len(c.Readings), len(points), c.Err)
		}
		if got := bank.Reads() - before; got != want {
			t.Errorf("cycle %d: the server answered %d requests, the fewest that cover the points are %d", cycle, got, want)
		}
	}
	t.Logf("%d points in %d requests a cycle", len(points), want)
}
