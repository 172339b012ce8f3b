package test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fieldgate/fieldgate/test/modbussim"
	"github.com/fieldgate/fieldgate/test/peers"
)

const prefix = "fieldgate/it"

// device starts a simulated Modbus TCP device with an empty register bank.
func device(t testing.TB) (*modbussim.Bank, *modbussim.Server) {
	t.Helper()
	bank := modbussim.NewBank()
	srv, err := modbussim.Start("127.0.0.1:0", bank)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Stop() })
	return bank, srv
}

// onePoint is the points of a device with one holding register, "v".
const onePoint = "  [[modbus.point]]\n  name = \"v\"\n  table = \"holding_register\"\n  address = 0\n"

// config renders a gateway config: a buffer in dir, the given upstream
// blocks and one Modbus device "plc" at addr with the given points.
func config(dir, upstreams, addr, interval, points string) string {
	return fmt.Sprintf(`[gateway]
id = "it"
topic_prefix = %q
log_level = "debug"

[buffer]
dir = %q
fsync = "interval"
fsync_interval = "100ms"

%s

[[modbus]]
name = "plc"
url = "tcp://%s"
unit_id = 1
interval = %q
timeout = "500ms"
%s
`, prefix, filepath.Join(dir, "buffer"), upstreams, addr, interval, points)
}

func upstream(name, url string) string {
	return fmt.Sprintf("[[upstream]]\nname = %q\nurl = %q\nqos = 1\nreconnect_max = \"1s\"\n", name, url)
}

func f32(f float32) []uint16 {
	b := math.Float32bits(f)
	return []uint16{uint16(b >> 16), uint16(b)}
}

func TestEveryValueDecodedEndToEnd(t *testing.T) {
	mq := peers.StartMosquitto(t, peers.MosquittoOptions{})
	bank, dev := device(t)
	bank.SetHolding(0, f32(21.5)...)                    // float32 ABCD
	bank.SetHolding(2, 0x0000, 0x41ac)                  // float32 CDAB = 21.5
	bank.SetHolding(4, 0xfff6)                          // int16 -10
	bank.SetHolding(5, 0x0001, 0x86a0)                  // uint32 100000
	bank.SetHolding(7, 0xffff, 0xffff, 0xffff, 0xfffe)  // int64 -2
	bank.SetHolding(11, 0x4009, 0x21fb, 0x5444, 0x2d18) // float64 pi
	bank.SetHolding(15, 0x4142, 0x4300)                 // "ABC"
	bank.SetHolding(17, 0x0008)                         // bit 3 set
	bank.SetInput(0, 234)                               // 23.4 after scale
	bank.SetCoil(3, true)
	bank.SetDiscrete(5, true)
	points := `
  [[modbus.point]]
  name = "f32"
  table = "holding_register"
  address = 0
  type = "float32"
  unit = "degC"
  [[modbus.point]]
  name = "f32_cdab"
  table = "holding_register"
  address = 2
  type = "float32"
  byte_order = "CDAB"
  [[modbus.point]]
  name = "i16"
  table = "holding_register"
  address = 4
  type = "int16"
  [[modbus.point]]
  name = "u32"
  table = "holding_register"
  address = 5
  type = "uint32"
  [[modbus.point]]
  name = "i64"
  table = "holding_register"
  address = 7
  type = "int64"
  [[modbus.point]]
  name = "f64"
  table = "holding_register"
  address = 11
  type = "float64"
  [[modbus.point]]
  name = "text"
  table = "holding_register"
  address = 15
  type = "string"
  length = 2
  [[modbus.point]]
  name = "flag"
  table = "holding_register"
  address = 17
  type = "bool"
  bit = 3
  [[modbus.point]]
  name = "scaled"
  table = "input_register"
  address = 0
  type = "int16"
  scale = 0.1
  [[modbus.point]]
  name = "coil"
  table = "coil"
  address = 3
  [[modbus.point]]
  name = "input"
  table = "discrete_input"
  address = 5
`
	obs := peers.Observe(t, mq.URL(), prefix+"/#")
	startGateway(t, writeConfig(t, config(t.TempDir(), upstream("local", mq.URL()), dev.Addr, "200ms", points)))

	want := map[string]string{
		"f32": `21.5`, "f32_cdab": `21.5`, "i16": `-10`, "u32": `100000`, "i64": `-2`,
		"f64": `3.141592653589793`, "text": `"ABC"`, "flag": `true`, "scaled": `23.4`,
		"coil": `true`, "input": `true`,
	}
	for point, value := range want {
		m := obs.AwaitMessage(t, wait, prefix+"/plc/"+point, nil)
		var raw struct {
			Value json.RawMessage `json:"value"`
		}
		if err := json.Unmarshal(m.Payload, &raw); err != nil || string(raw.Value) != value {
			t.Errorf("%s: payload %s, want value %s", point, m.Payload, value)
		}
	}
	r := readingOf(t, obs.AwaitMessage(t, wait, prefix+"/plc/f32", nil))
	if r.Unit != "degC" || r.Seq == 0 || !strings.HasSuffix(r.TS, "Z") {
		t.Errorf("f32 reading %+v: want unit, seq and a UTC ts", r)
	}
	obs.AwaitMessage(t, wait, prefix+"/plc/status", func(p []byte) bool { return string(p) == `{"state":"ok"}` })
	obs.AwaitMessage(t, wait, prefix+"/status", func(p []byte) bool { return string(p) == "online" })
}

