package bridge

import (
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/fieldgate/fieldgate/bridge/sparkplug"
	pb "github.com/fieldgate/fieldgate/bridge/sparkplug/sparkplugpb"
	"github.com/fieldgate/fieldgate/config"
	"github.com/fieldgate/fieldgate/internal/reading"
	"github.com/fieldgate/fieldgate/internal/statefile"
	"github.com/fieldgate/fieldgate/test/peers"
)

// The Sparkplug edge node against real brokers, checked by the Sparkplug
// host of test/sparkplughost (Eclipse Tahu's JavaScript decoder; it checks
// every message it sees against the Sparkplug 3.0 rules: seq, births before
// data, bdSeq, aliases, value fields, retained flags) and, for what no
// subscriber can see, by the packets mochi read. Each test names the
// Sparkplug TCK edge assertions (tck-id-…) it covers beyond those the
// host checks on every message.

// group is the Sparkplug group of the test configs; the edge node is the
// gateway, "gw".
const group = "plant-1"

// sparkplugUp is a Sparkplug upstream of group plant-1.
func sparkplugUp(name, url string, opts ...func(*config.Upstream)) config.Upstream {
	spb := func(u *config.Upstream) {
		u.Format = formatSparkplug
		u.Sparkplug = &config.Sparkplug{GroupID: group}
	}
	return upstreamCfg(name, url, append([]func(*config.Upstream){spb}, opts...)...)
}

func primaryHost(id string) func(*config.Upstream) {
	return func(u *config.Upstream) { u.Sparkplug.PrimaryHostID = id }
}

func brokerURLs(us ...string) func(*config.Upstream) {
	return func(u *config.Upstream) { u.URL, u.URLs = "", us }
}

// startEdgeNode runs a bridge whose Sparkplug upstreams keep their bdSeq in
// a fresh state directory.
func startEdgeNode(t *testing.T, cfg *config.Config) *gateway {
	t.Helper()
	state, err := statefile.OpenDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return startGateway(t, cfg, nil, WithEdgeNode("test"), WithState(state))
}

func startHost(t *testing.T, url, hostID string) *peers.SparkplugHost {
	t.Helper()
	return peers.StartSparkplugHost(t, peers.SparkplugHostOptions{BrokerURL: url, Group: group, EdgeNode: "gw", HostID: hostID})
}

func isMsg(typ, device string) func(peers.SparkplugEvent) bool {
	return func(e peers.SparkplugEvent) bool { return e.Event == "message" && e.Type == typ && e.Device == device }
}

// dataMetrics returns the metrics of device's DDATA messages among es, in
// order.
func dataMetrics(es []peers.SparkplugEvent, device string) []peers.SparkplugMetric {
	var ms []peers.SparkplugMetric
	for _, e := range es {
		if isMsg("DDATA", device)(e) {
			ms = append(ms, e.Metrics...)
		}
	}
	return ms
}

// awaitData waits until device's DDATA messages carry n metrics and returns
// them.
func awaitData(t *testing.T, h *peers.SparkplugHost, device string, n int) []peers.SparkplugMetric {
	t.Helper()
	h.Await(t, wait, fmt.Sprintf("%d DDATA metrics of %s", n, device), func(peers.SparkplugEvent) bool {
		return len(dataMetrics(h.Messages(), device)) >= n
	})
	return dataMetrics(h.Messages(), device)
}

// carries reports whether a metric carries v: a Float metric carries
// v's float32.
func carries(m peers.SparkplugMetric, v reading.Value) bool {
	if f, ok := v.Float64(); ok && v.Kind() == reading.KindFloat {
		got, err := strconv.ParseFloat(m.Text(), 64)
		return err == nil && float32(got) == float32(f)
	}
	return m.Text() == v.String()
}

// checkMetrics compares DDATA metrics with the readings they carry.
func checkMetrics(t *testing.T, got []peers.SparkplugMetric, want []reading.Reading, historical bool) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d metrics, want %d: %+v", len(got), len(want), got)
	}
	for i, r := range want {
		m := got[i]
		if m.Resolved != r.Point || !carries(m, r.Value) || m.IsHistorical != historical ||
			m.Timestamp == nil || *m.Timestamp != uint64(r.Time.UnixMilli()) {
			t.Errorf("metric %d = %+v; want %s = %s read at %d, historical %v", i, m, r.Point, r.Value, r.Time.UnixMilli(), historical)
		}
	}
}

