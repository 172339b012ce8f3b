package bridge

import (
	"strings"
	"testing"
	"time"

	"github.com/fieldgate/fieldgate/test/peers"
)

// TestCommandsQueuedDuringOutageNeverRun stops a gateway whose upstream
// keeps a persistent session (the default), publishes commands while it is
// away, with and without ts, and starts it again under the same client id:
// none of them may reach the Commander (SPEC §3: commands are never kept
// for later), while a command sent after the return runs.
func TestCommandsQueuedDuringOutageNeverRun(t *testing.T) {
	m := peers.StartMosquitto(t, peers.MosquittoOptions{})
	obs := peers.Observe(t, m.URL(), "fg/gw/+/+/set/result")
	cfg := testConfig(t, upstreamCfg("cloud", m.URL()))
	cmd := &commander{}
	g := startGateway(t, cfg, cmd)
	g.logs.Await(t, wait, "subscribed to commands", "upstream=cloud")
	g.stop()

	fresh := time.Now().UTC().Format(time.RFC3339Nano)
	for _, payload := range []string{`{"value":1,"id":"no-ts"}`, "2", `{"value":3,"id":"ts","ts":"` + fresh + `"}`} {
		obs.Publish(t, "fg/gw/boiler/temp/set", 1, false, payload)
	}

	g = startGateway(t, cfg, cmd)
	g.logs.Await(t, wait, "subscribed to commands", "upstream=cloud")
	// Queued commands would arrive before this one: its result marks the
	// point by which they would have run.
	obs.Publish(t, "fg/gw/boiler/temp/set", 1, false, `{"value":4,"id":"after"}`)
	obs.AwaitMessage(t, wait, "fg/gw/boiler/temp/set/result", func(p []byte) bool {
		return strings.Contains(string(p), `"id":"after"`)
	})
	if got, want := strings.Join(cmd.called(), "\n"), "boiler/temp 4 int"; got != want {
		t.Errorf("Commander calls:\n%s\nwant only the command sent after the return:\n%s", got, want)
	}
	for _, r := range obs.Topic("fg/gw/boiler/temp/set/result") {
		if strings.Contains(string(r.Payload), `"ok":true`) && !strings.Contains(string(r.Payload), `"id":"after"`) {
			t.Errorf("a command from the outage succeeded: %s", r)
		}
	}
}
