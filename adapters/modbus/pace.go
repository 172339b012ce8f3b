package modbus

import "time"

// Pace implements adapters.Pacer. Cycles come at the fastest point's
// interval; one sends each request of the plan of every point, each bounded
// by the timeout and, on a shared bus, waiting for at most one request of
// every other adapter on it. The pace allows twice that worst case after
// the interval, and never less than three intervals. SunSpec discovery
// reads the model chain again at a reconnect, as many requests again, and
// an adapter with no other point reports only at each retry of a
// discovery that fails, at most its back-off apart.
func (a *Adapter) Pace() time.Duration {
	members := 1
	if m := a.member.Load(); m != nil {
		members = m.l.memberCount()
	}
	set := a.points.Load()
	every, requests := a.interval, max(len(set.all), 1)
	for _, p := range set.polled {
		every = min(every, p.every)
	}
	if a.sunspec {
		requests *= 2
		if len(a.configured) == 0 {
			every = max(every, a.retry.max)
		}
	}
	worst := time.Duration(requests*members) * a.timeout
	return max(3*every, every+2*worst)
}

// memberCount is how many adapters share the link.
func (l *link) memberCount() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return max(len(l.members), 1)
}