func TestCommandsEndToEnd(t *testing.T) {
	mq := peers.StartMosquitto(t, peers.MosquittoOptions{})
	bank, dev := device(t)
	bank.SetHolding(10, 215)
	points := writablePoints + `
  [[modbus.point]]
  name = "temp"
  table = "holding_register"
  address = 20
  type = "int16"
`
	obs := peers.Observe(t, mq.URL(), prefix+"/#")
	// A retained command reaches a gateway only as it subscribes, flagged
	// retained: it must be refused, not replayed.
	obs.Publish(t, prefix+"/plc/setpoint/set", 1, true, "22")
	g := startGateway(t, writeConfig(t, config(t.TempDir(), upstream("local", mq.URL()), dev.Addr, "200ms", points)))
	m := obs.AwaitMessage(t, wait, prefix+"/plc/setpoint/set/result", nil)
	if !bytes.Contains(m.Payload, []byte(`"ok":false`)) || !bytes.Contains(m.Payload, []byte("retained")) {
		t.Errorf("retained command: result %s, want a refusal", m.Payload)
	}
	obs.Publish(t, prefix+"/plc/setpoint/set", 1, true, "") // clears the retained message

	// result sends a command and returns its result's fields.
	result := func(point, payload string) map[string]any {
		t.Helper()
		before := len(obs.Topic(prefix + "/plc/" + point + "/set/result"))
		obs.Publish(t, prefix+"/plc/"+point+"/set", 1, false, payload)
		obs.Await(t, wait, "result for "+payload, func([]peers.Message) bool {
			return len(obs.Topic(prefix+"/plc/"+point+"/set/result")) > before
		})
		m := obs.Topic(prefix + "/plc/" + point + "/set/result")[before]
		var out map[string]any
		if err := json.Unmarshal(m.Payload, &out); err != nil {
			t.Fatalf("result %q: %v", m.Payload, err)
		}
		if m.Retained {
			t.Errorf("result %s is retained", m.Payload)
		}
		return out
	}

	// Every refusal: a reason on the result topic, nothing on the wire.
	old := time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)
	refusals := []struct{ point, payload, reason string }{
		{"temp", "5", "not writable"},
		{"nosuch", "5", "no such point"},
		{"setpoint", `"warm"`, "not a number"},
		{"setpoint", "4000", "does not fit"},
		{"pump", "maybe", "not a boolean"},
		{"setpoint", fmt.Sprintf(`{"value":20,"id":"old","ts":%q}`, old), "expired"},
		{"setpoint", `{"id":"x"}`, "value"},
		{"setpoint", `{"value":`, "malformed"},
		{"setpoint", `{"value":"` + strings.Repeat("x", 5000) + `"}`, "4 KiB"},
	}
	for _, c := range refusals {
		r := result(c.point, c.payload)
		if r["ok"] != false || !strings.Contains(fmt.Sprint(r["error"]), c.reason) {
			t.Errorf("command %.40q to %s: result %v, want a refusal mentioning %q", c.payload, c.point, r, c.reason)
		}
	}
	if w := bank.Writes(); len(w) != 0 {
		t.Fatalf("refused commands reached the device: %+v", w)
	}

	// The happy paths: value written, result ok, read-back published.
	if r := result("setpoint", `{"value":23.5,"id":"c1"}`); r["ok"] != true || r["id"] != "c1" || r["value"] != 23.5 {
		t.Errorf("setpoint command: result %v", r)
	}
	if got := bank.Holding(10, 1)[0]; got != 235 {
		t.Errorf("setpoint register = %d, want 235", got)
	}
	obs.AwaitMessage(t, wait, prefix+"/plc/setpoint", func(p []byte) bool { return bytes.Contains(p, []byte(`"value":23.5`)) })
	if r := result("pump", "ON"); r["ok"] != true || r["value"] != true {
		t.Errorf("pump command: result %v", r)
	}
	if !bank.Coil(0) {
		t.Error("pump coil not set")
	}
	if code := g.stop(); code != 0 {
		t.Errorf("clean stop exited %d", code)
	}
	obs.AwaitMessage(t, wait, prefix+"/status", func(p []byte) bool { return string(p) == "offline" })
}

