package modbus

import "time"

// Pace implements adapters.Pacer. A cycle sends each request of the plan,
// each bounded by the timeout and, on a shared bus, waiting for at most one
// request of every other adapter on it; the pace allows twice that worst
// case after the interval, and never less than three intervals.
func (a *Adapter) Pace() time.Duration {
	members := 1
	if m := a.member.Load(); m != nil {
		members = m.l.memberCount()
	}
	worst := time.Duration(max(len(a.plan), 1)*members) * a.timeout
	return max(3*a.interval, a.interval+2*worst)
}

// memberCount is how many adapters share the link.
func (l *link) memberCount() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return max(len(l.members), 1)
}
