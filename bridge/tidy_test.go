package bridge

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/fieldgate/fieldgate/test/peers"
)

// What the broker keeps for the gateway beyond readings, statuses and Home
// Assistant configs, follows the configuration: nothing a reload or a
// restart left behind stays retained (no ghosts).

// retainedOn returns what the broker at url retains on topic: it
// subscribes, then publishes a marker there (unretained), which the broker
// delivers after whatever it retained. A live publish may still arrive
// around the marker (mochi acknowledges a publish before it fans it out), so
// only the messages flagged retained count.
func retainedOn(t *testing.T, url, topic string) (payload string, ok bool) {
	t.Helper()
	obs := peers.Observe(t, url, topic)
	marker := "marker-" + strings.ReplaceAll(t.Name(), "/", "-")
	obs.Publish(t, topic, 1, false, marker)
	ms := obs.Await(t, wait, "the marker on "+topic, func(ms []peers.Message) bool {
		return slices.ContainsFunc(ms, func(m peers.Message) bool { return string(m.Payload) == marker })
	})
	for _, m := range ms {
		if m.Retained {
			return string(m.Payload), true
		}
	}
	return "", false
}

// oneAdapter is testAdapters without scale.
const oneAdapter = `
[[modbus]]
name = "boiler"
url = "tcp://127.0.0.1:502"
point = [{ name = "temp", table = "holding_register", type = "float32", unit = "degC" }]
`

// TestStatusClearedOnReload: a reload that removes an adapter clears its
// retained status on every upstream, ignores the late reports of the
// adapter on its way out, and does not bring the status back at a
// reconnect.
func TestStatusClearedOnReload(t *testing.T) {
	mochi := peers.StartMochi(t)
	mosq := peers.StartMosquitto(t, peers.MosquittoOptions{})
	proxy := peers.StartProxy(t, fmt.Sprintf("127.0.0.1:%d", mosq.Port))
	urls := map[string]string{"a": mochi.URL(), "b": proxy.URL()}
	ups := []string{"a", "b"}
	obs := map[string]*peers.Observer{}
	for _, u := range ups {
		obs[u] = peers.Observe(t, urls[u], "fg/gw/+/status")
	}
	g := startGateway(t, testConfig(t, upstreamCfg("a", urls["a"]), upstreamCfg("b", urls["b"])), nil)
	g.b.SetStatus("boiler", nil)
	g.b.SetStatus("scale", errString("no answer"))
	for _, u := range ups {
		obs[u].AwaitMessage(t, wait, "fg/gw/scale/status", func(p []byte) bool { return strings.Contains(string(p), "no answer") })
		obs[u].AwaitMessage(t, wait, "fg/gw/boiler/status", nil)
	}

	if err := g.b.Reload(mustLoad(t, oneAdapter, upstreamCfg("a", urls["a"]), upstreamCfg("b", urls["b"]))); err != nil {
		t.Fatal(err)
	}
	for _, u := range ups {
		obs[u].AwaitMessage(t, wait, "fg/gw/scale/status", func(p []byte) bool { return len(p) == 0 })
	}
	if g.b.SetStatus("scale", nil) {
		t.Error("the removed adapter's late report changed its status")
	}
	for _, u := range ups {
		if p, ok := retainedOn(t, urls[u], "fg/gw/scale/status"); ok {
			t.Errorf("upstream %s: the broker still retains the removed adapter's status %q", u, p)
		}
		if p, ok := retainedOn(t, urls[u], "fg/gw/boiler/status"); !ok || p != `{"state":"ok"}` {
			t.Errorf("upstream %s: boiler status %q (%t), want ok", u, p, ok)
		}
	}

	// A new link republishes the statuses: the removed one stays cleared.
	before := len(obs["b"].Topic("fg/gw/boiler/status"))
	proxy.Cut()
	obs["b"].Await(t, wait, "boiler status republished", func([]peers.Message) bool {
		return len(obs["b"].Topic("fg/gw/boiler/status")) > before
	})
	if p, ok := retainedOn(t, urls["b"], "fg/gw/scale/status"); ok {
		t.Errorf("after a reconnect the broker retains the removed adapter's status %q", p)
	}
}

// TestHAClearsWhatTheBrokerRetains runs a gateway with haAdapters, stops
// it, and starts one whose config lost boiler/alarm: at connect it learns
// the configs the broker retains for its gateway id and clears alarm's,
// leaving the other gateway's alone.
func TestHAClearsWhatTheBrokerRetains(t *testing.T) {
	const (
		alarm = "homeassistant/binary_sensor/gw/boiler_alarm/config"
		other = "homeassistant/sensor/gw2/boiler_alarm/config"
	)
	for _, br := range brokers {
		t.Run(br.name, func(t *testing.T) {
			url := br.start(t)
			peers.Observe(t, url, "unused").Publish(t, other, 1, true, `{"name":"another gateway's"}`)
			g := startGateway(t, haTestConfig(t, upstreamCfg("cloud", url, homeassistant)), nil)
			g.logs.Await(t, wait, "upstream=cloud", "homeassistant: discovery configs", "published=8")
			g.stop()

			adapters := strings.Replace(haAdapters, haAlarm, "", 1)
			g = startGateway(t, mustLoad(t, adapters, upstreamCfg("cloud", url, homeassistant)), nil)
			g.logs.Await(t, wait, "upstream=cloud", "homeassistant: discovery configs", "published=7", "cleared=1")
			if p, ok := retainedOn(t, url, alarm); ok {
				t.Errorf("the broker still retains the removed point's config %s", p)
			}
			if _, ok := retainedOn(t, url, other); !ok {
				t.Error("another gateway's config was cleared")
			}
			for _, w := range haWantJSON {
				if w.topic == alarm {
					continue
				}
				if p, ok := retainedOn(t, url, w.topic); !ok {
					t.Errorf("no config retained on %s", w.topic)
				} else {
					haCheck(t, w, []byte(p))
				}
			}
		})
	}
}
