package sparkplug

import "testing"

func TestParseState(t *testing.T) {
	for _, c := range []struct {
		payload string
		want    State
		ok      bool
	}{
		{`{"online":true,"timestamp":1700000000123}`, State{true, 1700000000123}, true},
		{`{"timestamp":5,"online":false}`, State{false, 5}, true},
		{"ONLINE", State{Online: true}, true}, // Sparkplug 2.2
		{"OFFLINE\n", State{}, true},
		{`{"online":true}`, State{}, false},
		{`{"timestamp":5}`, State{}, false},
		{`{"online":"yes","timestamp":5}`, State{}, false},
		{"online", State{}, false},
		{"", State{}, false},
	} {
		got, err := ParseState([]byte(c.payload))
		if (err == nil) != c.ok || got != c.want {
			t.Errorf("ParseState(%q) = %+v, %v; want %+v, ok %v", c.payload, got, err, c.want, c.ok)
		}
	}
}

func TestPrimaryHostIgnoresStaleState(t *testing.T) {
	var h PrimaryHost
	for i, step := range []struct {
		in   State
		want bool
	}{
		{State{false, 100}, false}, // the retained will of the host's previous session
		{State{true, 200}, true},   // its birth
		{State{false, 100}, true},  // an older will, delivered late: ignored
		{State{false, 200}, false}, // its will for this session: offline
		{State{true, 200}, true},   // it saw its own will and is online again, same timestamp
		{State{true, 300}, true},
		{State{false, 299}, true},
	} {
		if got := h.Update(step.in); got != step.want {
			t.Errorf("step %d: STATE %+v: online %v, want %v", i, step.in, got, step.want)
		}
	}
	var fresh PrimaryHost
	if fresh.Update(State{true, 1}) != true {
		t.Error("the first STATE does not count")
	}
}
