package bridge

import (
	"fmt"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

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

// TestOldCommandSubscriptionDropped starts a gateway on a persistent
// session that already holds a command subscription, as one made by an
// earlier version (which subscribed on the readings connection) or before
// commands were turned off: the command the broker queued in it must not
// run, and the subscription must go, so the session queues no more.
func TestOldCommandSubscriptionDropped(t *testing.T) {
	m := peers.StartMosquitto(t, peers.MosquittoOptions{})
	// session connects as the gateway's readings connection, with handler
	// taking every message the broker delivers.
	session := func(handler paho.MessageHandler) paho.Client {
		c := paho.NewClient(paho.NewClientOptions().AddBroker(m.URL()).SetClientID("gw-cloud").
			SetCleanSession(false).SetDefaultPublishHandler(handler))
		if tok := c.Connect(); !tok.WaitTimeout(wait) || tok.Error() != nil {
			t.Fatalf("connect: %v", tok.Error())
		}
		return c
	}
	old := session(func(paho.Client, paho.Message) {})
	if tok := old.Subscribe("fg/gw/+/+/set", 1, nil); !tok.WaitTimeout(wait) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	old.Disconnect(100)
	obs := peers.Observe(t, m.URL(), "fg/gw/+/+/set/result")
	obs.Publish(t, "fg/gw/boiler/temp/set", 1, false, `{"value":1,"id":"queued"}`)

	cmd := &commander{}
	g := startGateway(t, testConfig(t, upstreamCfg("cloud", m.URL())), cmd)
	g.logs.Await(t, wait, "msg=connected", readingsLink, "session_present=true", "upstream=cloud")
	g.logs.Await(t, wait, "subscribed to commands", "upstream=cloud")
	obs.Publish(t, "fg/gw/boiler/temp/set", 1, false, `{"value":2,"id":"live"}`)
	obs.AwaitMessage(t, wait, "fg/gw/boiler/temp/set/result", func(p []byte) bool {
		return strings.Contains(string(p), `"id":"live"`)
	})
	g.stop()
	if got, want := strings.Join(cmd.called(), "\n"), "boiler/temp 2 int"; got != want {
		t.Errorf("Commander calls:\n%s\nwant:\n%s", got, want)
	}

	// Had the subscription stayed, the broker would queue this in the
	// session; had the queued command gone unacknowledged, it would resend
	// that. Mosquitto delivers what a session holds before anything new, so
	// the fence marks the end of what it held.
	obs.Publish(t, "fg/gw/boiler/temp/set", 1, false, `{"value":3,"id":"offline"}`)
	delivered := &peers.Inbox{}
	probe := session(func(_ paho.Client, msg paho.Message) {
		delivered.Add(peers.Message{Topic: msg.Topic(), Payload: msg.Payload()})
	})
	defer probe.Disconnect(100)
	if tok := probe.Subscribe("fence/gw", 1, nil); !tok.WaitTimeout(wait) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	obs.Publish(t, "fence/gw", 1, false, "fence")
	delivered.AwaitMessage(t, wait, "fence/gw", nil)
	for _, msg := range delivered.All() {
		if msg.Topic != "fence/gw" {
			t.Errorf("the session still held %s", msg)
		}
	}
}

// TestCommandFloodIsQuiet sends 5,000 commands, malformed ones and valid
// ones to a Commander that is stuck: every command gets its refusal or its
// turn, but the log gets a few lines per kind of refusal, not a line each.
func TestCommandFloodIsQuiet(t *testing.T) {
	if testing.Short() {
		t.Skip("5,000 round trips to the broker: left out by -short")
	}
	m := peers.StartMochi(t)
	obs := peers.Observe(t, m.URL(), "fg/gw/+/+/set/result")
	cmd := &commander{block: make(chan struct{})}
	g := startGateway(t, testConfig(t, upstreamCfg("cloud", m.URL())), cmd)
	g.logs.Await(t, wait, "subscribed to commands", "upstream=cloud")
	const n = 5000
	for i := range n {
		payload := `{"value":1}`
		if i%2 == 1 {
			payload = `{"value":`
		}
		tok := obs.Client.Publish("fg/gw/boiler/temp/set", 1, false, payload)
		if i%500 == 499 { // a window of unconfirmed publishes, not one round trip each
			tok.Wait()
		}
	}
	obs.Publish(t, "fg/gw/boiler/temp/set", 1, false, `{"value":`)
	g.logs.Await(t, wait, "command refused", "malformed command")
	close(cmd.block)
	g.stop()
	warnings := strings.Count(g.logs.String(), "level=WARN")
	t.Logf("%d commands: %d results reached the broker, %d WARN lines", n+1, len(obs.All()), warnings)
	if warnings > 10 {
		t.Errorf("%d WARN lines for %d commands:\n%s", warnings, n+1, g.logs)
	}
}

// TestCleanSessionOneConnection: an upstream with clean_session = true
// has nothing queued for it, so it takes its commands on its one
// connection.
func TestCleanSessionOneConnection(t *testing.T) {
	m := peers.StartMochi(t)
	obs := peers.Observe(t, m.URL(), "fg/gw/+/+/set/result")
	cmd := &commander{}
	g := startGateway(t, testConfig(t, upstreamCfg("cloud", m.URL(), clean)), cmd)
	g.logs.Await(t, wait, "subscribed to commands", "upstream=cloud")
	obs.Publish(t, "fg/gw/boiler/temp/set", 1, false, `{"value":1,"id":"c"}`)
	obs.AwaitMessage(t, wait, "fg/gw/boiler/temp/set/result", func(p []byte) bool { return strings.Contains(string(p), `"ok":true`) })
	if subs := m.Subscriptions("gw-cloud"); len(subs) != 1 || subs[0] != "fg/gw/+/+/set" {
		t.Errorf("subscriptions %q, want the command filter on the one connection", subs)
	}
	if n := m.Connects("gw-cloud-cmd"); n != 0 {
		t.Errorf("a command connection was made %d times", n)
	}
}

// TestQoS2StartsWithoutTheOldSession: an upstream at QoS 2 with a
// persistent session first ends the session the broker kept from before
// (a clean CONNECT discards it), so that no packet id still awaiting its
// PUBREL there is taken by a new message; at QoS 1 it connects once.
func TestQoS2StartsWithoutTheOldSession(t *testing.T) {
	for _, q := range []int{1, 2} {
		broker := peers.StartMochi(t)
		g := startGateway(t, testConfig(t, upstreamCfg("cloud", broker.URL(), qos(q))), nil)
		_, last := g.emit(cycle(0)...)
		g.awaitCursor("cloud", last+1)
		var connects []string
		for _, p := range broker.AwaitPackets(t, wait, "gw-cloud", func(ps []peers.Packet) bool { return len(ps) > 0 }) {
			if p.Type == "Connect" {
				connects = append(connects, fmt.Sprintf("clean=%t", p.Clean))
			}
		}
		want := "clean=false"
		if q == 2 {
			want = "clean=true, clean=false"
		}
		if got := strings.Join(connects, ", "); got != want {
			t.Errorf("qos %d: CONNECTs with %s, want %s", q, got, want)
		}
		g.stop()
	}
}
