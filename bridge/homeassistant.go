package bridge

import (
	"context"
	"encoding/json"
	"log/slog"
	"maps"
	"math"
	"regexp"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/fieldgate/fieldgate/internal/reading"
)

const (
	// haDiscoveryPrefix is Home Assistant's default discovery prefix.
	haDiscoveryPrefix = "homeassistant"
	// haTimeout bounds one round of discovery publishes.
	haTimeout = 10 * time.Second
	// haMinStep is the smallest step Home Assistant accepts for a number.
	haMinStep = 0.001
	// haCommandTS stamps a command with Home Assistant's clock, so that
	// command_max_age applies to it (now() is a Home Assistant template
	// function; isoformat gives RFC 3339 with microseconds and an offset).
	haCommandTS = `"ts":"{{ now().isoformat() }}"`
	// haCommand is the command template of numbers and texts: value as a
	// JSON number or string, so text that looks like a number or starts
	// with "{" still arrives as a string.
	haCommand = `{"value":{{ value | tojson }},` + haCommandTS + `}`
	// haSwitchCommand is the switch's: value is payload_on or payload_off,
	// "true" or "false", which render as JSON booleans. Home Assistant
	// before 2024.8 has no command_template for switches and sends the
	// bare payload, which carries no ts.
	haSwitchCommand = `{"value":{{ value }},` + haCommandTS + `}`
)

// haRawRange is the range of each numeric point type, before scale and
// offset.
var haRawRange = map[string][2]float64{
	"int16":   {math.MinInt16, math.MaxInt16},
	"uint16":  {0, math.MaxUint16},
	"int32":   {math.MinInt32, math.MaxInt32},
	"uint32":  {0, math.MaxUint32},
	"int64":   {math.MinInt64, math.MaxInt64},
	"uint64":  {0, math.MaxUint64},
	"float32": {-math.MaxFloat32, math.MaxFloat32},
	"float64": {-math.MaxFloat64, math.MaxFloat64},
}

// haConfig is a discovery config payload; keys are set only for the
// components that use them.
type haConfig struct {
	Name             string           `json:"name"`
	UniqueID         string           `json:"unique_id"`
	StateTopic       string           `json:"state_topic"`
	ValueTemplate    string           `json:"value_template,omitempty"`
	CommandTopic     string           `json:"command_topic,omitempty"`
	CommandTemplate  string           `json:"command_template,omitempty"`
	PayloadOn        string           `json:"payload_on,omitempty"`
	PayloadOff       string           `json:"payload_off,omitempty"`
	StateOn          string           `json:"state_on,omitempty"`
	StateOff         string           `json:"state_off,omitempty"`
	Unit             string           `json:"unit_of_measurement,omitempty"`
	DeviceClass      string           `json:"device_class,omitempty"`
	StateClass       string           `json:"state_class,omitempty"`
	Min              *float64         `json:"min,omitempty"`
	Max              *float64         `json:"max,omitempty"`
	Step             *float64         `json:"step,omitempty"`
	Mode             string           `json:"mode,omitempty"`
	QoS              int              `json:"qos"`
	Availability     []haAvailability `json:"availability"`
	AvailabilityMode string           `json:"availability_mode"`
	Device           haDevice         `json:"device"`
}

type haAvailability struct {
	Topic               string `json:"topic"`
	ValueTemplate       string `json:"value_template,omitempty"`
	PayloadAvailable    string `json:"payload_available"`
	PayloadNotAvailable string `json:"payload_not_available"`
}

type haDevice struct {
	Identifiers  []string `json:"identifiers"`
	Name         string   `json:"name"`
	Manufacturer string   `json:"manufacturer"`
	Model        string   `json:"model"`
	SWVersion    string   `json:"sw_version,omitempty"`
}

// swVersion is the module version stamped into the binary; "" (omitted)
// for development builds.
var swVersion = sync.OnceValue(func() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return ""
})

// haComponent is the Home Assistant entity kind that fits a point.
func haComponent(p reading.Point) string {
	switch {
	case p.Type == "bool" && p.Writable:
		return "switch"
	case p.Type == "bool":
		return "binary_sensor"
	case p.Type == "string" && p.Writable:
		return "text"
	case p.Writable:
		return "number"
	}
	return "sensor"
}

// haNumberRange is the range and step of a writable number: the type's
// range scaled, so Home Assistant does not hold commands to its default
// 1..100. ok is false for an unknown type.
func haNumberRange(p reading.Point) (lo, hi, step float64, ok bool) {
	r, ok := haRawRange[p.Type]
	if !ok {
		return 0, 0, 0, false
	}
	lo, hi = r[0]*p.Scale+p.Offset, r[1]*p.Scale+p.Offset
	if lo > hi {
		lo, hi = hi, lo
	}
	lo, hi = max(lo, -math.MaxFloat64), min(hi, math.MaxFloat64) // JSON has no infinity
	step = haMinStep
	if !strings.HasPrefix(p.Type, "float") {
		step = max(math.Abs(p.Scale), haMinStep)
	}
	return lo, hi, step, lo < hi
}

