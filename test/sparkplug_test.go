package test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/simonvetter/modbus"

	"github.com/fieldgate/fieldgate/test/peers"
)

// The gateway binary as a Sparkplug B edge node, polling a Modbus server
// from github.com/simonvetter/modbus, checked through a real Mosquitto by
// the host of test/sparkplughost, built on Eclipse Tahu's JavaScript
// library, which checks every message against the Sparkplug 3.0 rules
// (seq, births before data, bdSeq, aliases, value fields, retained flags).
// Each test names the Sparkplug TCK edge assertions (tck-id-…) it covers
// beyond those.

const spGroup = "plant-1"

// sparkplugUpstream renders a Sparkplug upstream of group plant-1 with
// extra keys; the edge node is the gateway, "it".
func sparkplugUpstream(name, url, extra string) string {
	return fmt.Sprintf("[[upstream]]\nname = %q\nurl = %q\nformat = \"sparkplug\"\nreconnect_max = \"1s\"\n%s  [upstream.sparkplug]\n  group_id = %q\n",
		name, url, extra, spGroup)
}

func sparkplugHost(t *testing.T, url, hostID string) *peers.SparkplugHost {
	t.Helper()
	return peers.StartSparkplugHost(t, peers.SparkplugHostOptions{BrokerURL: url, Group: spGroup, EdgeNode: "it", HostID: hostID})
}

func spMsg(typ, device string) func(peers.SparkplugEvent) bool {
	return func(e peers.SparkplugEvent) bool { return e.Event == "message" && e.Type == typ && e.Device == device }
}

// spData matches a DDATA of device carrying metric with the value text.
func spData(device, metric, value string) func(peers.SparkplugEvent) bool {
	return func(e peers.SparkplugEvent) bool {
		m, ok := e.Metric(metric)
		return spMsg("DDATA", device)(e) && ok && m.Text() == value
	}
}

func noSparkplugProblems(t *testing.T, hosts ...*peers.SparkplugHost) {
	t.Helper()
	for _, h := range hosts {
		if ps := h.Problems(); len(ps) > 0 {
			t.Errorf("the Sparkplug host found problems:\n%s", strings.Join(ps, "\n"))
		}
	}
}

// A device "plc" (temp, a setpoint and a pump, on change only, so that any
// DDATA of theirs after the first is news) and "aux" (a level on input
// registers, which a test fails), on one simulated Modbus server.
const spPoints = `
  [[modbus.point]]
  name = "temp"
  table = "holding_register"
  address = 0
  type = "float32"
  unit = "degC"
  on_change = true
  [[modbus.point]]
  name = "setpoint"
  table = "holding_register"
  address = 10
  type = "int16"
  scale = 0.1
  unit = "degC"
  writable = true
  on_change = true
  [[modbus.point]]
  name = "pump"
  table = "coil"
  address = 0
  writable = true
  on_change = true
`

const spAux = `
[[modbus]]
name = "aux"
url = "tcp://%s"
unit_id = 2
interval = "200ms"
timeout = "500ms"
  [[modbus.point]]
  name = "level"
  table = "input_register"
  address = 0
  unit = "%%"
`

