package modbus

import (
	"cmp"
	"slices"
)

// span is the address range one point occupies in its table.
type span struct {
	addr  int
	width int // registers or bits, at least 1
}

// block is one planned read request: count addresses from start, covering
// the spans listed by their index in coalesce's input.
type block struct {
	start, count int
	spans        []int
}

// coalesce groups spans of one table into read requests, greedily in address
// order: a span joins the current request when the hole before it is at most
// maxGap addresses and the request stays within limit addresses; overlapping
// spans share the read. Every span must itself be at most limit wide.
func coalesce(spans []span, maxGap, limit int) []block {
	order := make([]int, len(spans))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int {
		return cmp.Or(cmp.Compare(spans[a].addr, spans[b].addr), cmp.Compare(spans[b].width, spans[a].width))
	})
	var out []block
	for _, i := range order {
		s := spans[i]
		if n := len(out); n > 0 {
			b := &out[n-1]
			end := b.start + b.count
			newEnd := max(end, s.addr+s.width)
			if s.addr-end <= maxGap && newEnd-b.start <= limit {
				b.count = newEnd - b.start
				b.spans = append(b.spans, i)
				continue
			}
		}
		out = append(out, block{start: s.addr, count: s.width, spans: []int{i}})
	}
	return out
}
