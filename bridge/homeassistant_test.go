package bridge

import (
	"encoding/json"
	"maps"
	"math"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fieldgate/fieldgate/internal/reading"

	"github.com/fieldgate/fieldgate/config"
	"github.com/fieldgate/fieldgate/test/peers"
)

func homeassistant(u *config.Upstream) { u.HomeAssistant = true }

// haAdapters have a point for every kind of entity: boiler/temp sensor,
// boiler/setpoint number, boiler/pump switch, boiler/alarm binary_sensor,
// scale/label text, scale/model (string) sensor, io/door binary_sensor,
// io/relay switch.
const haAdapters = `
[[modbus]]
name = "boiler"
url = "tcp://127.0.0.1:502"
point = [
  { name = "temp", table = "input_register", type = "float32", unit = "degC" },
  { name = "setpoint", table = "holding_register", address = 2, type = "uint16", unit = "degC", scale = 0.5, offset = 10.0, writable = true },
  { name = "pump", table = "coil", type = "bool", writable = true },
` + haAlarm + `
]
[[serial]]
name = "scale"
port = "/dev/ttyFG0"
point = [
  { name = "label", pattern = "L(.*)", type = "string", write_format = "L{value}\r\n" },
  { name = "model", pattern = "M(.*)", type = "string", unit = "ignored" },
]
[[gpio]]
name = "io"
chip = "gpiochip0"
point = [
  { name = "door", line = 1, direction = "input", unit = "ignored" },
  { name = "relay", line = 2, direction = "output" },
]
`

// haAlarm is boiler/alarm, which TestHAReload removes.
const haAlarm = `  { name = "alarm", table = "discrete_input", type = "bool" },`

// haTestConfig is haAdapters with the given upstreams.
func haTestConfig(t *testing.T, ups ...config.Upstream) *config.Config {
	t.Helper()
	return mustLoad(t, haAdapters, ups...)
}

// haWant is what one discovery config must say, beyond the fields every
// config has (checked by haCommon).
type haWant struct {
	topic  string
	fields map[string]any // as decoded from JSON
	absent []string
}

// haWantJSON are haTestConfig's configs for a json upstream with prefix
// fg/gw.
var haWantJSON = []haWant{
	{"homeassistant/sensor/gw/boiler_temp/config", map[string]any{
		"value_template": "{{ value_json.value }}", "unit_of_measurement": "degC", "state_class": "measurement",
	}, []string{"command_topic", "min", "payload_on"}},
	{"homeassistant/number/gw/boiler_setpoint/config", map[string]any{
		"value_template": "{{ value_json.value }}", "command_topic": "fg/gw/boiler/setpoint/set",
		"unit_of_measurement": "degC", "min": 10.0, "max": 65535*0.5 + 10, "step": 0.5, "mode": "box",
		"command_template": `{"value":{{ value | tojson }},"ts":"{{ now().isoformat() }}"}`,
	}, []string{"state_class", "payload_on"}},
	{"homeassistant/switch/gw/boiler_pump/config", map[string]any{
		"value_template": "{{ value_json.value | tojson }}", "command_topic": "fg/gw/boiler/pump/set",
		"payload_on": "true", "payload_off": "false", "state_on": "true", "state_off": "false",
		"command_template": `{"value":{{ value }},"ts":"{{ now().isoformat() }}"}`,
	}, []string{"unit_of_measurement", "min"}},
	{"homeassistant/binary_sensor/gw/boiler_alarm/config", map[string]any{
		"value_template": "{{ value_json.value | tojson }}", "payload_on": "true", "payload_off": "false",
	}, []string{"command_topic", "state_on", "unit_of_measurement"}},
	{"homeassistant/text/gw/scale_label/config", map[string]any{
		"value_template": "{{ value_json.value }}", "command_topic": "fg/gw/scale/label/set",
		"command_template": `{"value":{{ value | tojson }},"ts":"{{ now().isoformat() }}"}`,
	}, []string{"unit_of_measurement", "min"}},
	{"homeassistant/sensor/gw/scale_model/config", map[string]any{
		"value_template": "{{ value_json.value }}",
	}, []string{"command_topic", "unit_of_measurement", "state_class"}},
	{"homeassistant/binary_sensor/gw/io_door/config", map[string]any{
		"value_template": "{{ value_json.value | tojson }}", "payload_on": "true", "payload_off": "false",
	}, []string{"command_topic", "unit_of_measurement"}},
	{"homeassistant/switch/gw/io_relay/config", map[string]any{
		"command_topic": "fg/gw/io/relay/set", "state_on": "true", "command_template": `{"value":{{ value }},"ts":"{{ now().isoformat() }}"}`,
	}, nil},
}