// TestSparkplugEdgeNodeEndToEnd: births describe every point; DCMD
// writes, by name and by alias, reach the Modbus server through the
// command path and come back as DDATA; refused ones reach nothing, are
// counted, and republish the point's value; a rebirth request stops data
// and is answered with the births of the same bdSeq; a device fault gives
// a DDEATH and its end a DBIRTH; SIGTERM publishes the NDEATH before
// disconnecting, and the next start takes the next bdSeq.
//
// TCK: message-flow-device-dcmd-subscribe (a DCMD is served),
// message-flow-edge-node-ncmd-subscribe (a rebirth request is served),
// operational-behavior-data-commands-rebirth-action-1, -action-2, -action-3;
// operational-behavior-device-ddeath, topics-ddeath-mqtt;
// operational-behavior-edge-node-intentional-disconnect-ndeath,
// payloads-ndeath-will-message-publisher, payloads-ndeath-bdseq;
// message-flow-edge-node-birth-publish-nbirth-payload-bdseq (bdSeq kept
// and counted across a restart); payloads-alias-data-cmd-requirement.
func TestSparkplugEdgeNodeEndToEnd(t *testing.T) {
	mq := peers.StartMosquitto(t, peers.MosquittoOptions{})
	bank, dev := device(t)
	bank.SetHolding(0, f32(21.5)...)
	bank.SetHolding(10, 215)
	bank.SetInput(0, 42)
	host := sparkplugHost(t, mq.URL(), "")
	metrics := peers.FreeAddr(t)
	cfg := strings.Replace(config(t.TempDir(), sparkplugUpstream("scada", mq.URL(), ""), dev.Addr, "200ms", spPoints),
		"[buffer]", fmt.Sprintf("metrics_listen = %q\n\n[buffer]", metrics), 1) + fmt.Sprintf(spAux, dev.Addr)
	path := writeConfig(t, cfg)
	g := startGateway(t, path)

	nb := host.Await(t, wait, "NBIRTH", spMsg("NBIRTH", ""))
	if v, _ := nb.Metric("Properties/Version"); *nb.BdSeq != 0 || v.Text() != "dev" {
		t.Errorf("NBIRTH %s: want bdSeq 0 and the version", nb)
	}
	db := host.Await(t, wait, "DBIRTH plc", spMsg("DBIRTH", "plc"))
	for name, w := range map[string]struct{ datatype, unit string }{
		"temp": {"Float", `"degC"`}, "setpoint": {"Double", `"degC"`}, "pump": {"Boolean", ""},
	} {
		if m, ok := db.Metric(name); !ok || m.Datatype != w.datatype || string(m.Properties["engUnit"].Value) != w.unit || m.Alias == nil {
			t.Errorf("DBIRTH plc %s = %+v, want %s with engUnit %s and an alias", name, m, w.datatype, w.unit)
		}
	}
	host.Await(t, wait, "DBIRTH aux", spMsg("DBIRTH", "aux"))
	host.Await(t, wait, "temp", spData("plc", "temp", "21.5"))
	host.Await(t, wait, "setpoint", spData("plc", "setpoint", "21.5"))
	host.Await(t, wait, "level", spData("aux", "level", "42"))

	// Writes by name and by alias: the server has them, DDATA says so.
	from := host.Len()
	host.DCMD(t, "plc", peers.SparkplugWrite{Name: "setpoint", Value: 23.5})
	host.AwaitSince(t, from, wait, "setpoint 23.5", spData("plc", "setpoint", "23.5"))
	if got := bank.Holding(10, 1)[0]; got != 235 {
		t.Errorf("setpoint register %d, want 235", got)
	}
	pump, _ := db.Metric("pump")
	host.DCMD(t, "plc", peers.SparkplugWrite{Alias: pump.Alias, Value: true})
	host.AwaitSince(t, from, wait, "pump true", spData("plc", "pump", "true"))
	if !bank.Coil(0) {
		t.Error("pump coil not set")
	}

	// Refusals: nothing written, each point's value published again.
	writes := len(bank.Writes())
	for _, c := range []struct {
		metric, value string
		write         peers.SparkplugWrite
	}{
		{"temp", "21.5", peers.SparkplugWrite{Name: "temp", Value: 5.0}},            // not writable
		{"setpoint", "23.5", peers.SparkplugWrite{Name: "setpoint", Value: 4000.0}}, // does not fit an int16 at scale 0.1
	} {
		from := host.Len()
		host.DCMD(t, "plc", c.write)
		if m, _ := host.AwaitSince(t, from, wait, c.metric+" republished", spData("plc", c.metric, c.value)).Metric(c.metric); m.IsHistorical {
			t.Errorf("republished %s flagged historical", c.metric)
		}
	}
	if w := bank.Writes(); len(w) != writes {
		t.Errorf("refused writes reached the server: %+v", w[writes:])
	}
	g.waitLog("command failed", "point=temp", "not writable")
	if _, m := get(t, "http://"+metrics+"/metrics"); !strings.Contains(m, `fieldgate_commands_refused_total{upstream="scada"} 2`) {
		t.Errorf("metrics:\n%s", m)
	}

	// An NCMD of another metric is logged and ignored.
	host.NCMD(t, peers.SparkplugWrite{Name: "Properties/Version", Value: "x"})
	g.waitLog("NCMD metric ignored", "metric=Properties/Version")

	// A rebirth request: the births again, same bdSeq, and no data made
	// after the request reached the node.
	from = host.Len()
	host.Rebirth(t)
	requested := uint64(time.Now().UnixMilli()) // the node cannot have had it sooner than the host sent it
	if rb := host.AwaitSince(t, from, wait, "NBIRTH answering the rebirth", spMsg("NBIRTH", "")); !rb.Rebirth || *rb.BdSeq != 0 {
		t.Errorf("NBIRTH %s: want the session's bdSeq", rb)
	}
	for _, d := range []string{"plc", "aux"} {
		host.AwaitSince(t, from, wait, "DBIRTH "+d, spMsg("DBIRTH", d))
	}
	for _, e := range host.Events()[from:] {
		if e.AfterRebirthRequest && *e.Timestamp > requested {
			t.Errorf("data made after the rebirth request: %s", e)
		}
	}

	// A device fault and its end.
	from = host.Len()
	bank.SetTableFault("input_register", modbus.ErrIllegalDataAddress)
	host.AwaitSince(t, from, wait, "DDEATH aux", spMsg("DDEATH", "aux"))
	host.AwaitSince(t, from, wait, "the aux's state", func(e peers.SparkplugEvent) bool {
		m, ok := e.Metric("Adapters/aux/State")
		return spMsg("NDATA", "")(e) && ok && strings.Contains(m.Text(), "illegal data address")
	})
	bank.SetTableFault("input_register", nil)
	host.AwaitSince(t, from, wait, "DBIRTH aux", spMsg("DBIRTH", "aux"))
	host.AwaitSince(t, from, wait, "level again", spData("aux", "level", "42"))

	// SIGTERM: the NDEATH, then the DISCONNECT (no will follows); the next
	// start has the next bdSeq.
	from = host.Len()
	if code := g.stop(); code != 0 {
		t.Errorf("clean stop exited %d", code)
	}
	if d := host.AwaitSince(t, from, wait, "NDEATH", spMsg("NDEATH", "")); !*d.BdSeqMatchesBirth || d.QoS != 1 || d.Retain {
		t.Errorf("NDEATH %s: want the session's bdSeq, QoS 1, not retained", d)
	}
	startGateway(t, path)
	if nb := host.AwaitSince(t, from, wait, "NBIRTH after the restart", spMsg("NBIRTH", "")); *nb.BdSeq != 1 {
		t.Errorf("NBIRTH after the restart: bdSeq %d, want 1", *nb.BdSeq)
	}
	if n := countEvents(host.Events()[from:], spMsg("NDEATH", "")); n != 1 {
		t.Errorf("%d NDEATH at the stop, want 1", n)
	}
	noSparkplugProblems(t, host)
}

