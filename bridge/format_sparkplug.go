package bridge

import (
	"time"

	"github.com/fieldgate/fieldgate/bridge/sparkplug"
	"github.com/fieldgate/fieldgate/buffer"
)

// sparkplugEncoder is format "sparkplug" (SPEC §5): a run of one adapter's
// readings, in seq order, as the metrics of one DDATA on
// spBv1.0/<group>/DDATA/<edge node>/<adapter>, each by alias with the time
// it was read, flagged is_historical when it was taken before the
// session's births; at most max metrics a message. It is the data half of
// a sparkplugSession, which owns the catalog and the seq counter, and whose
// device marks end a run: a DDEATH or DBIRTH due at a seq goes out before
// the readings from that seq on.
type sparkplugEncoder struct {
	s   *sparkplugSession
	max int
}

// encode never fails: a reading a DDATA cannot carry (its point is not in
// the births, or its value does not fit the point's datatype) is left out,
// and a run left with nothing is a message without a topic, which the
// publisher confirms without sending.
func (e *sparkplugEncoder) encode(es []buffer.Entry, _ *view) (message, int) {
	s := e.s
	cat := s.cat.Load()
	dev := es[0].Adapter
	stop := s.nextMark()
	samples := make([]sparkplug.Sample, 0, min(len(es), e.max))
	n := 0
	// The run ends at another adapter's reading, at the next mark (admit
	// has applied those up to es[0]) and at max metrics.
	for ; n < len(es) && es[n].Adapter == dev && (n == 0 || es[n].Seq < stop) && len(samples) < e.max; n++ {
		r := es[n]
		m, ok := cat.Lookup(dev, r.Point)
		if !ok {
			s.drop(r, "the point is not in the births")
			continue
		}
		if err := m.Check(r.Value); err != nil {
			s.drop(r, err.Error())
			continue
		}
		samples = append(samples, sparkplug.Sample{Name: r.Point, Value: r.Value, Time: r.Time, Historical: r.Seq < s.histBelow})
	}
	m := message{first: es[0].Seq, last: es[n-1].Seq}
	if len(samples) == 0 {
		return m, n
	}
	b, err := cat.DData(s.seq.Next(), time.Now(), dev, samples)
	if err != nil { // every sample was checked against the catalog
		s.logger.Error("sparkplug: DDATA not built; its readings are dropped", "adapter", dev, "err", err)
		return m, n
	}
	m.topic, m.payload = s.node.DeviceTopic(sparkplug.DDATA, dev), b
	return m, n
}

func (e *sparkplugEncoder) entries(n int) int { return runEntries(n, e.max) }
