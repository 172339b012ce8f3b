package peers

import (
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fieldgate/fieldgate/internal/reading"

	paho "github.com/eclipse/paho.mqtt.golang"
	"google.golang.org/protobuf/proto"

	"github.com/fieldgate/fieldgate/bridge/sparkplug"
	pb "github.com/fieldgate/fieldgate/bridge/sparkplug/sparkplugpb"
)

// The host's self-test: fieldgate's Sparkplug encoder on one side, the
// Node.js host on Eclipse Tahu's library on the other, through a real
// Mosquitto. It proves the host decodes what the encoder writes, that its
// checks catch broken sessions, and that its commands decode in Go.

const wait = 10 * time.Second

// testEdge is a minimal edge node session driven by hand: a paho client
// with the NDEATH will, publishing payloads built by package sparkplug.
type testEdge struct {
	node sparkplug.Node
	cat  *sparkplug.Catalog
	c    paho.Client
	cmds chan paho.Message
	seq  sparkplug.Seq
}

func testCatalog(t *testing.T) *sparkplug.Catalog {
	t.Helper()
	c, err := sparkplug.NewCatalog(sparkplug.GatewayMetrics([]string{"boiler", "io"}), []sparkplug.Device{
		{ID: "boiler", Metrics: []sparkplug.MetricDef{
			{Name: "supply_temp", Type: pb.DataType_Double, Unit: "degC"},
			{Name: "setpoint", Type: pb.DataType_Int16},
			{Name: "energy", Type: pb.DataType_UInt32, Unit: "kWh"},
			{Name: "offset", Type: pb.DataType_Int64},
			{Name: "flow", Type: pb.DataType_Float, Unit: "m3/h"},
			{Name: "serial", Type: pb.DataType_String},
		}},
		{ID: "io", Metrics: []sparkplug.MetricDef{
			{Name: "door", Type: pb.DataType_Boolean},
			{Name: "pulses", Type: pb.DataType_UInt64},
		}},
		{ID: "late", Metrics: []sparkplug.MetricDef{{Name: "x", Type: pb.DataType_Boolean}}}, // never born by births
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// connectEdge connects with clean session and NDEATH(bdSeq) as the will
// (QoS 1, not retained) and subscribes to the node's commands.
func connectEdge(t *testing.T, url string, node sparkplug.Node, bdSeq uint8) *testEdge {
	t.Helper()
	e := &testEdge{node: node, cat: testCatalog(t), cmds: make(chan paho.Message, 16)}
	opts := paho.NewClientOptions().AddBroker(url).SetClientID("edge-"+randomID()).
		SetCleanSession(true).SetAutoReconnect(false).
		SetBinaryWill(node.Topic(sparkplug.NDEATH), sparkplug.NDeath(bdSeq, time.Now()), 1, false)
	e.c = paho.NewClient(opts)
	if tok := e.c.Connect(); !tok.WaitTimeout(wait) || tok.Error() != nil {
		t.Fatalf("edge connect: %v", tok.Error())
	}
	t.Cleanup(func() { e.c.Disconnect(0) })
	subs := map[string]byte{}
	for _, f := range node.CommandFilters() {
		subs[f] = 1
	}
	tok := e.c.SubscribeMultiple(subs, func(_ paho.Client, m paho.Message) { e.cmds <- m })
	if !tok.WaitTimeout(wait) || tok.Error() != nil {
		t.Fatalf("edge subscribe: %v", tok.Error())
	}
	return e
}

func (e *testEdge) publish(t *testing.T, topic string, payload []byte, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	if tok := e.c.Publish(topic, 0, false, payload); !tok.WaitTimeout(wait) || tok.Error() != nil {
		t.Fatalf("publish %s: %v", topic, tok.Error())
	}
}

// births publishes NBIRTH and both DBIRTHs.
func (e *testEdge) births(t *testing.T, bdSeq uint8, boiler map[string]sparkplug.Sample) {
	t.Helper()
	now := time.Now()
	b, err := e.cat.NBirth(e.seq.Birth(), now, bdSeq, map[string]sparkplug.Sample{
		sparkplug.MetricVersion: {Value: reading.String("test"), Time: now},
		sparkplug.MetricBacklog: {Value: reading.Uint(3), Time: now},
	})
	e.publish(t, e.node.Topic(sparkplug.NBIRTH), b, err)
	b, err = e.cat.DBirth(e.seq.Next(), now, "boiler", boiler)
	e.publish(t, e.node.DeviceTopic(sparkplug.DBIRTH, "boiler"), b, err)
	b, err = e.cat.DBirth(e.seq.Next(), now, "io", nil)
	e.publish(t, e.node.DeviceTopic(sparkplug.DBIRTH, "io"), b, err)
}

func (e *testEdge) ddata(t *testing.T, device string, ss ...sparkplug.Sample) {
	t.Helper()
	b, err := e.cat.DData(e.seq.Next(), time.Now(), device, ss)
	e.publish(t, e.node.DeviceTopic(sparkplug.DDATA, device), b, err)
}

// command waits for the next NCMD or DCMD and decodes it with the catalog.
func (e *testEdge) command(t *testing.T) []sparkplug.Command {
	t.Helper()
	select {
	case m := <-e.cmds:
		if m.Qos() != 0 || m.Retained() {
			t.Errorf("command on %s at QoS %d retained %v; Sparkplug sends them at QoS 0, not retained", m.Topic(), m.Qos(), m.Retained())
		}
		topic, err := sparkplug.ParseTopic(m.Topic())
		if err != nil {
			t.Fatal(err)
		}
		sent, cmds, err := e.cat.DecodeCommand(topic, m.Payload())
		if err != nil {
			t.Fatal(err)
		}
		if age := time.Since(sent); age < 0 || age > time.Minute {
			t.Errorf("command timestamp %v is not the host's send time", sent)
		}
		return cmds
	case <-time.After(wait):
		t.Fatal("no command reached the edge node")
		return nil
	}
}

func isType(typ, device string) func(SparkplugEvent) bool {
	return func(e SparkplugEvent) bool { return e.Event == "message" && e.Type == typ && e.Device == device }
}

func TestSparkplugHostDecodesWhatOurEncoderWrites(t *testing.T) {
	broker := StartMosquitto(t, MosquittoOptions{})
	link := StartProxy(t, "127.0.0.1:"+strconv.Itoa(broker.Port))
	node := sparkplug.Node{Group: "plant-1", ID: "gw-1"}
	host := StartSparkplugHost(t, SparkplugHostOptions{BrokerURL: broker.URL(), Group: node.Group, EdgeNode: node.ID, HostID: "scada"})
	// The host's STATE, as an edge node that subscribes after the host's
	// birth sees it: retained (the flag survives only on delivery at
	// subscription), QoS 1.
	state := func(online bool) sparkplug.State {
		t.Helper()
		m := Observe(t, broker.URL(), sparkplug.StateTopic("scada")).AwaitMessage(t, wait, sparkplug.StateTopic("scada"), nil)
		s, err := sparkplug.ParseState(m.Payload)
		if err != nil || s.Online != online || s.Timestamp == 0 || m.QoS != 1 || !m.Retained {
			t.Fatalf("host STATE %s: %+v, %v; want online %v with a timestamp, QoS 1, retained", m, s, err, online)
		}
		return s
	}
	st := state(true)

	edge := connectEdge(t, link.URL(), node, 41)
	read := time.Now().Add(-time.Second).Truncate(time.Millisecond)
	edge.births(t, 41, map[string]sparkplug.Sample{
		"supply_temp": {Value: reading.Float(21.5), Time: read},
		"setpoint":    {Value: reading.Int(-3), Time: read},
		"energy":      {Value: reading.Uint(4_000_000_000), Time: read},
		"offset":      {Value: reading.Int(-9_000_000_000_000), Time: read},
		"flow":        {Value: reading.Float(1.25), Time: read},
		"serial":      {Value: reading.String("SN-42 ü"), Time: read},
	})
	nbirth := host.Await(t, wait, "NBIRTH", isType("NBIRTH", ""))
	if nbirth.BdSeq == nil || *nbirth.BdSeq != 41 || nbirth.Seq == nil || *nbirth.Seq != 0 || nbirth.QoS != 0 || nbirth.Retain {
		t.Errorf("NBIRTH %s", nbirth)
	}
	for name, want := range map[string]string{sparkplug.MetricVersion: "test", sparkplug.MetricBacklog: "3", sparkplug.MetricRebirth: "false"} {
		if m, ok := nbirth.Metric(name); !ok || m.Text() != want {
			t.Errorf("NBIRTH %s = %+v, want %s", name, m, want)
		}
	}
	dbirth := host.Await(t, wait, "DBIRTH boiler", isType("DBIRTH", "boiler"))
	for _, w := range []struct{ name, datatype, value, unit string }{
		{"supply_temp", "Double", "21.5", `"degC"`},
		{"setpoint", "Int16", "-3", ""},
		{"energy", "UInt32", "4000000000", `"kWh"`},
		{"offset", "Int64", "-9000000000000", ""},
		{"flow", "Float", "1.25", `"m3/h"`},
		{"serial", "String", "SN-42 ü", ""},
	} {
		m, ok := dbirth.Metric(w.name)
		unit := string(m.Properties[sparkplug.PropertyUnit].Value)
		if !ok || m.Datatype != w.datatype || m.Text() != w.value || m.Alias == nil || unit != w.unit ||
			m.Timestamp == nil || *m.Timestamp != uint64(read.UnixMilli()) {
			t.Errorf("DBIRTH boiler %s = %+v (unit %s); want %s %s unit %s with an alias, read at %d", w.name, m, unit, w.datatype, w.value, w.unit, read.UnixMilli())
		}
	}
	dio := host.Await(t, wait, "DBIRTH io", isType("DBIRTH", "io"))
	if m, _ := dio.Metric("door"); !m.IsNull || m.Datatype != "Boolean" {
		t.Errorf("DBIRTH io door without a value: %+v, want a null Boolean", m)
	}

	// Store and forward, then live data, by alias.
	past := read.Add(-time.Hour)
	edge.ddata(t, "boiler",
		sparkplug.Sample{Name: "supply_temp", Value: reading.Float(19), Time: past, Historical: true},
		sparkplug.Sample{Name: "supply_temp", Value: reading.Float(22.5), Time: read},
		sparkplug.Sample{Name: "energy", Value: reading.Uint(4_000_000_001), Time: read})
	edge.ddata(t, "io", sparkplug.Sample{Name: "pulses", Value: reading.Uint(1 << 63), Time: read})
	ddata := host.Await(t, wait, "DDATA boiler", isType("DDATA", "boiler"))
	if len(ddata.Metrics) != 3 {
		t.Fatalf("DDATA %s", ddata)
	}
	for i, w := range []struct {
		name, value string
		historical  bool
		ts          time.Time
	}{{"supply_temp", "19", true, past}, {"supply_temp", "22.5", false, read}, {"energy", "4000000001", false, read}} {
		m := ddata.Metrics[i]
		if m.Resolved != w.name || m.Name != "" || m.Datatype != "" || m.Text() != w.value || m.IsHistorical != w.historical || *m.Timestamp != uint64(w.ts.UnixMilli()) {
			t.Errorf("DDATA metric %d = %+v; want %s = %s by alias alone, historical %v, at %d", i, m, w.name, w.value, w.historical, w.ts.UnixMilli())
		}
	}
	pulses := host.Await(t, wait, "DDATA io", isType("DDATA", "io"))
	if m, _ := pulses.Metric("pulses"); m.Text() != "9223372036854775808" {
		t.Errorf("UInt64 pulses = %s", m.Value)
	}

	// Commands from the host decode in Go: by name, by alias, with Tahu's
	// own choice of fields (UInt32 in long_value).
	alias := func(name string) *uint64 {
		e, _ := edge.cat.Lookup("boiler", name)
		return &e.Alias
	}
	host.DCMD(t, "boiler",
		SparkplugWrite{Name: "setpoint", Value: -7},
		SparkplugWrite{Alias: alias("energy"), Value: 4_000_000_002},
		SparkplugWrite{Alias: alias("supply_temp"), Value: 60.5},
		SparkplugWrite{Name: "offset", Value: "-9000000000001"},
		SparkplugWrite{Name: "flow", Value: 2.5},
		SparkplugWrite{Name: "serial", Value: "SN-43"},
		SparkplugWrite{Name: "setpoint", Type: "Boolean", Value: true},
	)
	want := []sparkplug.Command{
		{Device: "boiler", Metric: "setpoint", Value: reading.Int(-7)},
		{Device: "boiler", Metric: "energy", Value: reading.Uint(4_000_000_002)},
		{Device: "boiler", Metric: "supply_temp", Value: reading.Float(60.5)},
		{Device: "boiler", Metric: "offset", Value: reading.Int(-9_000_000_000_001)},
		{Device: "boiler", Metric: "flow", Value: reading.Float(2.5)},
		{Device: "boiler", Metric: "serial", Value: reading.String("SN-43")},
	}
	got := edge.command(t)
	if len(got) != len(want)+1 || !slices.Equal(got[:len(want)], want) {
		t.Errorf("DCMD decoded as\n%+v\nwant\n%+v", got, want)
	}
	if last := got[len(got)-1]; last.Err == nil || !strings.Contains(last.Err.Error(), "datatype Boolean") {
		t.Errorf("a DCMD metric of the wrong datatype decoded as %+v", last)
	}
	host.Rebirth(t)
	if got := edge.command(t); len(got) != 1 || !got[0].IsRebirth() {
		t.Errorf("NCMD rebirth decoded as %+v", got)
	}
	edge.births(t, 41, nil)
	if rb := host.Await(t, wait, "the NBIRTH answering the rebirth", func(e SparkplugEvent) bool {
		return isType("NBIRTH", "")(e) && e.Rebirth
	}); *rb.BdSeq != 41 {
		t.Errorf("rebirth NBIRTH %s", rb)
	}

	// seq wraps from 255 to 0 without the host seeing a gap.
	for i := range 300 {
		edge.ddata(t, "io", sparkplug.Sample{Name: "door", Value: reading.Bool(i%2 == 0), Time: time.Now()})
	}
	host.Await(t, wait, "the 300th DDATA", func(e SparkplugEvent) bool {
		return isType("DDATA", "io")(e) && e.Seq != nil && *e.Seq == 302%256
	})

	// The link drops without DISCONNECT: the broker publishes the will.
	link.Cut()
	death := host.Await(t, wait, "NDEATH", isType("NDEATH", ""))
	if death.BdSeqMatchesBirth == nil || !*death.BdSeqMatchesBirth || *death.BdSeq != 41 || death.Seq != nil || death.QoS != 1 {
		t.Errorf("NDEATH %s; want bdSeq 41 matching the NBIRTH, no seq, QoS 1 (the will's)", death)
	}

	// The host going offline, as an edge node sees it.
	host.State(t, false, 0)
	if off := state(false); off.Timestamp != st.Timestamp {
		t.Errorf("offline STATE at %d, want the birth's timestamp %d", off.Timestamp, st.Timestamp)
	}

	if ps := host.Problems(); len(ps) > 0 {
		t.Errorf("the host found problems:\n%s", strings.Join(ps, "\n"))
	}
	for _, m := range host.Messages() {
		if m.AfterRebirthRequest {
			t.Errorf("data between the rebirth request and its NBIRTH: %s", m)
		}
	}
}

// TestSparkplugHostFindsBrokenSessions feeds the host sessions that break
// the rules it checks, so a test that sees no problems means something.
func TestSparkplugHostFindsBrokenSessions(t *testing.T) {
	broker := StartMosquitto(t, MosquittoOptions{})
	node := sparkplug.Node{Group: "g", ID: "n"}
	host := StartSparkplugHost(t, SparkplugHostOptions{BrokerURL: broker.URL(), Group: node.Group, EdgeNode: node.ID})
	edge := connectEdge(t, broker.URL(), node, 1)
	raw := func(p *pb.Payload) []byte {
		b, err := proto.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	now := time.Now()
	ms := uint64(now.UnixMilli())
	door, _ := edge.cat.Lookup("io", "door")

	cases := []struct {
		what    string
		publish func()
		problem string
	}{
		{"data before birth", func() {
			edge.ddata(t, "io", sparkplug.Sample{Name: "door", Value: reading.Bool(true), Time: now})
		}, "before any NBIRTH"},
		{"an NBIRTH without Node Control/Rebirth and bdSeq", func() {
			edge.publish(t, node.Topic(sparkplug.NBIRTH), raw(&pb.Payload{Timestamp: &ms, Seq: new(uint64)}), nil)
		}, "without Node Control/Rebirth"},
		{"a seq gap", func() {
			edge.births(t, 1, nil)
			edge.seq.Next()
			edge.ddata(t, "io", sparkplug.Sample{Name: "door", Value: reading.Bool(true), Time: now})
		}, "want 3"},
		{"an alias no birth declared", func() {
			edge.publish(t, node.DeviceTopic(sparkplug.DDATA, "io"), raw(&pb.Payload{Timestamp: &ms, Seq: proto.Uint64(edge.seq.Next()), Metrics: []*pb.Payload_Metric{
				{Alias: proto.Uint64(99), Timestamp: &ms, Value: &pb.Payload_Metric_BooleanValue{BooleanValue: true}},
			}}), nil)
		}, "alias 99"},
		{"a value in the wrong field", func() {
			edge.publish(t, node.DeviceTopic(sparkplug.DDATA, "io"), raw(&pb.Payload{Timestamp: &ms, Seq: proto.Uint64(edge.seq.Next()), Metrics: []*pb.Payload_Metric{
				{Alias: proto.Uint64(door.Alias), Timestamp: &ms, Value: &pb.Payload_Metric_IntValue{IntValue: 1}},
			}}), nil)
		}, "Boolean in intValue"},
		{"a first DBIRTH after data", func() {
			b, err := edge.cat.DBirth(edge.seq.Next(), now, "late", nil)
			edge.publish(t, node.DeviceTopic(sparkplug.DBIRTH, "late"), b, err)
		}, "first DBIRTH of late after data"},
		{"data of a dead device", func() {
			edge.publish(t, node.DeviceTopic(sparkplug.DDEATH, "io"), sparkplug.DDeath(edge.seq.Next(), now), nil)
			edge.ddata(t, "io", sparkplug.Sample{Name: "door", Value: reading.Bool(true), Time: now})
		}, "without a DBIRTH"},
	}
	for _, c := range cases {
		from := host.Len()
		c.publish()
		host.AwaitSince(t, from, wait, c.what+" found", func(e SparkplugEvent) bool {
			return slices.ContainsFunc(e.Problems, func(p string) bool { return strings.Contains(p, c.problem) })
		})
	}

	// Data after a rebirth request, before the NBIRTH answering it.
	from := host.Len()
	host.Rebirth(t)
	edge.ddata(t, "boiler", sparkplug.Sample{Name: "setpoint", Value: reading.Int(1), Time: now})
	host.AwaitSince(t, from, wait, "data after the rebirth request marked", func(e SparkplugEvent) bool {
		return isType("DDATA", "boiler")(e) && e.AfterRebirthRequest
	})

	// An NDEATH with another session's bdSeq ends nothing: a stale will.
	from = host.Len()
	edge.publish(t, node.Topic(sparkplug.NDEATH), sparkplug.NDeath(7, now), nil)
	if d := host.AwaitSince(t, from, wait, "NDEATH", isType("NDEATH", "")); d.BdSeqMatchesBirth == nil || *d.BdSeqMatchesBirth {
		t.Errorf("NDEATH of bdSeq 7 after an NBIRTH of 1: %s", d)
	}

	// A retained birth reaches a host that subscribes later with the
	// retain flag (live subscribers get it without: MQTT clears the flag).
	b, err := edge.cat.NBirth(edge.seq.Birth(), now, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	if tok := edge.c.Publish(node.Topic(sparkplug.NBIRTH), 1, true, b); !tok.WaitTimeout(wait) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	late := StartSparkplugHost(t, SparkplugHostOptions{BrokerURL: broker.URL(), Group: node.Group, EdgeNode: node.ID})
	late.Await(t, wait, "the retained NBIRTH found", func(e SparkplugEvent) bool {
		return slices.ContainsFunc(e.Problems, func(p string) bool { return strings.Contains(p, "NBIRTH is retained") })
	})
}