// haConfigs returns the discovery configs s should publish, by topic, and
// the points left out because their ids collide with an earlier point's
// ("a_b"/"c" and "a"/"b_c"). The gateway id and the names are used as
// they are: config.Load allows in them only what Home Assistant allows in a
// discovery topic's node and object ids.
func haConfigs(s *settings, v *view) (configs map[string]string, collisions []string) {
	configs = map[string]string{}
	if !s.discovery || !s.perPointTopics() {
		return configs, nil
	}
	dev := haDevice{
		Identifiers:  []string{"fieldgate_" + v.gatewayID},
		Name:         v.gatewayID,
		Manufacturer: "fieldgate",
		Model:        "gateway",
		SWVersion:    swVersion(),
	}
	seen := map[string]bool{}
	for _, p := range v.points {
		object := p.Adapter + "_" + p.Name
		if seen[object] {
			collisions = append(collisions, p.Adapter+"/"+p.Name)
			continue
		}
		seen[object] = true
		component := haComponent(p)
		c := haEntity(s, p, component)
		c.UniqueID = "fieldgate_" + v.gatewayID + "_" + p.Adapter + "_" + p.Name
		c.Device = dev
		b, _ := json.Marshal(c) // strings and finite numbers always marshal
		configs[haDiscoveryPrefix+"/"+component+"/"+v.gatewayID+"/"+object+"/config"] = string(b)
	}
	return configs, collisions
}

// haEntity describes one point as a Home Assistant entity of component.
func haEntity(s *settings, p reading.Point, component string) haConfig {
	readings := s.prefix + "/" + p.Adapter + "/" + p.Name
	c := haConfig{
		Name:       p.Adapter + " " + p.Name,
		StateTopic: readings,
		QoS:        1,
		Availability: []haAvailability{
			{Topic: s.statusTopic(), PayloadAvailable: "online", PayloadNotAvailable: "offline"},
			// An adapter in error makes its entities unavailable rather
			// than showing its last value as current.
			{Topic: s.adapterStatusTopic(p.Adapter), ValueTemplate: "{{ value_json.state }}",
				PayloadAvailable: "ok", PayloadNotAvailable: "error"},
		},
		AvailabilityMode: "all",
	}
	if s.format == formatJSON {
		c.ValueTemplate = "{{ value_json.value }}"
		if p.Type == "bool" {
			// A JSON boolean renders as Python's True/False; tojson gives
			// back the "true"/"false" the value format publishes.
			c.ValueTemplate = "{{ value_json.value | tojson }}"
		}
	}
	if p.Writable {
		c.CommandTopic = readings + "/set"
	}
	switch component {
	case "binary_sensor":
		c.PayloadOn, c.PayloadOff = "true", "false"
	case "switch":
		c.PayloadOn, c.PayloadOff = "true", "false"
		c.StateOn, c.StateOff = "true", "false"
		c.CommandTemplate = haSwitchCommand
	case "text":
		c.CommandTemplate = haCommand
	case "number":
		c.Unit, c.Mode = p.Unit, "box"
		c.CommandTemplate = haCommand
		if lo, hi, step, ok := haNumberRange(p); ok {
			c.Min, c.Max, c.Step = &lo, &hi, &step
		}
	case "sensor":
		if p.Type != "string" { // a unit or state class makes Home Assistant insist on numbers
			c.Unit, c.StateClass = p.Unit, "measurement"
			c.DeviceClass = haDeviceClass(p)
			if c.DeviceClass == "energy" {
				c.StateClass = "total_increasing" // what the energy dashboard takes
			}
		}
	}
	return c
}

// haDeviceClasses are the Home Assistant sensor device classes a unit
// implies (the units are those the device profiles and SunSpec points use).
var haDeviceClasses = map[string]string{
	"W": "power", "kW": "power",
	"Wh": "energy", "kWh": "energy", "MWh": "energy",
	"V": "voltage", "A": "current", "Hz": "frequency", "°C": "temperature",
	"VA": "apparent_power", "var": "reactive_power",
}

// haSoC matches the names of state-of-charge points (battery_soc,
// battery_SoC), the one % that is clearly a battery's.
var haSoC = regexp.MustCompile(`(?i)(^|_)soc($|_)`)

// haDeviceClass is the device class of a numeric sensor, "" where its unit
// says nothing certain: Home Assistant then shows the value with its unit
// and no class.
func haDeviceClass(p reading.Point) string {
	if p.Unit == "%" && haSoC.MatchString(p.Name) {
		return "battery"
	}
	return haDeviceClasses[p.Unit]
}