// haCheck decodes a discovery config and checks it against w.
func haCheck(t *testing.T, w haWant, payload []byte) {
	t.Helper()
	var got map[string]any
	if err := json.Unmarshal(payload, &got); err != nil {
		t.Fatalf("%s: %v: %s", w.topic, err, payload)
	}
	parts := strings.Split(w.topic, "/") // homeassistant/<component>/gw/<adapter>_<point>/config
	adapter, point, _ := strings.Cut(parts[3], "_")
	want := map[string]any{
		"name":        adapter + " " + point,
		"unique_id":   "fieldgate_gw_" + adapter + "_" + point,
		"state_topic": "fg/gw/" + adapter + "/" + point,
		"qos":         1.0,
		"availability": []any{
			map[string]any{"topic": "fg/gw/status", "payload_available": "online", "payload_not_available": "offline"},
			map[string]any{"topic": "fg/gw/" + adapter + "/status", "value_template": "{{ value_json.state }}",
				"payload_available": "ok", "payload_not_available": "error"},
		},
		"availability_mode": "all",
		"device":            map[string]any{"identifiers": []any{"fieldgate_gw"}, "name": "gw", "manufacturer": "fieldgate", "model": "gateway"},
	}
	if dev, ok := got["device"].(map[string]any); ok {
		delete(dev, "sw_version") // present only in stamped builds
	}
	for k, v := range w.fields {
		want[k] = v
	}
	for k, v := range want {
		if !reflect.DeepEqual(got[k], v) {
			t.Errorf("%s: %q = %#v, want %#v", w.topic, k, got[k], v)
		}
	}
	for _, k := range w.absent {
		if _, ok := got[k]; ok {
			t.Errorf("%s: has %q = %v, want none", w.topic, k, got[k])
		}
	}
}

// TestHAConfigs checks the configs of every kind of point in the json and
// value formats, and that the batch format gets none.
func TestHAConfigs(t *testing.T) {
	configsOf := func(t *testing.T, cfg *config.Config) (map[string]string, []string) {
		t.Helper()
		specs, v, err := resolve(cfg)
		if err != nil {
			t.Fatal(err)
		}
		return haConfigs(specs[0], v)
	}
	t.Run("json", func(t *testing.T) {
		got, _ := configsOf(t, haTestConfig(t, upstreamCfg("cloud", "mqtt://x:1883", homeassistant)))
		if len(got) != len(haWantJSON) {
			t.Errorf("%d configs, want %d: %v", len(got), len(haWantJSON), got)
		}
		for _, w := range haWantJSON {
			haCheck(t, w, []byte(got[w.topic]))
		}
	})
	t.Run("value", func(t *testing.T) {
		got, _ := configsOf(t, haTestConfig(t, upstreamCfg("cloud", "mqtt://x:1883", homeassistant, format(formatValue))))
		if len(got) != len(haWantJSON) {
			t.Errorf("%d configs, want %d", len(got), len(haWantJSON))
		}
		for _, w := range haWantJSON {
			w.fields = maps.Clone(w.fields)
			delete(w.fields, "value_template")
			w.absent = append(slices.Clip(w.absent), "value_template")
			haCheck(t, w, []byte(got[w.topic]))
		}
	})
	t.Run("batch", func(t *testing.T) {
		if got, _ := configsOf(t, haTestConfig(t, upstreamCfg("cloud", "mqtt://x:1883", homeassistant, format(formatBatch)))); len(got) != 0 {
			t.Errorf("batch format: %v, want no configs", got)
		}
	})
	t.Run("off", func(t *testing.T) {
		if got, _ := configsOf(t, haTestConfig(t, upstreamCfg("cloud", "mqtt://x:1883"))); len(got) != 0 {
			t.Errorf("homeassistant off: %v, want no configs", got)
		}
	})
	t.Run("ids", func(t *testing.T) {
		cfg := mustLoad(t, `
[[gpio]]
name = "a_b"
chip = "gpiochip0"
point = [{ name = "c", line = 1, direction = "input" }]
[[gpio]]
name = "a"
chip = "gpiochip0"
point = [{ name = "b_c", line = 2, direction = "input" }]
`, upstreamCfg("cloud", "mqtt://x:1883", homeassistant))
		got, collisions := configsOf(t, cfg)
		const topic = "homeassistant/binary_sensor/gw/a_b_c/config"
		if _, ok := got[topic]; !ok || len(got) != 1 {
			t.Errorf("configs %v, want only %s", got, topic)
		}
		if !reflect.DeepEqual(collisions, []string{"a/b_c"}) {
			t.Errorf("collisions %v, want [a/b_c]", collisions)
		}
		if !strings.Contains(got[topic], `"unique_id":"fieldgate_gw_a_b_c"`) {
			t.Errorf("config %s: unique_id not from the gateway id", got[topic])
		}
	})
}

