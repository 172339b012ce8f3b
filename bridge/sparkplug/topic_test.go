package sparkplug

import (
	"errors"
	"slices"
	"testing"
)

func TestTopicsHaveTheSpecifiedForm(t *testing.T) {
	n := Node{Group: "plant-1", ID: "pi-gw-01"}
	for _, c := range []struct{ got, want string }{
		{n.Topic(NBIRTH), "spBv1.0/plant-1/NBIRTH/pi-gw-01"},
		{n.Topic(NDEATH), "spBv1.0/plant-1/NDEATH/pi-gw-01"},
		{n.Topic(NDATA), "spBv1.0/plant-1/NDATA/pi-gw-01"},
		{n.Topic(NCMD), "spBv1.0/plant-1/NCMD/pi-gw-01"},
		{n.DeviceTopic(DBIRTH, "boiler"), "spBv1.0/plant-1/DBIRTH/pi-gw-01/boiler"},
		{n.DeviceTopic(DDEATH, "boiler"), "spBv1.0/plant-1/DDEATH/pi-gw-01/boiler"},
		{n.DeviceTopic(DDATA, "boiler"), "spBv1.0/plant-1/DDATA/pi-gw-01/boiler"},
		{n.DeviceTopic(DCMD, "boiler"), "spBv1.0/plant-1/DCMD/pi-gw-01/boiler"},
		{StateTopic("scada"), "spBv1.0/STATE/scada"},
	} {
		if c.got != c.want {
			t.Errorf("got %s, want %s", c.got, c.want)
		}
	}
	if got, want := n.CommandFilters(), []string{"spBv1.0/plant-1/NCMD/pi-gw-01", "spBv1.0/plant-1/DCMD/pi-gw-01/+"}; !slices.Equal(got, want) {
		t.Errorf("command filters %q, want %q", got, want)
	}
}

func TestParseTopic(t *testing.T) {
	n := Node{Group: "g", ID: "n"}
	for _, c := range []struct {
		topic string
		want  Topic
		ok    bool
	}{
		{"spBv1.0/g/NCMD/n", Topic{Type: NCMD, Node: n}, true},
		{"spBv1.0/g/DCMD/n/boiler", Topic{Type: DCMD, Node: n, Device: "boiler"}, true},
		{"spBv1.0/g/NBIRTH/n", Topic{Type: NBIRTH, Node: n}, true},
		{"spBv1.0/g/DDATA/n/d", Topic{Type: DDATA, Node: n, Device: "d"}, true},
		{"spBv1.0/STATE/scada", Topic{Type: STATE, HostID: "scada"}, true},
		{"spAv1.0/g/NCMD/n", Topic{}, false},      // another namespace
		{"STATE/scada", Topic{}, false},           // Sparkplug 2.2's STATE topic
		{"spBv1.0/g/NCMD/n/d", Topic{}, false},    // a device on a node message
		{"spBv1.0/g/DCMD/n", Topic{}, false},      // a device message without one
		{"spBv1.0/g/DCMD/n/d/x", Topic{}, false},  // too long
		{"spBv1.0/g/FOO/n", Topic{}, false},       // unknown type
		{"spBv1.0/g/NCMD", Topic{}, false},        // too short
		{"spBv1.0//NCMD/n", Topic{}, false},       // empty group
		{"spBv1.0/STATE/scada/x", Topic{}, false}, // STATE with a tail: a node topic of group STATE, type scada
	} {
		got, err := ParseTopic(c.topic)
		if (err == nil) != c.ok || got != c.want {
			t.Errorf("ParseTopic(%q) = %+v, %v; want %+v, ok %v", c.topic, got, err, c.want, c.ok)
		}
	}
}

func TestCheckID(t *testing.T) {
	for id, ok := range map[string]bool{
		"pi-gw-01": true, "Plant 1 ü": true,
		"": false, "a/b": false, "a+b": false, "a#": false, "\xff": false,
	} {
		if err := CheckID(id); (err == nil) != ok || (err != nil && !errors.Is(err, ErrBadID)) {
			t.Errorf("CheckID(%q) = %v, want ok %v", id, err, ok)
		}
	}
}