func countEvents(es []peers.SparkplugEvent, match func(peers.SparkplugEvent) bool) int {
	n := 0
	for _, e := range es {
		if match(e) {
			n++
		}
	}
	return n
}

// TestSparkplugKill9DeliversTheWill: kill -9 leaves the broker to publish
// the will: an NDEATH with the bdSeq of the NBIRTH, at QoS 1, not retained
// (a host that subscribes later gets nothing); the restarted gateway
// takes the next bdSeq.
//
// TCK: message-flow-edge-node-birth-publish-will-message, -will-message-payload,
// -will-message-qos, -will-message-topic, -will-message-will-retained;
// payloads-ndeath-will-message, -will-message-qos, -will-message-retain;
// payloads-ndeath-bdseq, payloads-nbirth-bdseq-repeat,
// topics-nbirth-bdseq-matching, message-flow-edge-node-birth-publish-nbirth-payload-bdseq;
// payloads-nbirth-retain, payloads-dbirth-retain (the late host).
func TestSparkplugKill9DeliversTheWill(t *testing.T) {
	mq := peers.StartMosquitto(t, peers.MosquittoOptions{})
	_, dev := device(t)
	host := sparkplugHost(t, mq.URL(), "")
	path := writeConfig(t, config(t.TempDir(), sparkplugUpstream("scada", mq.URL(), ""), dev.Addr, "200ms", spPoints))
	g := startGateway(t, path)
	nb := host.Await(t, wait, "NBIRTH", spMsg("NBIRTH", ""))
	g.kill9()
	d := host.Await(t, wait, "NDEATH from the will", spMsg("NDEATH", ""))
	if !*d.BdSeqMatchesBirth || *d.BdSeq != *nb.BdSeq || d.QoS != 1 || d.Retain || d.Seq != nil {
		t.Errorf("NDEATH %s: want bdSeq %d, QoS 1, not retained, no seq", d, *nb.BdSeq)
	}

	late := sparkplugHost(t, mq.URL(), "")
	startGateway(t, path)
	for _, h := range []*peers.SparkplugHost{host, late} {
		if nb2 := h.Await(t, wait, "NBIRTH after the restart", func(e peers.SparkplugEvent) bool {
			return spMsg("NBIRTH", "")(e) && *e.BdSeq != *nb.BdSeq
		}); *nb2.BdSeq != *nb.BdSeq+1 {
			t.Errorf("bdSeq %d after %d", *nb2.BdSeq, *nb.BdSeq)
		}
	}
	if ms := late.Messages(); !spMsg("NBIRTH", "")(ms[0]) {
		t.Errorf("the late host's first message is %s: something was retained", ms[0])
	}
	noSparkplugProblems(t, host, late)
}