// TestHACommandTemplates renders each command template as Home Assistant
// does, with a value of the entity's kind and now() in its form (local
// time, microseconds, an offset), and checks the gateway takes the result
// as a fresh command of that value.
func TestHACommandTemplates(t *testing.T) {
	isoformat := time.Now().In(time.FixedZone("", 3600)).Format("2006-01-02T15:04:05.000000-07:00")
	render := func(tmpl, value string) string {
		return strings.NewReplacer("{{ value | tojson }}", value, "{{ value }}", value,
			"{{ now().isoformat() }}", isoformat).Replace(tmpl)
	}
	tests := []struct {
		tmpl, value string // value as the template renders it
		want        reading.Value
	}{
		{haCommand, "21.5", reading.Float(21.5)},
		{haCommand, `"{\"a\": 1}"`, reading.String(`{"a": 1}`)},
		{haSwitchCommand, "true", reading.Bool(true)},
		{haSwitchCommand, "false", reading.Bool(false)},
	}
	for _, tt := range tests {
		payload := render(tt.tmpl, tt.value)
		c, err := checkCommand([]byte(payload), false, time.Now(), time.Second)
		if err != nil || c.Value != tt.want || c.TS.IsZero() {
			t.Errorf("%s: %+v, %v; want a fresh command of %v", payload, c, err, tt.want)
		}
	}
}

func TestHANumberRange(t *testing.T) {
	tests := []struct {
		typ           string
		scale, offset float64
		lo, hi, step  float64
		ok            bool
	}{
		{"int16", 1, 0, math.MinInt16, math.MaxInt16, 1, true},
		{"uint16", 0.5, 10, 10, 65535*0.5 + 10, 0.5, true},
		{"int16", -0.0001, 0, -3.2767, 3.2768, haMinStep, true},
		{"uint32", 10, 0, 0, 10 * math.MaxUint32, 10, true},
		{"float32", 1, 0, -math.MaxFloat32, math.MaxFloat32, haMinStep, true},
		{"float64", 10, 0, -math.MaxFloat64, math.MaxFloat64, haMinStep, true}, // clamped: JSON has no infinity
		{"", 1, 0, 0, 0, 0, false},
	}
	for _, tt := range tests {
		p := reading.Point{Type: tt.typ, Scale: tt.scale, Offset: tt.offset}
		lo, hi, step, ok := haNumberRange(p)
		near := func(a, b float64) bool { return a == b || math.Abs(a-b) <= 1e-9*math.Abs(b) }
		if ok != tt.ok || ok && (!near(lo, tt.lo) || !near(hi, tt.hi) || !near(step, tt.step)) {
			t.Errorf("%s ×%g %+g: %g..%g step %g ok %t, want %g..%g step %g ok %t",
				tt.typ, tt.scale, tt.offset, lo, hi, step, ok, tt.lo, tt.hi, tt.step, tt.ok)
		}
	}
}

// awaitHA waits until the broker has received, from the gateway, n
// publishes on each topic (any number, with n = 0) and the last of them is
// the empty payload that removes the entity exactly when cleared is set.
func awaitHA(t *testing.T, m *peers.Mochi, topics []string, n int, cleared bool) []peers.Message {
	t.Helper()
	return m.Received.Await(t, wait, "discovery configs", func(ms []peers.Message) bool {
		for _, topic := range topics {
			var got []peers.Message
			for _, m := range ms {
				if m.Topic == topic && m.ClientID == "gw-cloud" {
					got = append(got, m)
				}
			}
			if len(got) == 0 || len(got) < n || n > 0 && len(got) > n ||
				cleared != (len(got[len(got)-1].Payload) == 0) {
				return false
			}
		}
		return true
	})
}

