package sparkplug

import (
	"errors"
	"fmt"

	pb "github.com/fieldgate/fieldgate/bridge/sparkplug/sparkplugpb"
)

// Names of the metrics every NBIRTH carries, fixed by the specification,
// and of fieldgate's own edge node metrics.
const (
	MetricBdSeq   = "bdSeq"                // Int64: the session's birth/death sequence number
	MetricRebirth = "Node Control/Rebirth" // Boolean, false; an NCMD setting it true asks for new births
	MetricVersion = "Properties/Version"   // String: fieldgate's version
	MetricBacklog = "Buffer/Backlog"       // UInt64: readings buffered and not yet delivered to this upstream
)

// AdapterStateMetric names the edge node metric (String) that carries an
// adapter's state: "ok", or "error: " and the fault.
func AdapterStateMetric(adapter string) string { return "Adapters/" + adapter + "/State" }

// GatewayMetrics lists fieldgate's own edge node metrics for a gateway
// with the given adapters: its version, the buffer backlog and each
// adapter's state.
func GatewayMetrics(adapterNames []string) []MetricDef {
	ms := []MetricDef{{Name: MetricVersion, Type: pb.DataType_String}, {Name: MetricBacklog, Type: pb.DataType_UInt64}}
	for _, a := range adapterNames {
		ms = append(ms, MetricDef{Name: AdapterStateMetric(a), Type: pb.DataType_String})
	}
	return ms
}

// MetricDef describes a metric as a birth declares it.
type MetricDef struct {
	Name string
	Type DataType
	Unit string // engineering unit, sent as the property "engUnit"; "" for none
}

// Device is one device of the edge node (a fieldgate adapter) with its
// metrics (the adapter's points), in the order the births list them.
type Device struct {
	ID      string
	Metrics []MetricDef
}

// Entry is one metric of a Catalog.
type Entry struct {
	Device string // "" for an edge node metric
	MetricDef
	Alias uint64 // 0: none (bdSeq and Node Control/Rebirth only)
}

type metricKey struct{ device, name string }

// Catalog is every metric an edge node declares in one session's births,
// with its alias. Aliases are unique across the whole edge node, as the
// specification requires, and deterministic: 1, 2, … in the order of the
// node metrics, then of the devices and their metrics, so the same
// configuration gives the same aliases in every session. bdSeq and Node
// Control/Rebirth get none (the specification forbids one for the latter,
// and neither ever travels in a DATA message). A Catalog is immutable:
// when the set of devices or metrics changes, a new one goes with a new
// birth sequence.
type Catalog struct {
	node    []Entry // node metrics in birth order, reserved ones first
	devices map[string][]Entry
	order   []string // device ids in birth order
	byKey   map[metricKey]Entry
	byAlias map[uint64]Entry
}

// NewCatalog builds the catalog of an edge node with the given metrics of
// its own (beside bdSeq and Node Control/Rebirth, which it adds) and
// devices. It refuses invalid or duplicate device ids, empty or duplicate
// metric names within the node or a device, and datatypes fieldgate does
// not encode.
func NewCatalog(nodeMetrics []MetricDef, devices []Device) (*Catalog, error) {
	c := &Catalog{devices: map[string][]Entry{}, byKey: map[metricKey]Entry{}, byAlias: map[uint64]Entry{}}
	var errs []error
	alias := uint64(0)
	add := func(device string, d MetricDef, withAlias bool) (Entry, bool) {
		k := metricKey{device, d.Name}
		switch _, dup := c.byKey[k]; {
		case d.Name == "":
			errs = append(errs, fmt.Errorf("device %q: a metric without a name", device))
			return Entry{}, false
		case dup:
			errs = append(errs, fmt.Errorf("device %q: metric %q declared twice", device, d.Name))
			return Entry{}, false
		case !supported(d.Type):
			errs = append(errs, fmt.Errorf("device %q metric %q: datatype %s is not supported", device, d.Name, d.Type))
			return Entry{}, false
		}
		e := Entry{Device: device, MetricDef: d}
		if withAlias {
			alias++
			e.Alias = alias
			c.byAlias[alias] = e
		}
		c.byKey[k] = e
		return e, true
	}
	reserved := []MetricDef{{Name: MetricBdSeq, Type: pb.DataType_Int64}, {Name: MetricRebirth, Type: pb.DataType_Boolean}}
	for i, d := range append(reserved, nodeMetrics...) {
		if e, ok := add("", d, i >= len(reserved)); ok {
			c.node = append(c.node, e)
		}
	}
	for _, dev := range devices {
		if err := CheckID(dev.ID); err != nil {
			errs = append(errs, err)
			continue
		}
		if _, dup := c.devices[dev.ID]; dup {
			errs = append(errs, fmt.Errorf("device %q declared twice", dev.ID))
			continue
		}
		c.order = append(c.order, dev.ID)
		c.devices[dev.ID] = []Entry{}
		for _, d := range dev.Metrics {
			if e, ok := add(dev.ID, d, true); ok {
				c.devices[dev.ID] = append(c.devices[dev.ID], e)
			}
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return c, nil
}

// Devices lists the device ids in birth order.
func (c *Catalog) Devices() []string { return append([]string(nil), c.order...) }

// Lookup finds a metric by device ("" for the edge node) and name.
func (c *Catalog) Lookup(device, name string) (Entry, bool) {
	e, ok := c.byKey[metricKey{device, name}]
	return e, ok
}

// ByAlias finds a metric by its alias.
func (c *Catalog) ByAlias(alias uint64) (Entry, bool) {
	e, ok := c.byAlias[alias]
	return e, ok
}
