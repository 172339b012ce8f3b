package bridge

import (
	"maps"
	"math"
	"slices"
	"time"

	"github.com/fieldgate/fieldgate/bridge/sparkplug"
)

// deviceMark is an adapter's change between ok and error, placed in the
// stream of readings: it holds for the readings from seq on.
type deviceMark struct {
	seq     uint64
	adapter string
	dead    bool
}

// watchStates records each change of the adapters' statuses as it
// happens, connected or not.
func (s *sparkplugSession) watchStates() {
	defer s.board.unwatch(s.boardChanged)
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-s.boardChanged:
			s.recordStates()
		}
	}
}

// faults returns each adapter's fault, "" when it is ok.
func (b *statusBoard) faults() map[string]string {
	b.mu.Lock()
	defer b.mu.Unlock()
	m := make(map[string]string, len(b.adapters))
	for a, st := range b.adapters {
		m[a] = st.errText
	}
	return m
}

// recordStates notes the adapters whose status changed: their state
// metric goes out in NDATA, and a change between ok and error is marked
// at the buffer's next seq.
func (s *sparkplugSession) recordStates() {
	faults := s.board.faults()
	s.mu.Lock()
	defer s.mu.Unlock()
	var next uint64
	for a, f := range faults {
		old, seen := s.present[a]
		if seen && old == f {
			continue
		}
		s.present[a] = f
		if s.inbox.changed == nil {
			s.inbox.changed = map[string]bool{}
		}
		s.inbox.changed[a] = true
		if (f != "") != (old != "") { // also an adapter first seen in error
			if next == 0 {
				next = s.buf.Stats().Next
			}
			if len(s.inbox.marks) == maxMarks {
				s.inbox.marks = s.inbox.marks[1:] // the newest states are the ones that matter
			}
			s.inbox.marks = append(s.inbox.marks, deviceMark{next, a, f != ""})
			s.logger.Debug("sparkplug: adapter state marked", "adapter", a, "dead", f != "", "seq", next)
		}
	}
	if len(s.inbox.changed) > 0 {
		s.signal()
	}
}

// deviceBirth publishes a device's DBIRTH with its points' latest values.
func (s *sparkplugSession) deviceBirth(cat *sparkplug.Catalog, device string, now time.Time) {
	current := map[string]sparkplug.Sample{}
	for p, r := range s.latest.adapter(device) {
		if m, ok := cat.Lookup(device, p); ok && m.Check(r.Value) == nil {
			current[p] = sparkplug.Sample{Name: p, Value: r.Value, Time: r.Time}
		}
	}
	b, err := cat.DBirth(s.seq.Next(), now, device, current)
	if err != nil { // device comes from the catalog, values were checked
		s.logger.Error("sparkplug: DBIRTH not built", "adapter", device, "err", err)
		return
	}
	s.conn.publish(s.node.DeviceTopic(sparkplug.DBIRTH, device), 0, false, b)
	s.born[device] = true
}

func (s *sparkplugSession) deviceDeath(device string, now time.Time) {
	s.conn.publish(s.node.DeviceTopic(sparkplug.DDEATH, device), 0, false, sparkplug.DDeath(s.seq.Next(), now))
	s.born[device] = false
}

// addMarks takes new marks. Beyond maxMarks the oldest count as passed:
// the stream then shows fewer of the devices' changes, never a wrong
// current state.
func (s *sparkplugSession) addMarks(ms []deviceMark) {
	s.marks = append(s.marks, ms...)
	over := len(s.marks) - maxMarks
	if over <= 0 {
		return
	}
	for _, m := range s.marks[:over] {
		s.baseDead[m.adapter] = m.dead
	}
	s.marks = slices.Delete(s.marks, 0, over)
	s.applied = max(s.applied-over, 0)
}

// deadAt returns the devices dead at seq pos of the stream.
func (s *sparkplugSession) deadAt(pos uint64) map[string]bool {
	dead := maps.Clone(s.baseDead)
	for _, m := range s.marks {
		if m.seq > pos {
			break
		}
		dead[m.adapter] = m.dead
	}
	return dead
}

// applyMarks publishes the DDEATHs and DBIRTHs marked up to seq upTo.
func (s *sparkplugSession) applyMarks(upTo uint64) {
	for ; s.applied < len(s.marks) && s.marks[s.applied].seq <= upTo; s.applied++ {
		m := s.marks[s.applied]
		born, known := s.born[m.adapter]
		switch {
		case !known:
		case m.dead && born:
			s.deviceDeath(m.adapter, time.Now())
		case !m.dead && !born:
			s.deviceBirth(s.cat.Load(), m.adapter, time.Now())
		}
	}
}

// nextMark is the seq of the first mark ahead of the stream.
func (s *sparkplugSession) nextMark() uint64 {
	if s.applied < len(s.marks) {
		return s.marks[s.applied].seq
	}
	return math.MaxUint64
}

// pruneMarks forgets the marks the cursor has passed: the stream never
// goes back before the cursor.
func (s *sparkplugSession) pruneMarks() {
	if s.applied == 0 {
		return
	}
	cursor := s.buf.Cursor(s.s.name)
	k := 0
	for ; k < s.applied && s.marks[k].seq <= cursor; k++ {
		s.baseDead[s.marks[k].adapter] = s.marks[k].dead
	}
	s.marks = s.marks[k:]
	s.applied -= k
}
