package bridge

import (
	"testing"
	"time"
)

func TestHeartbeat(t *testing.T) {
	var h heartbeat
	now := time.Now()
	if h.late(now.Add(time.Hour)) {
		t.Fatal("a heartbeat that promised nothing yet is late")
	}
	h.beat(time.Second)
	if h.late(now.Add(time.Second)) {
		t.Fatal("late within its promise")
	}
	if !h.late(now.Add(time.Second + beatSlack + time.Second)) {
		t.Fatal("not late past its promise")
	}
}

// TestUpstreamsShowProgress: running upstreams, connected or dialling a
// broker that is down, keep their promises: none is stalled.
func TestUpstreamsShowProgress(t *testing.T) {
	up := upstreamCfg("down", "mqtt://127.0.0.1:1", reconnectMax(time.Second))
	g := startGateway(t, testConfig(t, up), nil)
	g.logs.Await(t, wait, "cannot connect", "upstream=down")
	if s := g.b.Stalled(time.Now()); len(s) != 0 {
		t.Errorf("stalled %v", s)
	}
	if s := g.b.Stalled(time.Now().Add(time.Hour)); len(s) != 1 {
		t.Errorf("an hour on, stalled %v: want the upstream, which has not beaten since", s)
	}
}