func haTopics(ws []haWant) []string {
	var ts []string
	for _, w := range ws {
		ts = append(ts, w.topic)
	}
	return ts
}

// TestHADiscovery checks against each broker that the configs are
// published retained at QoS 1, so that Home Assistant, subscribing later,
// gets them, and (mochi, which forgets retained messages when it restarts)
// that they are published again at a reconnect.
func TestHADiscovery(t *testing.T) {
	for _, br := range brokers {
		t.Run(br.name, func(t *testing.T) {
			url := br.start(t)
			g := startGateway(t, haTestConfig(t, upstreamCfg("cloud", url, homeassistant)), nil)
			g.logs.Await(t, wait, "upstream=cloud", "homeassistant: discovery configs", "published=8")
			checkRetained(t, url)
		})
	}
	t.Run("reconnect", func(t *testing.T) {
		m := peers.StartMochi(t)
		g := startGateway(t, haTestConfig(t, upstreamCfg("cloud", m.URL(), homeassistant)), nil)
		for _, ms := range awaitHA(t, m, haTopics(haWantJSON), 1, false) {
			if strings.HasPrefix(ms.Topic, "homeassistant/") && (ms.QoS != 1 || !ms.Retained) {
				t.Errorf("%s: want QoS 1, retained", ms)
			}
		}
		m.Stop()
		g.logs.Await(t, wait, "connection lost", "upstream=cloud", "in_flight=")
		m.Start()
		awaitHA(t, m, haTopics(haWantJSON), 2, false)
		checkRetained(t, m.URL())
	})
}

// checkRetained subscribes to the discovery topics and checks the retained
// configs it gets. A broker may also forward a config published just before
// the subscription as a live, unretained copy (mochi acknowledges a publish
// before it has delivered it), which says nothing of what it retains: only
// the retained copies count.
func checkRetained(t *testing.T, url string) {
	t.Helper()
	obs := peers.Observe(t, url, "homeassistant/#")
	retained := func(ms []peers.Message) map[string]peers.Message {
		got := map[string]peers.Message{}
		for _, m := range ms {
			if m.Retained {
				got[m.Topic] = m
			}
		}
		return got
	}
	ms := obs.Await(t, wait, "every retained config", func(ms []peers.Message) bool { return len(retained(ms)) >= len(haWantJSON) })
	got := retained(ms)
	for _, m := range got {
		if m.QoS != 1 {
			t.Errorf("%s: want QoS 1, retained", m)
		}
	}
	for _, w := range haWantJSON {
		m, ok := got[w.topic]
		if !ok {
			t.Errorf("no config on %s", w.topic)
			continue
		}
		haCheck(t, w, m.Payload)
	}
	if len(got) != len(haWantJSON) {
		t.Errorf("%d configs, want %d", len(got), len(haWantJSON))
	}
}