func noProblems(t *testing.T, hosts ...*peers.SparkplugHost) {
	t.Helper()
	for _, h := range hosts {
		if ps := h.Problems(); len(ps) > 0 {
			t.Errorf("the host found problems:\n%s", strings.Join(ps, "\n"))
		}
	}
}

func stateJSON(online bool, ts time.Time) string {
	return fmt.Sprintf(`{"online":%t,"timestamp":%d}`, online, ts.UnixMilli())
}

// TestSparkplugWaitsForItsPrimaryHostThenSendsHistoryBeforeLiveData: with
// primary_host_id the node publishes nothing while that host is offline or
// silent (another host's STATE does not count); once it is online, the
// births carry every point's latest value, datatype, alias and engUnit,
// a device in error gets its DDEATH, the readings buffered meanwhile
// follow as historical DDATA with their times, and live DDATA after them.
//
// TCK: message-flow-edge-node-birth-publish-phid-wait, -phid-wait-id,
// -phid-wait-online, operational-behavior-edge-node-birth-sequence-wait;
// message-flow-edge-node-birth-publish-nbirth-qos, payloads-nbirth-qos,
// topics-nbirth-mqtt, message-flow-device-birth-publish-dbirth-qos,
// payloads-dbirth-qos, topics-dbirth-mqtt, topics-ddeath-mqtt (QoS 0 as the
// host receives them on its QoS 1 subscription);
// operational-behavior-data-publish-dbirth-values, topics-dbirth-metrics,
// payloads-metric-propertyvalue-type-req (values, datatypes, engUnit);
// payloads-dbirth-order, payloads-ddata-order, principles-birth-certificates-order;
// payloads-alias-data-cmd-requirement (by the host's checks).
func TestSparkplugWaitsForItsPrimaryHostThenSendsHistoryBeforeLiveData(t *testing.T) {
	mq := peers.StartMosquitto(t, peers.MosquittoOptions{})
	obs := peers.Observe(t, mq.URL(), "spBv1.0/#")
	obs.Publish(t, sparkplug.StateTopic("other"), 1, true, stateJSON(true, time.Now()))
	obs.Publish(t, sparkplug.StateTopic("scada"), 1, true, stateJSON(false, time.Now().Add(-time.Second)))
	g := startEdgeNode(t, testConfig(t, sparkplugUp("scada", mq.URL(), primaryHost("scada"))))
	g.b.SetStatus("boiler", nil)
	g.b.SetStatus("scale", errors.New("no such port"))
	g.logs.Await(t, wait, "waiting for the primary host")

	var history []reading.Reading
	for i := range 3 {
		rs := cycle(i)
		g.emit(rs...)
		history = append(history, rs...)
	}
	host := startHost(t, mq.URL(), "scada")
	nb := host.Await(t, wait, "NBIRTH", isMsg("NBIRTH", ""))
	if nb.QoS != 0 || nb.Retain || *nb.Seq != 0 || *nb.BdSeq != 0 {
		t.Errorf("NBIRTH %s: want QoS 0, not retained, seq 0, bdSeq 0", nb)
	}
	for name, want := range map[string]string{
		sparkplug.MetricVersion: "test", sparkplug.MetricBacklog: "6",
		"Adapters/boiler/State": "ok", "Adapters/scale/State": "error: no such port",
	} {
		if m, ok := nb.Metric(name); !ok || m.Text() != want {
			t.Errorf("NBIRTH %s = %+v, want %s", name, m, want)
		}
	}
	db := host.Await(t, wait, "DBIRTH boiler", isMsg("DBIRTH", "boiler"))
	last := history[len(history)-2:] // the newest temp and pressure
	for i, w := range []struct{ datatype, unit string }{{"Float", `"degC"`}, {"UInt16", `"bar"`}} {
		r := last[i]
		m, _ := db.Metric(r.Point)
		if m.Datatype != w.datatype || !carries(m, r.Value) || string(m.Properties[sparkplug.PropertyUnit].Value) != w.unit ||
			m.Properties[sparkplug.PropertyUnit].Type != "String" || *m.Timestamp != uint64(r.Time.UnixMilli()) {
			t.Errorf("DBIRTH boiler %s = %+v; want %s %s with engUnit %s, read at %d", r.Point, m, w.datatype, r.Value, w.unit, r.Time.UnixMilli())
		}
	}
	if m, _ := host.Await(t, wait, "DBIRTH scale", isMsg("DBIRTH", "scale")).Metric("weight"); !m.IsNull || m.Datatype != "String" {
		t.Errorf("DBIRTH scale weight = %+v, want a null String", m)
	}
	dd := host.Await(t, wait, "DDEATH scale", isMsg("DDEATH", "scale"))
	checkMetrics(t, awaitData(t, host, "boiler", len(history)), history, true)

	var live []reading.Reading
	for i := 3; i < 5; i++ {
		rs := cycle(i)
		_, last := g.emit(rs...)
		live = append(live, rs...)
		g.awaitCursor("scada", last+1)
	}
	checkMetrics(t, awaitData(t, host, "boiler", len(history)+len(live))[len(history):], live, false)

	for _, e := range append([]peers.SparkplugEvent{db, dd}, host.Messages()...) {
		want := 0
		if e.Type == "DDATA" {
			want = 1 // the upstream's qos: a deviation from Sparkplug's QoS 0, see the package doc
		}
		if e.QoS != want || e.Retain {
			t.Errorf("%s at QoS %d retained %v, want QoS %d, not retained", e.Type, e.QoS, e.Retain, want)
		}
	}
	// The broker relays the host's STATE to the node before the NBIRTH
	// the node publishes in answer.
	ms := obs.All()
	online := slices.IndexFunc(ms, func(m peers.Message) bool {
		return m.Topic == sparkplug.StateTopic("scada") && strings.Contains(string(m.Payload), `"online":true`)
	})
	birth := slices.IndexFunc(ms, func(m peers.Message) bool { return strings.Contains(m.Topic, "/NBIRTH/") })
	if online < 0 || birth < online {
		t.Errorf("NBIRTH at %d, the primary host's online STATE at %d:\n%v", birth, online, ms)
	}
	noProblems(t, host)
}