// discovery keeps one upstream's broker holding the Home Assistant
// discovery configs of the current points: all of them again after each
// (re)connect, the changed ones after a reload, and an empty retained
// message on the topic of each config no longer wanted, so that Home
// Assistant removes the entity. It runs in its own goroutine, so a slow
// broker never holds up readings, and its publishes bypass the buffer: a
// config is state, of which only the latest matters.
type discovery struct {
	s      *settings
	logger *slog.Logger
	ctx    context.Context // the upstream's: ends at its stop
	conn   *conn
	views  *atomic.Pointer[view] // the live config: the points

	wake  chan struct{} // capacity 1: a connect or a reload
	conns atomic.Uint64 // connections made so far

	// held maps each config topic the broker may hold to the payload it
	// holds, "" when unknown. It belongs to the upstream's name, not to this
	// incarnation: the upstream's next one, started when a reload changes its
	// settings, takes it over and clears what it no longer wants. They
	// never overlap (Reload waits for the old one to stop before starting
	// the new one), so one goroutine uses it at a time.
	held     map[string]string
	heldConn uint64 // the connection held was last brought up to date on
}

// newDiscovery returns u's discovery, or nil when u has nothing to publish
// and nothing to clear.
func newDiscovery(u *upstream, held map[string]string) *discovery {
	if u.s.discovery && !u.s.perPointTopics() {
		u.logger.Warn("homeassistant: no discovery configs for format " + u.s.format + ", which has no topic per point")
	}
	if !u.s.discovery && len(held) == 0 {
		return nil
	}
	return &discovery{s: u.s, logger: u.logger, ctx: u.ctx, conn: u.conn, views: &u.b.view,
		wake: make(chan struct{}, 1), held: held}
}

// connected is called at each new connection.
func (d *discovery) connected() {
	if d == nil {
		return
	}
	d.conns.Add(1)
	d.resync()
}

// resync asks for the configs to be brought up to date, without blocking.
func (d *discovery) resync() {
	if d == nil {
		return
	}
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

func (d *discovery) run() {
	for {
		select {
		case <-d.ctx.Done():
			return
		case <-d.wake:
			d.sync()
		}
	}
}

// sync publishes what the broker lacks and clears what it should no longer
// hold, then waits, for a bounded time, for the broker to confirm.
func (d *discovery) sync() {
	conn := d.conns.Load()
	if conn == 0 || !d.conn.isOpen() {
		return // the next connect brings everything up to date
	}
	if conn != d.heldConn && d.s.discovery {
		d.learnRetained(d.views.Load().gatewayID)
	}
	want, collisions := haConfigs(d.s, d.views.Load())
	if len(collisions) > 0 {
		d.logger.Warn("homeassistant: points left out: their ids collide with another point's", "points", collisions)
	}
	type pub struct {
		topic, payload string
		tok            mqtt.Token
	}
	var pubs []pub
	for _, topic := range slices.Sorted(maps.Keys(want)) {
		if conn != d.heldConn || d.held[topic] != want[topic] {
			pubs = append(pubs, pub{topic: topic, payload: want[topic]})
		}
	}
	for _, topic := range slices.Sorted(maps.Keys(d.held)) {
		if _, ok := want[topic]; !ok {
			pubs = append(pubs, pub{topic: topic}) // empty and retained: Home Assistant removes the entity
		}
	}
	for _, p := range pubs {
		d.held[p.topic] = "" // unknown until confirmed
	}
	d.heldConn = conn
	if len(pubs) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(d.ctx, haTimeout)
	defer cancel()
	for i := range pubs {
		if ctx.Err() != nil {
			pubs = pubs[:i]
			break
		}
		pubs[i].tok = d.conn.publish(pubs[i].topic, 1, true, pubs[i].payload)
	}
	published, cleared, failed := 0, 0, len(pubs)
	for _, p := range pubs {
		select {
		case <-p.tok.Done():
		case <-ctx.Done():
			continue // unconfirmed: held stays unknown, so it is published again
		}
		if p.tok.Error() != nil {
			continue
		}
		failed--
		if p.payload == "" {
			delete(d.held, p.topic)
			cleared++
		} else {
			d.held[p.topic] = p.payload
			published++
		}
	}
	switch {
	case d.ctx.Err() != nil: // stopping
	case failed > 0:
		d.logger.Warn("homeassistant: discovery configs not confirmed; sent again at the next connect or reload",
			"published", published, "cleared", cleared, "unconfirmed", failed)
	case cleared > 0:
		d.logger.Info("homeassistant: discovery configs", "published", published, "cleared", cleared)
	default:
		d.logger.Debug("homeassistant: discovery configs", "published", published)
	}
}
