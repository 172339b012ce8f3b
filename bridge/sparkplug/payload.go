package sparkplug

import (
	"fmt"
	"time"

	"github.com/fieldgate/fieldgate/internal/reading"

	"google.golang.org/protobuf/proto"

	pb "github.com/fieldgate/fieldgate/bridge/sparkplug/sparkplugpb"
)

// PropertyUnit is the metric property key that carries a metric's
// engineering unit: the key Eclipse Tahu's examples and the Sparkplug TCK
// use, and that Ignition's MQTT Engine maps onto a tag's EngUnit.
const PropertyUnit = "engUnit"

// Millis is t as a Sparkplug timestamp: milliseconds since the Unix epoch,
// UTC.
func Millis(t time.Time) uint64 { return uint64(t.UnixMilli()) }

// Seq numbers the messages of a session: 0 for the NBIRTH, then one more
// for every message after it (DBIRTH, NDATA, DDATA, DDEATH), 255 followed
// by 0. NDEATH carries none. The zero value is ready.
type Seq struct{ next uint8 }

// Birth returns the seq of an NBIRTH, 0, and restarts the count after it.
func (s *Seq) Birth() uint64 {
	s.next = 1
	return 0
}

// Next returns the seq of the next message after the NBIRTH.
func (s *Seq) Next() uint64 {
	v := s.next
	s.next++ // wraps from 255 to 0
	return uint64(v)
}

// Sample is one metric value for a payload: a reading of a point, or the
// value of one of the gateway's own metrics.
type Sample struct {
	Name  string // the metric (point) name
	Value reading.Value
	Time  time.Time // when it was read
	// Historical marks a value delivered late from the buffer: hosts store
	// it in history but do not let it overwrite a tag's current value.
	Historical bool
}

// NDeath returns the NDEATH payload for a session with bdSeq: the will
// registered with the MQTT CONNECT, and what the edge node publishes
// before disconnecting on purpose. It carries the bdSeq metric alone and
// no seq.
func NDeath(bdSeq uint8, now time.Time) []byte {
	m := &pb.Payload_Metric{Name: ptr(MetricBdSeq), Datatype: ptr(uint32(pb.DataType_Int64)), Timestamp: ptr(Millis(now))}
	_ = setValue(m, pb.DataType_Int64, reading.Int(int64(bdSeq))) // an Int64 always takes it
	return marshal(&pb.Payload{Timestamp: ptr(Millis(now)), Metrics: []*pb.Payload_Metric{m}})
}

// DDeath returns a DDEATH payload: no metrics, just the time and the seq.
func DDeath(seq uint64, now time.Time) []byte {
	return marshal(&pb.Payload{Timestamp: ptr(Millis(now)), Seq: ptr(seq)})
}

// NBirth returns the NBIRTH payload: bdSeq (the value of this session's
// will), Node Control/Rebirth = false, and every other edge node metric of
// the catalog with its value from current (null where it has none), each
// with its name, alias, datatype, unit and timestamp. seq should come
// from Seq.Birth.
func (c *Catalog) NBirth(seq uint64, now time.Time, bdSeq uint8, current map[string]Sample) ([]byte, error) {
	cur := make(map[string]Sample, len(current)+2)
	for k, v := range current {
		cur[k] = v
	}
	cur[MetricBdSeq] = Sample{Value: reading.Int(int64(bdSeq)), Time: now}
	cur[MetricRebirth] = Sample{Value: reading.Bool(false), Time: now}
	return c.birth(seq, now, c.node, cur)
}

// DBirth returns the DBIRTH payload of a device: every metric of the
// device in the catalog, with its value from current (null where it has
// none yet), name, alias, datatype, unit and timestamp.
func (c *Catalog) DBirth(seq uint64, now time.Time, device string, current map[string]Sample) ([]byte, error) {
	es, ok := c.devices[device]
	if !ok {
		return nil, fmt.Errorf("sparkplug: no device %q in the catalog", device)
	}
	return c.birth(seq, now, es, current)
}