// TestSparkplugDeviceDeathsTakeTheirPlaceInTheStream: an adapter's error
// and recovery, marked where they happened among the buffered readings,
// send its DDEATH after the readings taken before the fault and its DBIRTH
// before those taken after, during a backlog as live; a reading of a dead
// device gives it a DBIRTH first; the state metric follows in NDATA.
//
// TCK: operational-behavior-device-ddeath, topics-ddeath-mqtt,
// payloads-ddeath-seq-inc (host), topics-ndata-payload.
func TestSparkplugDeviceDeathsTakeTheirPlaceInTheStream(t *testing.T) {
	mq := peers.StartMosquitto(t, peers.MosquittoOptions{})
	g := startEdgeNode(t, testConfig(t, sparkplugUp("scada", mq.URL(), primaryHost("scada"))))
	g.logs.Await(t, wait, "sparkplug: session started")
	g.b.SetStatus("boiler", nil)
	var before, after []reading.Reading
	for i := range 2 {
		before = append(before, cycle(i)...)
		g.emit(cycle(i)...)
	}
	g.b.SetStatus("boiler", errors.New("timeout"))
	g.logs.Await(t, wait, "adapter state marked", "adapter=boiler", "dead=true")
	g.b.SetStatus("boiler", nil)
	g.logs.Await(t, wait, "adapter state marked", "adapter=boiler", "dead=false")
	for i := 2; i < 4; i++ {
		after = append(after, cycle(i)...)
		g.emit(cycle(i)...)
	}

	host := startHost(t, mq.URL(), "scada")
	awaitData(t, host, "boiler", len(before)+len(after))
	var seen []string // the boiler's messages, with the number of metrics of DDATA
	for _, e := range host.Messages() {
		if e.Device == "boiler" {
			seen = append(seen, e.Type+strconv.Itoa(len(e.Metrics)))
		}
	}
	want := []string{"DBIRTH2", "DDATA4", "DDEATH0", "DBIRTH2", "DDATA4"}
	if !slices.Equal(seen, want) {
		t.Errorf("boiler's messages %v, want %v", seen, want)
	}

	// Live: the fault at once, a reading (one point answered) born again,
	// the recovery only in the state metric.
	from := host.Len()
	g.b.SetStatus("boiler", errors.New("timeout"))
	host.AwaitSince(t, from, wait, "DDEATH boiler", isMsg("DDEATH", "boiler"))
	host.AwaitSince(t, from, wait, "the boiler's state in NDATA", func(e peers.SparkplugEvent) bool {
		m, ok := e.Metric("Adapters/boiler/State")
		return isMsg("NDATA", "")(e) && ok && m.Text() == "error: timeout"
	})
	partial := reading.Reading{Adapter: "boiler", Point: "pressure", Time: time.Now(), Value: reading.Int(9)}
	g.emit(partial)
	host.AwaitSince(t, from, wait, "DBIRTH boiler", isMsg("DBIRTH", "boiler"))
	if m := host.AwaitSince(t, from, wait, "DDATA boiler", isMsg("DDATA", "boiler")).Metrics; len(m) != 1 || m[0].Text() != "9" || m[0].IsHistorical {
		t.Errorf("DDATA after the DBIRTH: %+v, want the live pressure 9", m)
	}
	g.b.SetStatus("boiler", nil)
	host.AwaitSince(t, from, wait, "the boiler ok in NDATA", func(e peers.SparkplugEvent) bool {
		m, ok := e.Metric("Adapters/boiler/State")
		return isMsg("NDATA", "")(e) && ok && m.Text() == "ok"
	})
	births := 0
	for _, e := range host.Events()[from:] {
		if isMsg("DBIRTH", "boiler")(e) {
			births++
		}
	}
	if births != 1 {
		t.Errorf("%d DBIRTHs of boiler after the fault, want 1", births)
	}
	noProblems(t, host)
}

