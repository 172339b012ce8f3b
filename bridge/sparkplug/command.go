package sparkplug

import (
	"fmt"
	"time"

	"github.com/fieldgate/fieldgate/internal/reading"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/fieldgate/fieldgate/adapters"
)

// Command is one metric of an NCMD or a DCMD, resolved against the
// catalog.
type Command struct {
	Device string // "" for an NCMD
	Metric string // the metric's name, also when the command gave its alias
	Value  reading.Value
	// Err says why this metric cannot be carried out (the others of the
	// message still can): it wraps adapters.ErrNoPoint for a name or alias
	// the births did not declare for this device, adapters.ErrBadValue for
	// a value that does not fit the metric's datatype. Value is then the
	// invalid zero Value.
	Err error
}

// IsRebirth reports whether c is the rebirth request: NCMD Node
// Control/Rebirth = true.
func (c Command) IsRebirth() bool {
	return c.Err == nil && c.Device == "" && c.Metric == MetricRebirth && c.Value == reading.Bool(true)
}

// DecodeCommand decodes the payload of an NCMD or DCMD that arrived on
// topic t. Each metric is found by alias, else by name, among the metrics
// the births declared for the command's device (the edge node's own for an
// NCMD), and its value is read as that metric's datatype: the datatype a
// command metric states, if any, must be the declared one, and the value
// must be in the field the datatype table assigns to it. A command for
// a device the catalog does not have, or a payload that is not Sparkplug
// B, is an error; sent is the payload's timestamp (zero if it has none).
func (c *Catalog) DecodeCommand(t Topic, payload []byte) (sent time.Time, cmds []Command, err error) {
	if t.Type != NCMD && t.Type != DCMD {
		return time.Time{}, nil, fmt.Errorf("sparkplug: %s is not a command", t.Type)
	}
	if _, ok := c.devices[t.Device]; t.Type == DCMD && !ok {
		return time.Time{}, nil, fmt.Errorf("sparkplug: DCMD: %w: no device %q", adapters.ErrNoPoint, t.Device)
	}
	sent, ms, err := readCommand(payload)
	if err != nil {
		return time.Time{}, nil, fmt.Errorf("sparkplug: %s payload: %w", t.Type, err)
	}
	for _, m := range ms {
		cmds = append(cmds, c.command(t.Device, m))
	}
	return sent, cmds, nil
}

// readCommand reads the timestamp (zero if none) and the metrics of a
// command's payload.
func readCommand(payload []byte) (sent time.Time, ms []commandMetric, err error) {
	err = readFields(payload, payloadMessage, protowire.DefaultRecursionLimit, func(f wireField) error {
		switch {
		case f.num == payloadTimestamp && f.typ == protowire.VarintType:
			sent = time.UnixMilli(int64(f.u)).UTC()
		case f.num == payloadMetrics && f.typ == protowire.BytesType:
			m, err := readCommandMetric(f.b, protowire.DefaultRecursionLimit-1)
			if err != nil {
				return err
			}
			ms = append(ms, m)
		}
		return nil
	})
	if err != nil {
		return time.Time{}, nil, err
	}
	return sent, ms, nil
}

// commandMetric is what fieldgate reads of a command's metric.
type commandMetric struct {
	name        string
	alias       uint64
	hasAlias    bool
	datatype    uint32
	hasDatatype bool
	isNull      bool
	value       wireField // the field of the value oneof; num 0 for none
}

// readCommandMetric reads a metric at the given depth of its payload. Of
// each field, as with the generated code, the last one counts, and of the
// value oneof the last field set; a field with another wire type than its
// declared one is not set.
func readCommandMetric(b []byte, depth int) (commandMetric, error) {
	var m commandMetric
	err := readFields(b, metricMessage, depth, func(f wireField) error {
		switch {
		case f.num == metricName && f.typ == protowire.BytesType:
			m.name = string(f.b)
		case f.num == metricAlias && f.typ == protowire.VarintType:
			m.alias, m.hasAlias = f.u, true
		case f.num == metricDatatype && f.typ == protowire.VarintType:
			m.datatype, m.hasDatatype = uint32(f.u), true
		case f.num == metricIsNull && f.typ == protowire.VarintType:
			m.isNull = f.u != 0
		case f.num >= metricIntValue && f.num <= metricExtensionValue && f.typ == valueWireType(f.num):
			m.value = f
		}
		return nil
	})
	return m, err
}

// valueWireType is the wire type of a field of a metric's value oneof.
func valueWireType(num protowire.Number) protowire.Type {
	switch num {
	case metricIntValue, metricLongValue, metricBooleanValue:
		return protowire.VarintType
	case metricFloatValue:
		return protowire.Fixed32Type
	case metricDoubleValue:
		return protowire.Fixed64Type
	}
	return protowire.BytesType // strings, bytes and messages
}

func (c *Catalog) command(device string, m commandMetric) Command {
	cmd := Command{Device: device, Metric: m.name}
	var e Entry
	var ok bool
	if m.hasAlias {
		e, ok = c.ByAlias(m.alias)
		ok = ok && e.Device == device // aliases are node-wide: refuse another device's
	} else {
		e, ok = c.Lookup(device, m.name)
	}
	switch {
	case !ok && m.hasAlias:
		cmd.Err = fmt.Errorf("%w: no metric with alias %d", adapters.ErrNoPoint, m.alias)
		return cmd
	case !ok:
		cmd.Err = fmt.Errorf("%w: no metric %q", adapters.ErrNoPoint, m.name)
		return cmd
	}
	cmd.Metric = e.Name
	if m.hasDatatype && DataType(m.datatype) != e.Type {
		cmd.Err = fmt.Errorf("%w: datatype %s, but %q is %s", adapters.ErrBadValue, DataType(m.datatype), e.Name, e.Type)
		return cmd
	}
	cmd.Value, cmd.Err = valueOf(m, e.Type)
	return cmd
}