func TestBrokerRestartLosesNoReading(t *testing.T) {
	broker := peers.StartMochi(t)
	bank, dev := device(t)
	bank.SetHolding(0, 1)
	startGateway(t, writeConfig(t, config(t.TempDir(), upstream("local", broker.URL()), dev.Addr, "50ms", onePoint)))

	countReadings := func(n int) func([]peers.Message) bool {
		return func(ms []peers.Message) bool { return len(seqs(t, prefix, ms)) >= n }
	}
	broker.Received.Await(t, wait, "10 readings", countReadings(10))
	broker.Stop()
	reads := bank.Reads()
	if !bank.WaitReads(reads+20, wait) { // 20 polls buffered while the broker is away
		t.Fatal("gateway stopped polling while the broker was down")
	}
	broker.Start()
	polled := bank.Reads()
	broker.Received.Await(t, wait, "the backlog", countReadings(polled))
	checkNoGap(t, seqs(t, prefix, broker.Received.All()))
}

func TestKill9DuringOutageLosesNoReading(t *testing.T) {
	broker := peers.StartMochi(t)
	broker.Stop()
	bank, dev := device(t)
	cfg := writeConfig(t, config(t.TempDir(), upstream("local", broker.URL()), dev.Addr, "50ms", onePoint))

	g := startGateway(t, cfg)
	if !bank.WaitReads(30, wait) {
		t.Fatal("gateway did not poll")
	}
	g.kill9()
	before := bank.Reads()

	g = startGateway(t, cfg)
	if !bank.WaitReads(before+10, wait) {
		t.Fatal("restarted gateway did not poll")
	}
	broker.Start()
	broker.Received.Await(t, wait, "the backlog", func(ms []peers.Message) bool {
		return len(seqs(t, prefix, ms)) >= before+10
	})
	max := checkNoGap(t, seqs(t, prefix, broker.Received.All()))
	if max < uint64(before) {
		t.Fatalf("highest seq %d < %d readings polled before the kill", max, before)
	}
	if code := g.stop(); code != 0 {
		t.Errorf("clean stop exited %d", code)
	}
}

func TestDeadUpstreamDoesNotStallTheOther(t *testing.T) {
	up := peers.StartMochi(t)
	down := peers.StartMochi(t)
	down.Stop()
	bank, dev := device(t)
	ups := upstream("up", up.URL()) + "\n" + upstream("down", down.URL())
	startGateway(t, writeConfig(t, config(t.TempDir(), ups, dev.Addr, "50ms", onePoint)))

	up.Received.Await(t, wait, "30 readings on the live upstream", func(ms []peers.Message) bool {
		return len(seqs(t, prefix, ms)) >= 30
	})
	checkNoGap(t, seqs(t, prefix, up.Received.All()))

	down.Start()
	polled := bank.Reads()
	down.Received.Await(t, wait, "the backlog on the revived upstream", func(ms []peers.Message) bool {
		return len(seqs(t, prefix, ms)) >= polled
	})
	if got := seqs(t, prefix, down.Received.All()); got[0] != 1 {
		t.Errorf("revived upstream's first reading has seq %d, want 1", got[0])
	}
	checkNoGap(t, seqs(t, prefix, down.Received.All()))
}