// bdSeqOf decodes the bdSeq metric of an NBIRTH or NDEATH payload.
func bdSeqOf(t *testing.T, payload []byte) int64 {
	t.Helper()
	var p pb.Payload
	if err := proto.Unmarshal(payload, &p); err != nil {
		t.Fatal(err)
	}
	for _, m := range p.Metrics {
		if m.GetName() == sparkplug.MetricBdSeq {
			return int64(m.GetLongValue())
		}
	}
	t.Fatalf("no bdSeq in %v", &p)
	return -1
}

// TestSparkplugOnTheWire checks, from the packets the broker read, what no
// subscriber sees: a clean session whatever clean_session says, the will,
// the QoS of the command subscriptions, births at QoS 0 and data at the
// upstream's, and at a stop the NDEATH, confirmed, just before DISCONNECT.
//
// TCK: principles-persistence-clean-session-311;
// message-flow-edge-node-birth-publish-will-message, -will-message-qos,
// -will-message-topic, -will-message-will-retained,
// payloads-ndeath-will-message, -will-message-qos, -will-message-retain;
// topics-nbirth-bdseq-matching, payloads-nbirth-bdseq-repeat,
// payloads-ndeath-bdseq; message-flow-edge-node-ncmd-subscribe,
// message-flow-device-dcmd-subscribe (QoS 1); payloads-nbirth-qos,
// payloads-dbirth-qos; payloads-ddata-qos with qos = 0 (and the
// deviation with qos = 1); operational-behavior-edge-node-intentional-
// disconnect-ndeath, -intentional-disconnect-packet,
// payloads-ndeath-will-message-publisher,
// payloads-ndeath-will-message-publisher-disconnect-mqtt311.
func TestSparkplugOnTheWire(t *testing.T) {
	for _, q := range []int{0, 1} {
		t.Run(fmt.Sprintf("qos %d", q), func(t *testing.T) {
			broker := peers.StartMochi(t)
			g := startEdgeNode(t, testConfig(t, sparkplugUp("scada", broker.URL(), qos(q))))
			_, last := g.emit(cycle(0)...)
			g.awaitCursor("scada", last+1)
			g.stop()

			var ps []peers.Packet // but keepalives and acknowledgements
			all := broker.AwaitPackets(t, wait, "gw-scada", func(ps []peers.Packet) bool {
				return len(ps) > 0 && ps[len(ps)-1].Type == "Disconnect"
			})
			for _, p := range all {
				if p.Type != "Pingreq" && p.Type != "Puback" {
					ps = append(ps, p)
				}
			}
			node := sparkplug.Node{Group: group, ID: "gw"}
			if len(ps) < 7 {
				t.Fatalf("packets %+v", ps)
			}
			c := ps[0]
			if c.Type != "Connect" || !c.Clean || c.WillTopic != node.Topic(sparkplug.NDEATH) || c.WillQoS != 1 || c.WillRetain {
				t.Errorf("CONNECT %+v: want clean, with the will NDEATH at QoS 1, not retained", c)
			}
			wantSubs := map[string]byte{node.Topic(sparkplug.NCMD): 1, node.Topic(sparkplug.DCMD) + "/+": 1}
			if s := ps[1]; s.Type != "Subscribe" || !maps.Equal(s.Filters, wantSubs) {
				t.Errorf("SUBSCRIBE %+v, want %v", s, wantSubs)
			}
			for i, w := range []struct {
				topic string
				qos   byte
			}{
				{node.Topic(sparkplug.NBIRTH), 0},
				{node.DeviceTopic(sparkplug.DBIRTH, "boiler"), 0},
				{node.DeviceTopic(sparkplug.DBIRTH, "scale"), 0},
				{node.DeviceTopic(sparkplug.DDATA, "boiler"), byte(q)},
			} {
				if p := ps[2+i]; p.Type != "Publish" || p.Topic != w.topic || p.QoS != w.qos || p.Retain {
					t.Errorf("packet %d %+v: want %s at QoS %d, not retained", 2+i, p, w.topic, w.qos)
				}
			}
			end := ps[len(ps)-2:]
			if end[0].Topic != node.Topic(sparkplug.NDEATH) || end[0].QoS != 1 || end[0].Retain || end[1].Type != "Disconnect" {
				t.Errorf("last packets %+v: want the NDEATH at QoS 1, not retained, then DISCONNECT", end)
			}
			deaths := []peers.Message{broker.Received.AwaitMessage(t, wait, node.Topic(sparkplug.NDEATH), nil)}
			births := broker.Received.Topic(node.Topic(sparkplug.NBIRTH))
			if len(births) != 1 || len(deaths) != 1 {
				t.Fatalf("%d NBIRTH, %d NDEATH", len(births), len(deaths))
			}
			if b, w, d := bdSeqOf(t, births[0].Payload), bdSeqOf(t, c.WillPayload), bdSeqOf(t, deaths[0].Payload); b != w || d != w {
				t.Errorf("bdSeq: NBIRTH %d, will %d, NDEATH %d; want all equal", b, w, d)
			}
		})
	}
}