// TestHAReload removes a point, adds one and changes one: the upstream
// keeps its connection, clears the removed point's config, publishes the
// other two and leaves the rest alone. Turning discovery off then clears
// every config.
func TestHAReload(t *testing.T) {
	m := peers.StartMochi(t)
	v1 := haTestConfig(t, upstreamCfg("cloud", m.URL(), homeassistant))
	g := startGateway(t, v1, nil)
	all := haTopics(haWantJSON)
	awaitHA(t, m, all, 1, false)

	// alarm out, flow in, temp in K
	adapters2 := strings.NewReplacer(
		haAlarm, `  { name = "flow", table = "input_register", address = 4, type = "float32", unit = "l/min" },`,
		`name = "temp", table = "input_register", type = "float32", unit = "degC"`, `name = "temp", table = "input_register", type = "float32", unit = "K"`,
	).Replace(haAdapters)
	v2 := mustLoad(t, adapters2, upstreamCfg("cloud", m.URL(), homeassistant))
	if err := g.b.Reload(v2); err != nil {
		t.Fatal(err)
	}
	const (
		alarm = "homeassistant/binary_sensor/gw/boiler_alarm/config"
		flow  = "homeassistant/sensor/gw/boiler_flow/config"
		temp  = "homeassistant/sensor/gw/boiler_temp/config"
	)
	awaitHA(t, m, []string{alarm}, 2, true)
	awaitHA(t, m, []string{temp}, 2, false)
	ms := awaitHA(t, m, []string{flow}, 1, false)
	if n := m.Connects("gw-cloud"); n != 1 {
		t.Errorf("connected %d times, want 1: the reload must keep the connection", n)
	}
	if got := topicPayloads(ms, temp); !strings.Contains(got[1], `"unit_of_measurement":"K"`) {
		t.Errorf("temp config after the reload: %s, want unit K", got[1])
	}
	for _, topic := range all {
		if n := len(m.Received.Topic(topic)); topic != alarm && topic != temp && n != 1 {
			t.Errorf("%s published %d times, want once: it did not change", topic, n)
		}
	}

	v3 := mustLoad(t, adapters2, upstreamCfg("cloud", m.URL()))
	if err := g.b.Reload(v3); err != nil {
		t.Fatal(err)
	}
	var left []string // every config v2 published
	for _, topic := range append(all, flow) {
		if topic != alarm {
			left = append(left, topic)
		}
	}
	awaitHA(t, m, left, 0, true)
}

// TestHABatch checks that a batch upstream publishes no discovery config
// and says why once, not at every connect.
func TestHABatch(t *testing.T) {
	m := peers.StartMochi(t)
	g := startGateway(t, haTestConfig(t, upstreamCfg("cloud", m.URL(), homeassistant, format(formatBatch))), nil)
	g.logs.Await(t, wait, "level=WARN", "upstream=cloud", "homeassistant: no discovery configs for format batch")
	g.logs.Await(t, wait, "msg=connected", readingsLink, "upstream=cloud")
	m.Stop()
	g.logs.Await(t, wait, "connection lost", "upstream=cloud", "in_flight=")
	m.Start()
	_, last := g.emit(reading.Reading{Adapter: "boiler", Point: "temp", Value: reading.Float(1)})
	g.awaitCursor("cloud", last+1)
	if n := m.Connects("gw-cloud"); n != 2 {
		t.Fatalf("connected %d times, want 2", n)
	}
	for _, ms := range m.Received.All() {
		if strings.HasPrefix(ms.Topic, "homeassistant/") {
			t.Errorf("batch upstream published %s", ms)
		}
	}
	if n := strings.Count(g.logs.String(), "homeassistant:"); n != 1 {
		t.Errorf("%d log lines about homeassistant, want 1:\n%s", n, g.logs)
	}
}

// TestHADeviceClasses: a sensor's unit gives its device class, and energy
// counts up (total_increasing), so Home Assistant's energy dashboard takes
// it; other units get no class.
func TestHADeviceClasses(t *testing.T) {
	cfg := mustLoad(t, `
[[modbus]]
name = "m"
url = "tcp://127.0.0.1:502"
point = [
  { name = "power", table = "input_register", address = 0, unit = "W" },
  { name = "power_kw", table = "input_register", address = 1, unit = "kW" },
  { name = "energy", table = "input_register", address = 2, unit = "kWh" },
  { name = "energy_wh", table = "input_register", address = 3, unit = "Wh" },
  { name = "energy_mwh", table = "input_register", address = 4, unit = "MWh" },
  { name = "voltage", table = "input_register", address = 5, unit = "V" },
  { name = "current", table = "input_register", address = 6, unit = "A" },
  { name = "frequency", table = "input_register", address = 7, unit = "Hz" },
  { name = "temperature", table = "input_register", address = 8, unit = "°C" },
  { name = "apparent_power", table = "input_register", address = 9, unit = "VA" },
  { name = "reactive_power", table = "input_register", address = 10, unit = "var" },
  { name = "battery_soc", table = "input_register", address = 11, unit = "%" },
  { name = "battery_SoC", table = "input_register", address = 12, unit = "%" },
  { name = "thd", table = "input_register", address = 13, unit = "%" },
  { name = "pressure", table = "input_register", address = 14, unit = "bar" },
  { name = "setpoint", table = "holding_register", address = 15, unit = "W", writable = true },
]
`, upstreamCfg("cloud", "mqtt://x:1883", homeassistant))
	specs, v, err := resolve(cfg)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := haConfigs(specs[0], v)
	for point, want := range map[string][2]string{ // device class, state class
		"power": {"power", "measurement"}, "power_kw": {"power", "measurement"},
		"energy": {"energy", "total_increasing"}, "energy_wh": {"energy", "total_increasing"}, "energy_mwh": {"energy", "total_increasing"},
		"voltage": {"voltage", "measurement"}, "current": {"current", "measurement"}, "frequency": {"frequency", "measurement"},
		"temperature": {"temperature", "measurement"}, "apparent_power": {"apparent_power", "measurement"},
		"reactive_power": {"reactive_power", "measurement"}, "battery_soc": {"battery", "measurement"},
		"battery_SoC": {"battery", "measurement"}, "thd": {"", "measurement"}, "pressure": {"", "measurement"},
	} {
		var c map[string]any
		if err := json.Unmarshal([]byte(got["homeassistant/sensor/gw/m_"+point+"/config"]), &c); err != nil {
			t.Errorf("%s: %v", point, err)
			continue
		}
		if dc, _ := c["device_class"].(string); dc != want[0] || c["state_class"] != want[1] {
			t.Errorf("%s: device_class %v, state_class %v; want %q, %q", point, c["device_class"], c["state_class"], want[0], want[1])
		}
	}
	if c := got["homeassistant/number/gw/m_setpoint/config"]; strings.Contains(c, "device_class") {
		t.Errorf("number entity with a device class: %s", c)
	}
}

