package sparkplug

import (
	"fmt"
	"time"

	"github.com/fieldgate/fieldgate/internal/reading"

	"google.golang.org/protobuf/proto"

	"github.com/fieldgate/fieldgate/adapters"
	pb "github.com/fieldgate/fieldgate/bridge/sparkplug/sparkplugpb"
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
	var p pb.Payload
	if err := proto.Unmarshal(payload, &p); err != nil {
		return time.Time{}, nil, fmt.Errorf("sparkplug: %s payload: %w", t.Type, err)
	}
	if p.Timestamp != nil {
		sent = time.UnixMilli(int64(p.GetTimestamp())).UTC()
	}
	for _, m := range p.Metrics {
		cmds = append(cmds, c.command(t.Device, m))
	}
	return sent, cmds, nil
}

func (c *Catalog) command(device string, m *pb.Payload_Metric) Command {
	cmd := Command{Device: device, Metric: m.GetName()}
	var e Entry
	var ok bool
	if m.Alias != nil {
		e, ok = c.ByAlias(m.GetAlias())
		ok = ok && e.Device == device // aliases are node-wide: refuse another device's
	} else {
		e, ok = c.Lookup(device, m.GetName())
	}
	switch {
	case !ok && m.Alias != nil:
		cmd.Err = fmt.Errorf("%w: no metric with alias %d", adapters.ErrNoPoint, m.GetAlias())
		return cmd
	case !ok:
		cmd.Err = fmt.Errorf("%w: no metric %q", adapters.ErrNoPoint, m.GetName())
		return cmd
	}
	cmd.Metric = e.Name
	if m.Datatype != nil && DataType(m.GetDatatype()) != e.Type {
		cmd.Err = fmt.Errorf("%w: datatype %s, but %q is %s", adapters.ErrBadValue, DataType(m.GetDatatype()), e.Name, e.Type)
		return cmd
	}
	cmd.Value, cmd.Err = valueOf(m, e.Type)
	return cmd
}