// TestSparkplugPrimaryHostGoingOffline: a stale offline STATE is ignored;
// a valid one ends the session (NDEATH, then DISCONNECT) and the node
// dials the next broker of its urls, where it waits for that broker's
// STATE; back on the first broker, an online STATE older than the offline
// that ended the session there brings no births, a newer one does.
//
// TCK: message-flow-edge-node-birth-publish-phid-offline,
// operational-behavior-edge-node-termination-host-offline,
// -host-offline-reconnect, -host-offline-timestamp,
// message-flow-edge-node-birth-publish-phid-wait-timestamp,
// operational-behavior-primary-application-state-with-multiple-servers-walk,
// -state-subs, operational-behavior-edge-node-birth-sequence-wait.
func TestSparkplugPrimaryHostGoingOffline(t *testing.T) {
	m1 := peers.StartMosquitto(t, peers.MosquittoOptions{})
	m2 := peers.StartMosquitto(t, peers.MosquittoOptions{})
	h1 := startHost(t, m1.URL(), "scada")
	h2 := startHost(t, m2.URL(), "scada")
	g := startEdgeNode(t, testConfig(t, sparkplugUp("scada", "", brokerURLs(m1.URL(), m2.URL()), primaryHost("scada"))))
	b1 := h1.Await(t, wait, "NBIRTH on the first broker", isMsg("NBIRTH", ""))
	// The timestamp of h1's STATE, which it keeps for its whole run.
	t1 := *h1.Await(t, wait, "h1's STATE", func(e peers.SparkplugEvent) bool { return e.Event == "state" }).Timestamp
	stateLog := func(online bool, ts uint64, hostOnline bool) {
		t.Helper()
		g.logs.Await(t, wait, "sparkplug: STATE", fmt.Sprintf("online=%t timestamp=%d host_online=%t", online, ts, hostOnline))
	}

	// A stale offline: nothing happens; the node still answers a rebirth
	// request in the same session.
	h1.State(t, false, t1-1)
	stateLog(false, t1-1, true)
	from := h1.Len()
	h1.Rebirth(t)
	if rb := h1.AwaitSince(t, from, wait, "the rebirth", isMsg("NBIRTH", "")); !rb.Rebirth {
		t.Errorf("NBIRTH %s after a stale offline STATE: want the same session's", rb)
	}

	// h1 goes offline: NDEATH of the session, then births on the second
	// broker, with the next bdSeq.
	from = h1.Len()
	h1.State(t, false, 0)
	if d := h1.AwaitSince(t, from, wait, "NDEATH", isMsg("NDEATH", "")); !*d.BdSeqMatchesBirth || d.QoS != 1 {
		t.Errorf("NDEATH %s: want the session's bdSeq at QoS 1", d)
	}
	b2 := h2.Await(t, wait, "NBIRTH on the second broker", isMsg("NBIRTH", ""))
	if *b2.BdSeq != *b1.BdSeq+1 {
		t.Errorf("bdSeq %d on the second broker after %d", *b2.BdSeq, *b1.BdSeq)
	}

	// h2 goes offline too: the node walks the brokers, waiting on each.
	// Back on the first, an online STATE older than the offline that ended
	// the session there does not count; a newer one does.
	from = h1.Len()
	h2.State(t, false, 0)
	h2.Await(t, wait, "NDEATH on the second broker", isMsg("NDEATH", ""))
	h1.State(t, true, t1-1)
	stateLog(true, t1-1, false)
	if slices.ContainsFunc(h1.Events()[from:], isMsg("NBIRTH", "")) {
		t.Fatal("NBIRTH on an online STATE older than the offline before it")
	}
	h1.State(t, true, t1+1)
	if b := h1.AwaitSince(t, from, wait, "NBIRTH back on the first broker", isMsg("NBIRTH", "")); *b.BdSeq <= *b2.BdSeq {
		t.Errorf("bdSeq %d back on the first broker after %d", *b.BdSeq, *b2.BdSeq)
	}
	noProblems(t, h1, h2)
}