func (c *Catalog) birth(seq uint64, now time.Time, es []Entry, current map[string]Sample) ([]byte, error) {
	p := &pb.Payload{Timestamp: ptr(Millis(now)), Seq: ptr(seq), Metrics: make([]*pb.Payload_Metric, 0, len(es))}
	for _, e := range es {
		s, ok := current[e.Name]
		if !ok {
			s = Sample{Time: now} // null: no value yet
		}
		m, err := metric(e, s)
		if err != nil {
			return nil, err
		}
		m.Name, m.Datatype = ptr(e.Name), ptr(uint32(e.Type))
		if e.Unit != "" {
			m.Properties = &pb.Payload_PropertySet{
				Keys:   []string{PropertyUnit},
				Values: []*pb.Payload_PropertyValue{{Type: ptr(uint32(pb.DataType_String)), Value: &pb.Payload_PropertyValue_StringValue{StringValue: e.Unit}}},
			}
		}
		p.Metrics = append(p.Metrics, m)
	}
	return marshal(p), nil
}

// NData returns an NDATA payload with the given edge node metrics.
func (c *Catalog) NData(seq uint64, now time.Time, samples []Sample) ([]byte, error) {
	return c.data(seq, now, "", samples)
}

// DData returns a DDATA payload with the given metrics of a device, in the
// order given (the specification asks for chronological order).
func (c *Catalog) DData(seq uint64, now time.Time, device string, samples []Sample) ([]byte, error) {
	if _, ok := c.devices[device]; !ok {
		return nil, fmt.Errorf("sparkplug: no device %q in the catalog", device)
	}
	return c.data(seq, now, device, samples)
}

// data builds a DATA payload: metrics by alias alone, without name or
// datatype, as the specification asks once aliases are declared.
func (c *Catalog) data(seq uint64, now time.Time, device string, samples []Sample) ([]byte, error) {
	p := &pb.Payload{Timestamp: ptr(Millis(now)), Seq: ptr(seq), Metrics: make([]*pb.Payload_Metric, 0, len(samples))}
	for _, s := range samples {
		e, ok := c.Lookup(device, s.Name)
		if !ok {
			return nil, fmt.Errorf("sparkplug: device %q has no metric %q in its birth", device, s.Name)
		}
		m, err := metric(e, s)
		if err != nil {
			return nil, err
		}
		if e.Alias == 0 {
			m.Name = ptr(e.Name)
		}
		if s.Historical {
			m.IsHistorical = ptr(true)
		}
		p.Metrics = append(p.Metrics, m)
	}
	return marshal(p), nil
}

// Check says why v cannot be a value of e, as a birth or DATA message
// would carry it (nil when it can): a payload with such a value cannot be
// built.
func (e Entry) Check(v reading.Value) error {
	if err := setValue(new(pb.Payload_Metric), e.Type, v); err != nil {
		return fmt.Errorf("sparkplug: device %q metric %q: %w", e.Device, e.Name, err)
	}
	return nil
}

// metric encodes a sample of e with its alias and timestamp.
func metric(e Entry, s Sample) (*pb.Payload_Metric, error) {
	m := &pb.Payload_Metric{Timestamp: ptr(Millis(s.Time))}
	if e.Alias != 0 {
		m.Alias = ptr(e.Alias)
	}
	if err := setValue(m, e.Type, s.Value); err != nil {
		return nil, fmt.Errorf("sparkplug: device %q metric %q: %w", e.Device, e.Name, err)
	}
	return m, nil
}

// marshal encodes a payload built here: every field is set from valid Go
// values, so it cannot fail.
func marshal(p *pb.Payload) []byte {
	b, err := proto.Marshal(p)
	if err != nil {
		panic("sparkplug: marshal: " + err.Error())
	}
	return b
}
