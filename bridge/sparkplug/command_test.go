package sparkplug

import (
	"errors"
	"testing"
	"time"

	"github.com/fieldgate/fieldgate/internal/reading"

	"google.golang.org/protobuf/proto"

	"github.com/fieldgate/fieldgate/adapters"
	pb "github.com/fieldgate/fieldgate/bridge/sparkplug/sparkplugpb"
)

func command(t testing.TB, ms ...*pb.Payload_Metric) []byte {
	t.Helper()
	b, err := proto.Marshal(&pb.Payload{Timestamp: ptr(Millis(now)), Metrics: ms})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestDCMDResolvesMetricsByNameOrAliasAndChecksTheirType(t *testing.T) {
	c := testCatalog(t)
	topic, err := ParseTopic("spBv1.0/g/DCMD/n/boiler")
	if err != nil {
		t.Fatal(err)
	}
	sent, cmds, err := c.DecodeCommand(topic, command(t,
		&pb.Payload_Metric{Name: ptr("setpoint"), Datatype: ptr(uint32(pb.DataType_Int16)), Value: &pb.Payload_Metric_IntValue{IntValue: 0xffffffff}},
		&pb.Payload_Metric{Alias: ptr(uint64(5)), Value: &pb.Payload_Metric_DoubleValue{DoubleValue: 60.5}},
		&pb.Payload_Metric{Alias: ptr(uint64(8)), Value: &pb.Payload_Metric_BooleanValue{BooleanValue: true}},  // io's door
		&pb.Payload_Metric{Name: ptr("nope"), Value: &pb.Payload_Metric_BooleanValue{BooleanValue: true}},      // unknown
		&pb.Payload_Metric{Alias: ptr(uint64(99)), Value: &pb.Payload_Metric_BooleanValue{BooleanValue: true}}, // unknown
		&pb.Payload_Metric{Name: ptr("setpoint"), Datatype: ptr(uint32(pb.DataType_Int32)), Value: &pb.Payload_Metric_IntValue{IntValue: 1}},
		&pb.Payload_Metric{Name: ptr("serial"), Value: &pb.Payload_Metric_IntValue{IntValue: 1}}, // wrong field
	))
	if err != nil {
		t.Fatal(err)
	}
	if !sent.Equal(now.Truncate(time.Millisecond)) {
		t.Errorf("sent %v, want %v", sent, now)
	}
	want := []struct {
		metric string
		value  reading.Value
		cause  error
	}{
		{"setpoint", reading.Int(-1), nil},
		{"supply_temp", reading.Float(60.5), nil},
		{"", reading.Value{}, adapters.ErrNoPoint},
		{"nope", reading.Value{}, adapters.ErrNoPoint},
		{"", reading.Value{}, adapters.ErrNoPoint},
		{"setpoint", reading.Value{}, adapters.ErrBadValue},
		{"serial", reading.Value{}, adapters.ErrBadValue},
	}
	if len(cmds) != len(want) {
		t.Fatalf("%d commands: %+v", len(cmds), cmds)
	}
	for i, w := range want {
		got := cmds[i]
		if got.Device != "boiler" || got.Metric != w.metric || got.Value != w.value || !errors.Is(got.Err, w.cause) || (w.cause == nil) != (got.Err == nil) {
			t.Errorf("command %d = %+v; want %s = %s, error %v", i, got, w.metric, w.value, w.cause)
		}
	}
}

func TestNCMDRebirth(t *testing.T) {
	c := testCatalog(t)
	topic := Topic{Type: NCMD, Node: Node{"g", "n"}}
	rebirth := func(v bool) *pb.Payload_Metric {
		return &pb.Payload_Metric{Name: ptr(MetricRebirth), Datatype: ptr(uint32(pb.DataType_Boolean)), Value: &pb.Payload_Metric_BooleanValue{BooleanValue: v}}
	}
	for _, c2 := range []struct {
		m    *pb.Payload_Metric
		want bool
	}{
		{rebirth(true), true},
		{rebirth(false), false},
		{&pb.Payload_Metric{Name: ptr(MetricRebirth), Value: &pb.Payload_Metric_IntValue{IntValue: 1}}, false},
		{&pb.Payload_Metric{Name: ptr("Node Control/Next Server"), Value: &pb.Payload_Metric_BooleanValue{BooleanValue: true}}, false},
		{&pb.Payload_Metric{Alias: ptr(uint64(5)), Value: &pb.Payload_Metric_DoubleValue{DoubleValue: 1}}, false}, // a device's alias on NCMD
	} {
		_, cmds, err := c.DecodeCommand(topic, command(t, c2.m))
		if err != nil || len(cmds) != 1 || cmds[0].IsRebirth() != c2.want {
			t.Errorf("NCMD %v: %+v, %v; want rebirth %v", c2.m, cmds, err, c2.want)
		}
	}
}

func TestDecodeCommandRefusesWhatIsNoCommand(t *testing.T) {
	c := testCatalog(t)
	n := Node{"g", "n"}
	for name, tc := range map[string]struct {
		topic   Topic
		payload []byte
	}{
		"DDATA":          {Topic{Type: DDATA, Node: n, Device: "boiler"}, command(t)},
		"unknown device": {Topic{Type: DCMD, Node: n, Device: "nope"}, command(t)},
		"not protobuf":   {Topic{Type: NCMD, Node: n}, []byte("{\"value\":1}")},
	} {
		if _, _, err := c.DecodeCommand(tc.topic, tc.payload); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func FuzzDecodeCommand(f *testing.F) {
	c := testCatalog(f)
	f.Add(command(f, &pb.Payload_Metric{Name: ptr("setpoint"), Value: &pb.Payload_Metric_IntValue{IntValue: 7}}), true)
	f.Add(command(f, &pb.Payload_Metric{Alias: ptr(uint64(9)), Value: &pb.Payload_Metric_LongValue{LongValue: 7}}), false)
	f.Add(command(f, &pb.Payload_Metric{Name: ptr(MetricRebirth), Value: &pb.Payload_Metric_BooleanValue{BooleanValue: true}}), false)
	f.Fuzz(func(t *testing.T, payload []byte, dcmd bool) {
		topic := Topic{Type: NCMD, Node: Node{"g", "n"}}
		if dcmd {
			topic = Topic{Type: DCMD, Node: Node{"g", "n"}, Device: "boiler"}
		}
		_, cmds, err := c.DecodeCommand(topic, payload)
		for _, cmd := range cmds {
			if err != nil {
				t.Fatal("commands with an error")
			}
			if (cmd.Err == nil) == (cmd.Value.Kind() == reading.KindInvalid) {
				t.Fatalf("command %+v: a value with an error, or neither", cmd)
			}
			if cmd.Err != nil {
				continue
			}
			e, ok := c.Lookup(cmd.Device, cmd.Metric)
			if !ok {
				t.Fatalf("command %+v for an undeclared metric", cmd)
			}
			// What decodes must encode back into the same datatype.
			var m pb.Payload_Metric
			if err := setValue(&m, e.Type, cmd.Value); err != nil {
				t.Fatalf("command %+v does not fit %s: %v", cmd, e.Type, err)
			}
		}
	})
}