// TestSparkplugNewPointsAreBornAgain: a reload that changes the points
// keeps the connection and answers with the births of the same session,
// which declare the new point; one that changes nothing Sparkplug
// declares brings no births.
func TestSparkplugNewPointsAreBornAgain(t *testing.T) {
	mq := peers.StartMosquitto(t, peers.MosquittoOptions{})
	host := startHost(t, mq.URL(), "")
	up := sparkplugUp("scada", mq.URL())
	g := startEdgeNode(t, testConfig(t, up))
	nb := host.Await(t, wait, "NBIRTH", isMsg("NBIRTH", ""))
	host.Await(t, wait, "the last DBIRTH", isMsg("DBIRTH", "scale"))

	more := strings.Replace(testAdapters, `point = [`, `point = [
  { name = "flow", table = "input_register", address = 3, type = "float32", unit = "m3/h" },`, 1)
	from := host.Len()
	if err := g.b.Reload(mustLoad(t, more, up)); err != nil {
		t.Fatal(err)
	}
	if rb := host.AwaitSince(t, from, wait, "the births again", isMsg("NBIRTH", "")); !rb.Rebirth || *rb.BdSeq != *nb.BdSeq {
		t.Errorf("NBIRTH %s after the reload: want the same session's", rb)
	}
	db := host.AwaitSince(t, from, wait, "DBIRTH boiler", isMsg("DBIRTH", "boiler"))
	if m, ok := db.Metric("flow"); !ok || m.Datatype != "Float" {
		t.Errorf("DBIRTH boiler after the reload: flow = %+v", m)
	}
	_, last := g.emit(reading.Reading{Adapter: "boiler", Point: "flow", Time: time.Now(), Value: reading.Float(1.5)})
	g.awaitCursor("scada", last+1)
	host.AwaitSince(t, from, wait, "DDATA flow", func(e peers.SparkplugEvent) bool {
		m, ok := e.Metric("flow")
		return isMsg("DDATA", "boiler")(e) && ok && m.Text() == "1.5"
	})

	// command_max_age is nothing Sparkplug declares: no births.
	from = host.Len()
	same := mustLoad(t, more, up)
	same.Gateway.CommandMaxAge = config.Duration(time.Minute)
	if err := g.b.Reload(same); err != nil {
		t.Fatal(err)
	}
	_, last = g.emit(cycle(1)...)
	g.awaitCursor("scada", last+1)
	host.AwaitSince(t, from, wait, "DDATA after the reload", isMsg("DDATA", "boiler"))
	if slices.ContainsFunc(host.Events()[from:], isMsg("NBIRTH", "")) {
		t.Error("births after a reload that changed no point")
	}
	noProblems(t, host)
}

