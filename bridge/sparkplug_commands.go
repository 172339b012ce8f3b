package bridge

import (
	"errors"
	"log/slog"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/fieldgate/fieldgate/bridge/sparkplug"
)

// onCommand takes an NCMD or DCMD. Each DCMD metric goes the way of a
// SPEC §3 command; a refusal comes back through the command worker's
// results (takeResults).
func (s *sparkplugSession) onCommand(t sparkplug.Topic, m mqtt.Message) {
	now, maxAge := time.Now(), s.views.Load().maxAge
	cat := s.cat.Load()
	var (
		sent time.Time
		cmds []sparkplug.Command
		err  error
	)
	switch {
	case cat == nil:
		err = errors.New("no births yet: no metric is declared")
	case len(m.Payload()) > maxCommandSize:
		err = tooLarge(len(m.Payload()))
	default:
		sent, cmds, err = cat.DecodeCommand(t, m.Payload())
	}
	if err != nil {
		s.quiet.Log(slog.LevelWarn, "sparkplug: refused: "+refusal(err), "sparkplug: command refused", "topic", m.Topic(), "err", err)
		if s.cmds != nil {
			s.cmds.refused.Add(1)
		}
		return
	}
	for _, c := range cmds {
		if t.Type == sparkplug.NCMD {
			s.nodeCommand(c, m.Retained())
			continue
		}
		err := c.Err
		switch {
		case err != nil:
		case m.Retained():
			err = ErrRetained
		default:
			if err = checkAge(sent, now, maxAge); err == nil {
				err = s.cmds.enqueue(c.Device, c.Metric, Command{Value: c.Value, TS: sent}, now, maxAge)
			}
		}
		if err != nil {
			s.quiet.Log(slog.LevelWarn, "refused: "+refusal(err), "command refused", "adapter", c.Device, "point", c.Metric, "err", err)
			s.cmds.answer(result{adapter: c.Device, point: c.Metric, err: err})
		}
	}
}

func (s *sparkplugSession) nodeCommand(c sparkplug.Command, retained bool) {
	switch {
	case c.IsRebirth() && retained: // it would be replayed at every connection
		s.quiet.Log(slog.LevelWarn, "sparkplug: retained rebirth", "sparkplug: retained rebirth request ignored")
	case c.IsRebirth():
		s.quiet.Log(slog.LevelInfo, "sparkplug: rebirth", "sparkplug: rebirth requested")
		s.rebirth.Store(true)
		s.signal()
	default:
		s.quiet.Log(slog.LevelInfo, "sparkplug: NCMD ignored", "sparkplug: NCMD metric ignored", "metric", c.Metric, "value", c.Value, "err", c.Err)
	}
}

// takeResults counts the refused and failed commands and has their
// points' values published again; a write's read-back comes through the
// buffer.
func (s *sparkplugSession) takeResults() {
	for {
		select {
		case <-s.ctx.Done():
			return
		case r := <-s.cmds.results:
			if r.err == nil {
				continue
			}
			s.cmds.refused.Add(1)
			s.mu.Lock()
			if s.inbox.reprint == nil {
				s.inbox.reprint = map[pointKey]bool{}
			}
			s.inbox.reprint[pointKey{r.adapter, r.point}] = true
			s.mu.Unlock()
			s.signal()
		}
	}
}

// reprint publishes the latest value of each point whose command was
// refused, so hosts show what the device holds.
func (s *sparkplugSession) reprint(points map[pointKey]bool) {
	cat := s.cat.Load()
	for k := range points {
		m, ok := cat.Lookup(k.adapter, k.point)
		if !ok || !s.born[k.adapter] {
			continue
		}
		now := time.Now()
		sm := sparkplug.Sample{Name: k.point, Time: now} // null: no reading yet
		if r, ok := s.latest.of(k); ok && m.Check(r.Value) == nil {
			sm.Value, sm.Time = r.Value, r.Time
		}
		b, err := cat.DData(s.seq.Next(), now, k.adapter, []sparkplug.Sample{sm})
		if err != nil {
			s.logger.Error("sparkplug: DDATA not built", "adapter", k.adapter, "point", k.point, "err", err)
			continue
		}
		s.conn.publish(s.node.DeviceTopic(sparkplug.DDATA, k.adapter), s.s.qos, false, b)
	}
}