// TestHAAnnouncedPoints: points an adapter announces at run time join the
// configured ones: Home Assistant gets their configs at once, with device
// classes, their readings carry their units, a reload keeps them, and
// withdrawing them clears their configs. Announcements for adapters the
// config lacks, or of points it describes, change nothing.
func TestHAAnnouncedPoints(t *testing.T) {
	m := peers.StartMochi(t)
	cfg := haTestConfig(t, upstreamCfg("cloud", m.URL(), homeassistant))
	g := startGateway(t, cfg, nil)
	awaitHA(t, m, haTopics(haWantJSON), 1, false)

	const power = "homeassistant/sensor/gw/boiler_inverter_three_phase_W/config"
	g.b.SetPoints("boiler", []reading.Point{
		{Adapter: "boiler", Name: "inverter_three_phase_W", Type: "int16", Unit: "W", Scale: 1},
		{Adapter: "boiler", Name: "temp", Type: "uint16", Unit: "K", Scale: 1}, // the config's
	})
	g.b.SetPoints("nosuch", []reading.Point{{Adapter: "nosuch", Name: "x", Type: "int16", Scale: 1}})
	ms := awaitHA(t, m, []string{power}, 1, false)
	if c := topicPayloads(ms, power)[0]; !strings.Contains(c, `"device_class":"power"`) || !strings.Contains(c, `"unit_of_measurement":"W"`) {
		t.Errorf("config %s", c)
	}
	g.emit(reading.Reading{Adapter: "boiler", Point: "inverter_three_phase_W", Time: time.Now(), Value: reading.Int(-1000)})
	if r := m.Received.AwaitMessage(t, wait, "fg/gw/boiler/inverter_three_phase_W", func([]byte) bool { return true }); !strings.Contains(string(r.Payload), `"unit":"W"`) {
		t.Errorf("reading %s, want one with unit W", r.Payload)
	}

	if err := g.b.Reload(haTestConfig(t, upstreamCfg("cloud", m.URL(), homeassistant))); err != nil {
		t.Fatal(err)
	}
	if v := g.b.view.Load(); v.units[pointKey{"boiler", "inverter_three_phase_W"}] != "W" {
		t.Errorf("the reload dropped the announced point: %v", v.points)
	}
	g.b.SetPoints("boiler", nil)
	awaitHA(t, m, []string{power}, 2, true)
	for _, ms := range m.Received.All() {
		if strings.Contains(ms.Topic, "nosuch") {
			t.Errorf("published %s for an adapter the config lacks", ms)
		}
	}
	for _, topic := range haTopics(haWantJSON) {
		if n := len(m.Received.Topic(topic)); n != 1 {
			t.Errorf("%s published %d times, want once: the announcements did not change it", topic, n)
		}
	}
}