// TestSparkplugCommandFloodIsQuiet: a host flooding the edge node with
// undecodable DCMDs, NCMDs it ignores and malformed STATE messages gets
// each refused or ignored, but the log gets a few lines per kind, not a
// line each.
func TestSparkplugCommandFloodIsQuiet(t *testing.T) {
	broker := peers.StartMochi(t)
	g := startEdgeNode(t, testConfig(t, sparkplugUp("scada", broker.URL(), primaryHost("scada-host"))))
	host := peers.Observe(t, broker.URL(), "spBv1.0/#")
	host.Publish(t, sparkplug.StateTopic("scada-host"), 1, true, fmt.Sprintf(`{"online":true,"timestamp":%d}`, time.Now().UnixMilli()))
	g.logs.Await(t, wait, "sparkplug: births published", "upstream=scada")
	node := sparkplug.Node{Group: group, ID: "gw"}
	const n = 1000
	for i := range n {
		var tok mqtt.Token
		switch i % 3 {
		case 0:
			tok = host.Client.Publish(node.Topic(sparkplug.DCMD)+"/boiler", 1, false, []byte{0xff, 0x01})
		case 1:
			tok = host.Client.Publish(node.Topic(sparkplug.NCMD), 1, false, ncmd(t, "Node Control/Next Server", true))
		default:
			tok = host.Client.Publish(sparkplug.StateTopic("scada-host"), 1, false, []byte("{"))
		}
		if i%100 == 99 { // a window of unconfirmed publishes, not one round trip each
			tok.Wait()
		}
	}
	host.Publish(t, node.Topic(sparkplug.DCMD)+"/boiler", 1, false, "end")
	// Every undecodable DCMD (a third of the flood, and "end") counted, so
	// the whole flood was handled before the log is judged.
	deadline := time.Now().Add(wait)
	for refused := uint64(0); refused < n/3+2; {
		if time.Now().After(deadline) {
			t.Fatalf("%d DCMDs refused within %v, want %d", refused, wait, n/3+2)
		}
		refused = g.b.Upstreams()[0].CommandsRefused
		runtime.Gosched()
	}
	g.stop()
	lines := strings.Count(g.logs.String(), "level=WARN") + strings.Count(g.logs.String(), "NCMD metric ignored")
	t.Logf("%d messages from the host: %d log lines about them", n+1, lines)
	if lines > 10 {
		t.Errorf("%d log lines for %d messages:\n%s", lines, n+1, g.logs)
	}
}

// ncmd is an NCMD payload writing v to the node metric name.
func ncmd(t *testing.T, name string, v bool) []byte {
	t.Helper()
	b, err := proto.Marshal(&pb.Payload{
		Timestamp: proto.Uint64(uint64(time.Now().UnixMilli())),
		Metrics: []*pb.Payload_Metric{{Name: proto.String(name), Datatype: proto.Uint32(11), // Boolean
			Value: &pb.Payload_Metric_BooleanValue{BooleanValue: v}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestObserveOnlyForSparkplug: the points' latest readings, which only
// Sparkplug births use, are kept while an upstream speaks Sparkplug, and
// forgotten when a reload leaves none.
func TestObserveOnlyForSparkplug(t *testing.T) {
	const url = "mqtt://127.0.0.1:1" // nothing connects: the bridge is not run
	rs := []reading.Reading{{Adapter: "boiler", Point: "temp", Time: time.Now(), Value: reading.Float(21.5)}}
	kept := func(b *Bridge) bool { _, ok := b.latest.of(pointKey{"boiler", "temp"}); return ok }
	b := New(testConfig(t, upstreamCfg("cloud", url)), nil, nil, slog.New(slog.DiscardHandler))
	b.Observe(rs)
	if kept(b) {
		t.Fatal("a reading was kept with no Sparkplug upstream")
	}
	if err := b.Reload(testConfig(t, upstreamCfg("cloud", url), sparkplugUp("scada", url))); err != nil {
		t.Fatal(err)
	}
	b.Observe(rs)
	if !kept(b) {
		t.Fatal("a reading was not kept for the Sparkplug upstream a reload added")
	}
	if err := b.Reload(testConfig(t, upstreamCfg("cloud", url))); err != nil {
		t.Fatal(err)
	}
	if kept(b) {
		t.Error("the readings outlived the Sparkplug upstream")
	}
	b.Observe(rs)
	if kept(b) {
		t.Error("a reading was kept after the Sparkplug upstream went")
	}
}