func TestMutualTLS(t *testing.T) {
	dir := t.TempDir()
	ca := peers.NewCA(t, dir, "ca")
	srvCert, srvKey := ca.Issue(t, dir, "broker", true)
	cliCert, cliKey := ca.Issue(t, dir, "gateway", false)
	mq := peers.StartMosquitto(t, peers.MosquittoOptions{TLS: &peers.MosquittoTLS{
		CAFile: ca.CertFile, CertFile: srvCert, KeyFile: srvKey, RequireCertificate: true,
	}})
	_, dev := device(t)
	tlsUp := func(caFile string) string {
		return upstream("secure", mq.TLSURL()) + fmt.Sprintf(
			"  [upstream.tls]\n  ca_file = %q\n  cert_file = %q\n  key_file = %q\n", caFile, cliCert, cliKey)
	}

	obs := peers.Observe(t, mq.URL(), prefix+"/#")
	g := startGateway(t, writeConfig(t, config(t.TempDir(), tlsUp(ca.CertFile), dev.Addr, "100ms", onePoint)))
	obs.AwaitMessage(t, wait, prefix+"/plc/v", nil)
	g.stop()

	other := peers.NewCA(t, t.TempDir(), "other")
	wrong := startGateway(t, writeConfig(t, config(t.TempDir(), tlsUp(other.CertFile), dev.Addr, "100ms", onePoint)))
	wrong.waitLog("certificate signed by unknown authority", "upstream=secure")
}

func TestFaultyDeviceDoesNotStopTheOthers(t *testing.T) {
	broker := peers.StartMochi(t)
	_, dev := device(t)
	_, gone := device(t)
	gone.Stop()
	cfg := config(t.TempDir(), upstream("local", broker.URL()), dev.Addr, "100ms",
		"  [[modbus.point]]\n  name = \"v\"\n  table = \"holding_register\"\n  address = 0\n") + fmt.Sprintf(`
[[modbus]]
name = "dead"
url = "tcp://%s"
interval = "100ms"
timeout = "200ms"
  [[modbus.point]]
  name = "v"
  table = "holding_register"
  address = 0
`, gone.Addr)
	startGateway(t, writeConfig(t, cfg))
	broker.Received.AwaitMessage(t, wait, prefix+"/dead/status", func(p []byte) bool {
		return bytes.Contains(p, []byte(`"state":"error"`)) && bytes.Contains(p, []byte(`"since"`))
	})
	broker.Received.Await(t, wait, "readings of the healthy device", func(ms []peers.Message) bool {
		n := 0
		for _, m := range ms {
			if m.Topic == prefix+"/plc/v" {
				n++
			}
		}
		return n >= 10
	})
}

func TestReloadKeepsRunningConfigOnError(t *testing.T) {
	broker := peers.StartMochi(t)
	bank, dev := device(t)
	bank.SetHolding(1, 7)
	dir := t.TempDir()
	one := "  [[modbus.point]]\n  name = \"a\"\n  table = \"holding_register\"\n  address = 0\n"
	two := one + "  [[modbus.point]]\n  name = \"b\"\n  table = \"holding_register\"\n  address = 1\n"
	cfg := writeConfig(t, config(dir, upstream("local", broker.URL()), dev.Addr, "100ms", one))
	g := startGateway(t, cfg)
	broker.Received.AwaitMessage(t, wait, prefix+"/plc/a", nil)

	if err := os.WriteFile(cfg, []byte("[gateway]\nid = 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	g.proc.Signal(syscall.SIGHUP)
	g.waitLog("reload refused", "fieldgate.toml:2:")
	n := len(broker.Received.Topic(prefix + "/plc/a"))
	broker.Received.Await(t, wait, "readings after the refused reload", func([]peers.Message) bool {
		return len(broker.Received.Topic(prefix+"/plc/a")) > n+3
	})

	if err := os.WriteFile(cfg, []byte(config(dir, upstream("local", broker.URL()), dev.Addr, "100ms", two)), 0o600); err != nil {
		t.Fatal(err)
	}
	g.proc.Signal(syscall.SIGHUP)
	g.waitLog("configuration reloaded")
	broker.Received.AwaitMessage(t, wait, prefix+"/plc/b", func(p []byte) bool { return bytes.Contains(p, []byte(`"value":7`)) })
	if c := broker.Connects("it-local"); c != 1 {
		t.Errorf("the unchanged upstream connected %d times, want 1 (kept across reload)", c)
	}
	if code := g.stop(); code != 0 {
		t.Errorf("clean stop exited %d", code)
	}
}