// TestSparkplugHistoryAfterBrokerOutage: a Sparkplug upstream next to a
// json one, each with its own broker and cursor. Both brokers go away while
// the gateway polls on; once they are back, the Sparkplug host gets, after
// the new births, every reading the json upstream delivers, with its
// time, in order and without a gap: those taken before the births flagged
// historical, the live ones after them.
//
// TCK: message-flow-edge-node-birth-publish-phid-wait (births wait for the
// host after the outage), payloads-ddata-order (history after the
// births); seq continuity across the outage (host).
func TestSparkplugHistoryAfterBrokerOutage(t *testing.T) {
	mq := peers.StartMosquitto(t, peers.MosquittoOptions{})
	cloud := peers.StartMochi(t)
	bank, dev := device(t)
	bank.SetHolding(0, 7)
	host := sparkplugHost(t, mq.URL(), "scada")
	ups := upstream("cloud", cloud.URL()) + "\n" + sparkplugUpstream("scada", mq.URL(), "") + "  primary_host_id = \"scada\"\n"
	startGateway(t, writeConfig(t, config(t.TempDir(), ups, dev.Addr, "50ms", onePoint)))
	host.Await(t, wait, "live data", func(peers.SparkplugEvent) bool { return len(spMetrics(host, "v")) >= 5 })

	mq.Stop()
	cloud.Stop()
	if polled := bank.Reads(); !bank.WaitReads(polled+20, wait) {
		t.Fatal("no polling while the brokers are away")
	}
	from := host.Len()
	mq.Start()
	cloud.Start()
	host.AwaitSince(t, from, wait, "the births after the outage", spMsg("NBIRTH", ""))

	// The json upstream's readings up to now, by seq: the Sparkplug host
	// must get each one's time, in order.
	polled := bank.Reads()
	jsonTS := func() []uint64 {
		var ts []uint64
		for _, m := range cloud.Received.All() {
			if m.Topic == prefix+"/plc/v" {
				r := readingOf(t, m)
				at, err := time.Parse(time.RFC3339Nano, r.TS)
				if err != nil {
					t.Fatal(err)
				}
				if r.Seq > uint64(len(ts)) {
					ts = append(ts, uint64(at.UnixMilli()))
				}
			}
		}
		return ts
	}
	cloud.Received.Await(t, wait, "the json backlog", func([]peers.Message) bool { return len(jsonTS()) >= polled })
	checkNoGap(t, seqs(t, prefix, cloud.Received.All()))
	want := jsonTS()
	host.Await(t, wait, "every json reading's time", func(peers.SparkplugEvent) bool {
		return len(firstTimes(spMetrics(host, "v"))) >= len(want)
	})
	if got := firstTimes(spMetrics(host, "v"))[:len(want)]; !slices.Equal(got, want) {
		t.Errorf("the Sparkplug host's readings (first copies, by time)\n%v\nwant the json upstream's\n%v", got, want)
	}

	// After the new births: history first, then live, never mixed.
	host.AwaitSince(t, from, wait, "live data after the history", func(e peers.SparkplugEvent) bool {
		return spMsg("DDATA", "plc")(e) && !e.Metrics[0].IsHistorical
	})
	var after []peers.SparkplugMetric
	for _, e := range host.Events()[from:] {
		if spMsg("DDATA", "plc")(e) {
			after = append(after, e.Metrics...)
		}
	}
	live := slices.IndexFunc(after, func(m peers.SparkplugMetric) bool { return !m.IsHistorical })
	switch {
	case live < 20:
		t.Errorf("%d historical readings after the outage, want the 20 polled meanwhile at least", live)
	case slices.ContainsFunc(after[live:], func(m peers.SparkplugMetric) bool { return m.IsHistorical }):
		t.Errorf("historical readings after live ones")
	}
	noSparkplugProblems(t, host)
}

// spMetrics returns every DDATA metric of plc's point the host has seen,
// in order.
func spMetrics(h *peers.SparkplugHost, point string) []peers.SparkplugMetric {
	var ms []peers.SparkplugMetric
	for _, e := range h.Messages() {
		if !spMsg("DDATA", "plc")(e) {
			continue
		}
		for _, m := range e.Metrics { // a DDATA of the backlog carries many
			if m.Resolved == point {
				ms = append(ms, m)
			}
		}
	}
	return ms
}

// firstTimes returns the metrics' times, each at its first copy: a
// reconnect may repeat what was in flight.
func firstTimes(ms []peers.SparkplugMetric) []uint64 {
	seen := map[uint64]bool{}
	var ts []uint64
	for _, m := range ms {
		if !seen[*m.Timestamp] {
			seen[*m.Timestamp] = true
			ts = append(ts, *m.Timestamp)
		}
	}
	return ts
}
