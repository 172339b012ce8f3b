package bridge

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fieldgate/fieldgate/internal/reading"

	"github.com/fieldgate/fieldgate/adapters"
	"github.com/fieldgate/fieldgate/config"
	"github.com/fieldgate/fieldgate/test/peers"
)

// brokers are the real peers every delivery test runs against.
var brokers = []struct {
	name  string
	start func(t *testing.T) string // returns the broker's url
}{
	{"mochi", func(t *testing.T) string { return peers.StartMochi(t).URL() }},
	{"mosquitto", func(t *testing.T) string { return peers.StartMosquitto(t, peers.MosquittoOptions{}).URL() }},
}

// TestDelivery publishes a few poll cycles in each format and QoS and checks
// what a subscriber receives: topics, payloads, QoS, seq order; and that the
// buffer cursor moves past them.
func TestDelivery(t *testing.T) {
	cases := []struct {
		name string
		opts []func(*config.Upstream)
	}{
		{"json qos0", []func(*config.Upstream){qos(0)}},
		{"json qos1 retained", []func(*config.Upstream){qos(1), retain}},
		{"json qos2", []func(*config.Upstream){qos(2)}},
		{"value qos1", []func(*config.Upstream){format(formatValue)}},
		{"batch qos2", []func(*config.Upstream){format(formatBatch), qos(2), batchMax(3)}},
	}
	for _, br := range brokers {
		for _, tc := range cases {
			t.Run(br.name+"/"+tc.name, func(t *testing.T) {
				url := br.start(t)
				obs := peers.Observe(t, url, "fg/gw/#")
				up := upstreamCfg("cloud", url, tc.opts...)
				cfg := testConfig(t, up)
				g := startGateway(t, cfg, nil)
				s, err := newSettings(cfg.Upstream[0])
				if err != nil {
					t.Fatal(err)
				}

				var want []reading.Reading // by seq - first
				var first, last uint64
				for i := range 4 {
					rs := cycle(i)
					if i == 2 {
						rs = append(rs, reading.Reading{Adapter: "scale", Point: "weight", Time: time.Now(), Value: reading.String("12.5 kg")})
					}
					f, l := g.emit(rs...)
					if i == 0 {
						first = f
					}
					last = l
					want = append(want, rs...)
				}
				g.awaitCursor("cloud", last+1)
				ms := obs.Await(t, wait, "every reading", func(ms []peers.Message) bool {
					return countReadings(s, ms) >= len(want)
				})
				checkPayloads(t, s, ms, want, first)
				if s.retain {
					late := peers.Observe(t, url, "fg/gw/boiler/temp")
					m := late.AwaitMessage(t, wait, "fg/gw/boiler/temp", nil)
					if !m.Retained || !bytes.Contains(m.Payload, []byte(`"value":20.3`)) {
						t.Errorf("retained reading = %s, want the last temp, retained", m)
					}
				}
			})
		}
	}
}

// countReadings counts the readings in messages of s's reading topics.
func countReadings(s *settings, ms []peers.Message) int {
	n := 0
	for _, m := range ms {
		if !isReadingTopic(m.Topic, s.prefix) {
			continue
		}
		if s.format == formatBatch {
			n += bytes.Count(m.Payload, []byte(`"point":`))
		} else {
			n++
		}
	}
	return n
}

// checkPayloads compares the received reading messages with the readings
// emitted, whose seqs start at first, in the upstream's format.
func checkPayloads(t *testing.T, s *settings, ms []peers.Message, want []reading.Reading, first uint64) {
	t.Helper()
	units := map[string]string{"temp": "degC", "pressure": "bar"}
	i := 0 // next expected reading
	for _, m := range ms {
		if !isReadingTopic(m.Topic, s.prefix) {
			continue
		}
		if m.QoS != s.qos {
			t.Errorf("%s: QoS %d, want %d", m, m.QoS, s.qos)
		}
		if m.Retained {
			t.Errorf("%s: a live message arrived retained", m)
		}
		switch s.format {
		case formatValue:
			r := want[i]
			if wt := s.prefix + "/" + r.Adapter + "/" + r.Point; m.Topic != wt || string(m.Payload) != r.Value.String() {
				t.Errorf("message %d = %s, want %s %s", i, m, wt, r.Value)
			}
			i++
		case formatBatch:
			var rs []payloadReading
			if err := json.Unmarshal(m.Payload, &rs); err != nil {
				t.Fatalf("%s: %v", m, err)
			}
			if len(rs) == 0 || len(rs) > s.batchMax {
				t.Errorf("%s: %d readings, want 1..%d", m, len(rs), s.batchMax)
			}
			for _, r := range rs {
				w := want[i]
				if m.Topic != s.prefix+"/"+w.Adapter || r.Point != w.Point {
					t.Errorf("%s: reading %s, want %s/%s", m, r.Point, w.Adapter, w.Point)
				}
				checkReading(t, r, w, first+uint64(i), units[w.Point])
				i++
			}
		default:
			var r payloadReading
			if err := json.Unmarshal(m.Payload, &r); err != nil {
				t.Fatalf("%s: %v", m, err)
			}
			w := want[i]
			if m.Topic != s.prefix+"/"+w.Adapter+"/"+w.Point {
				t.Errorf("message %d on %s, want %s/%s", i, m.Topic, w.Adapter, w.Point)
			}
			checkReading(t, r, w, first+uint64(i), units[w.Point])
			i++
		}
	}
	if i != len(want) {
		t.Errorf("received %d readings, want %d", i, len(want))
	}
}

func checkReading(t *testing.T, got payloadReading, want reading.Reading, seq uint64, unit string) {
	t.Helper()
	wantTS := want.Time.UTC().Truncate(time.Millisecond).Format("2006-01-02T15:04:05.000Z")
	if got.Seq != seq || string(got.Value) != string(want.Value.AppendJSON(nil)) || got.TS != wantTS || got.Unit != unit {
		t.Errorf("reading seq %d value %s ts %s unit %q, want seq %d value %s ts %s unit %q", got.Seq, got.Value, got.TS, got.Unit, seq, want.Value.AppendJSON(nil), wantTS, unit)
	}
}

// TestLinkLoss drops the upstream link in the middle of a stream, by cutting
// the TCP connection (Mosquitto behind a proxy) or by restarting the broker
// (mochi, which forgets everything), and checks SPEC §4.1 and §4.3: the
// cursor never passes a seq the broker has not acknowledged, every seq
// arrives, in order, with repeats only of the in-flight window, and the
// backlog resumes within reconnect_max + 1 s of the broker's return.
func TestLinkLoss(t *testing.T) {
	cases := []struct {
		name    string
		restart bool // restart mochi; else cut the link to mosquitto
		opts    []func(*config.Upstream)
	}{
		{"mosquitto cut qos1", false, []func(*config.Upstream){qos(1)}},
		{"mosquitto cut qos2", false, []func(*config.Upstream){qos(2)}},
		{"mosquitto cut qos1 clean session", false, []func(*config.Upstream){qos(1), clean}},
		{"mosquitto cut batch", false, []func(*config.Upstream){qos(1), format(formatBatch), batchMax(5)}},
		{"mosquitto cut compact", false, []func(*config.Upstream){qos(1), format(formatCompact), batchMax(5)}},
		{"mochi restart qos1", true, []func(*config.Upstream){qos(1)}},
		{"mochi restart qos2", true, []func(*config.Upstream){qos(2)}},
		{"mochi restart qos1 clean session", true, []func(*config.Upstream){qos(1), clean}},
	}
	if testing.Short() {
		cases = cases[:1] // a second each: -short keeps one
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			const reconnect = time.Second
			var (
				url    string
				seen   *peers.Inbox // what reached the broker
				outage func()       // takes the link down
				back   func()       // brings it back (no-op for a cut)
			)
			if tc.restart {
				m := peers.StartMochi(t)
				url, seen, outage, back = m.URL(), m.Received, m.Stop, m.Start
			} else {
				m := peers.StartMosquitto(t, peers.MosquittoOptions{})
				p := peers.StartProxy(t, fmt.Sprintf("127.0.0.1:%d", m.Port))
				obs := peers.Observe(t, m.URL(), "fg/gw/#")
				url, seen, outage, back = p.URL(), obs.Inbox, p.Cut, func() {}
			}
			opts := append([]func(*config.Upstream){reconnectMax(reconnect)}, tc.opts...)
			g := startGateway(t, testConfig(t, upstreamCfg("cloud", url, opts...)), nil)
			prefix := "fg/gw"

			const cycles = 1500
			first, _ := g.emit(cycle(0)...)
			var last uint64
			for i := 1; i < cycles; i++ {
				_, last = g.emit(cycle(i)...)
			}
			seen.Await(t, wait, "the stream to start", func(ms []peers.Message) bool {
				return len(seqsOf(t, ms, prefix)) >= 300
			})
			outage()
			g.logs.Await(t, wait, "connection lost", "upstream=cloud", "in_flight=") // the readings' connection
			// The next seq to send: one past the end when the whole stream
			// was acknowledged before the cut.
			acked := g.buf.Cursor("cloud")
			if acked > last+1 {
				t.Fatalf("cursor %d is past the stream's end %d", acked, last)
			}
			seen.Await(t, wait, fmt.Sprintf("every seq below the cursor %d", acked), func(ms []peers.Message) bool {
				return hasAll(seqsOf(t, ms, prefix), first, acked-1)
			})

			// More readings while the link is down, then the broker returns.
			for i := range 100 {
				_, last = g.emit(cycle(cycles + i)...)
			}
			before := len(seqsOf(t, seen.All(), prefix))
			back()
			returned := time.Now()
			seen.Await(t, wait, "the backlog to resume", func(ms []peers.Message) bool {
				return len(seqsOf(t, ms, prefix)) > before
			})
			if d := time.Since(returned); tc.restart && d > reconnect+time.Second {
				t.Errorf("backlog resumed %v after the broker returned, want within reconnect_max + 1s = %v", d, reconnect+time.Second)
			}
			g.awaitCursor("cloud", last+1)
			ms := seen.Await(t, wait, "every seq", func(ms []peers.Message) bool {
				return hasAll(seqsOf(t, ms, prefix), first, last)
			})
			dups := checkOrder(t, seqsOf(t, ms, prefix), first)
			// At most the in-flight window: what paho resends, or what is
			// read again from the buffer, never both.
			if w := windowOf(tc.opts); dups > w {
				t.Errorf("%d repeated readings, want at most the in-flight window", dups)
			}
			t.Logf("%d readings, %d repeated after the outage", last-first+1, dups)
		})
	}
}

// windowOf is how many readings the options allow in flight.
func windowOf(opts []func(*config.Upstream)) int {
	var u config.Upstream
	for _, o := range opts {
		o(&u)
	}
	n := maxInFlight
	if u.QoS != nil && *u.QoS == 2 {
		n = maxInFlightQoS2
	}
	if u.Format == formatBatch || u.Format == formatCompact {
		n *= u.BatchMax
	}
	return n
}

// TestUpstreamIsolation checks SPEC §4.4: a dead upstream does not hold up
// a live one, and gets its backlog when its broker comes up.
func TestUpstreamIsolation(t *testing.T) {
	live := peers.StartMochi(t)
	dead := peers.StartMochi(t)
	dead.Stop()
	g := startGateway(t, testConfig(t, upstreamCfg("live", live.URL()), upstreamCfg("dead", dead.URL())), nil)

	first, _ := g.emit(cycle(0)...)
	var last uint64
	for i := 1; i < 200; i++ {
		_, last = g.emit(cycle(i)...)
	}
	g.awaitCursor("live", last+1)
	if c := g.buf.Cursor("dead"); c != first {
		t.Fatalf("dead upstream's cursor moved to %d", c)
	}
	live.Received.Await(t, wait, "every reading on the live broker", func(ms []peers.Message) bool {
		return hasAll(seqsOf(t, ms, "fg/gw"), first, last)
	})

	dead.Start()
	g.awaitCursor("dead", last+1)
	ms := dead.Received.Await(t, wait, "the backlog", func(ms []peers.Message) bool {
		return hasAll(seqsOf(t, ms, "fg/gw"), first, last)
	})
	if dups := checkOrder(t, seqsOf(t, ms, "fg/gw"), first); dups != 0 {
		t.Errorf("%d repeats without any loss of link", dups)
	}
}

// TestBrokerList checks that the brokers of urls are tried in turn.
func TestBrokerList(t *testing.T) {
	down := peers.StartMochi(t)
	down.Stop()
	up := peers.StartMochi(t)
	g := startGateway(t, testConfig(t, config.Upstream{Name: "cluster", URLs: []string{down.URL(), up.URL()}}), nil)
	g.logs.Await(t, wait, "msg=connected", readingsLink, "upstream=cluster", "broker=tcp://"+up.Addr)
	_, last := g.emit(cycle(0)...)
	g.awaitCursor("cluster", last+1)
}

// TestBirthWillStatus checks the status topics: `online` at each connect,
// the broker's will `offline` when the link drops, `offline` at a clean stop,
// adapter statuses only on change and all of them again at a reconnect.
func TestBirthWillStatus(t *testing.T) {
	m := peers.StartMosquitto(t, peers.MosquittoOptions{})
	p := peers.StartProxy(t, fmt.Sprintf("127.0.0.1:%d", m.Port))
	obs := peers.Observe(t, m.URL(), "fg/gw/status", "fg/gw/+/status")
	g := startGateway(t, testConfig(t, upstreamCfg("cloud", p.URL())), nil)
	status := func(n int, payload string) {
		t.Helper()
		obs.Await(t, wait, fmt.Sprintf("status message %d = %s", n, payload), func(ms []peers.Message) bool {
			s := topicPayloads(ms, "fg/gw/status")
			return len(s) >= n && s[n-1] == payload
		})
	}
	adapterStatus := func(adapter string, n int, match string) {
		t.Helper()
		obs.Await(t, wait, fmt.Sprintf("%s status %d", adapter, n), func(ms []peers.Message) bool {
			s := topicPayloads(ms, "fg/gw/"+adapter+"/status")
			return len(s) >= n && strings.Contains(s[n-1], match)
		})
	}

	status(1, "online")
	g.b.SetStatus("boiler", nil)
	adapterStatus("boiler", 1, `{"state":"ok"}`)
	g.b.SetStatus("boiler", errString("modbus: timeout"))
	adapterStatus("boiler", 2, `{"state":"error","error":"modbus: timeout","since":"`)
	g.b.SetStatus("boiler", errString("modbus: timeout")) // no change: not published
	g.b.SetStatus("scale", nil)
	adapterStatus("scale", 1, `{"state":"ok"}`)
	if n := len(obs.Topic("fg/gw/boiler/status")); n != 2 {
		t.Fatalf("boiler status published %d times, want 2 (unchanged status republished)", n)
	}

	p.Cut() // the broker publishes the will, the bridge reconnects
	status(2, "offline")
	status(3, "online")
	adapterStatus("boiler", 3, `"error":"modbus: timeout"`)
	adapterStatus("scale", 2, `{"state":"ok"}`)

	g.stop()
	status(4, "offline")
	late := peers.Observe(t, m.URL(), "fg/gw/status")
	if got := late.AwaitMessage(t, wait, "fg/gw/status", nil); !got.Retained || string(got.Payload) != "offline" {
		t.Errorf("retained status after the stop = %s, want offline", got)
	}
}

func topicPayloads(ms []peers.Message, topic string) []string {
	var ps []string
	for _, m := range ms {
		if m.Topic == topic {
			ps = append(ps, string(m.Payload))
		}
	}
	return ps
}

// commander is the gateway side of commands: it records every call and
// echoes the value, refusing point "ro"; with block set, calls wait for it.
type commander struct {
	mu    sync.Mutex
	calls []string // "adapter/point value kind"
	block chan struct{}
}

func (c *commander) Command(ctx context.Context, adapter, point string, v reading.Value) (reading.Value, error) {
	c.mu.Lock()
	c.calls = append(c.calls, fmt.Sprintf("%s/%s %s %s", adapter, point, v, v.Kind()))
	block := c.block
	c.mu.Unlock()
	if block != nil {
		select {
		case <-block:
		case <-ctx.Done():
			return reading.Value{}, ctx.Err()
		}
	}
	if point == "ro" {
		return reading.Value{}, fmt.Errorf("modbus %q point %q: %w", adapter, point, adapters.ErrNotWritable)
	}
	return v, nil
}

func (c *commander) called() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.calls...)
}

// TestCommands sends commands through a real broker and checks each result
// and whether the Commander was called.
func TestCommands(t *testing.T) {
	m := peers.StartMosquitto(t, peers.MosquittoOptions{})
	obs := peers.Observe(t, m.URL(), "fg/gw/+/+/set/result")
	// A command retained before the gateway connects is replayed to it by
	// the broker at subscription: it must be refused.
	obs.Publish(t, "fg/gw/boiler/retained/set", 1, true, `{"value":1,"id":"ret"}`)
	cmd := &commander{}
	g := startGateway(t, testConfig(t, upstreamCfg("cloud", m.URL())), cmd)
	g.logs.Await(t, wait, "subscribed to commands", "upstream=cloud")

	now := time.Now().UTC()
	cases := []struct {
		point, payload string
		want           string // the result's payload
		call           string // the Commander call; "" for none
	}{
		{"c1", `{"value":21.5,"id":"a1"}`, `{"id":"a1","ok":true,"value":21.5}`, "boiler/c1 21.5 float"},
		{"c2", `1`, `{"id":"","ok":true,"value":1}`, "boiler/c2 1 int"},
		{"c3", `on`, `{"id":"","ok":true,"value":"on"}`, "boiler/c3 on string"},
		{"c4", `{"value":true,"id":"f","ts":"` + now.Add(time.Hour).Format(time.RFC3339) + `"}`, `{"id":"f","ok":true,"value":true}`, "boiler/c4 true bool"},
		{"ro", `{"value":0,"id":"ro"}`, `{"id":"ro","ok":false,"error":"modbus \"boiler\" point \"ro\": point is not writable"}`, "boiler/ro 0 int"},
		{"m1", `{"value":`, `{"id":"","ok":false,"error":"malformed command: unexpected end of JSON input"}`, ""},
		{"m2", `{"id":"nv"}`, `{"id":"nv","ok":false,"error":"malformed command: no \"value\""}`, ""},
		{"m3", `"` + strings.Repeat("x", 5000) + `"`, `{"id":"","ok":false,"error":"command larger than 4 KiB (5002 bytes)"}`, ""},
		{"m4", `{"value":1,"id":"old","ts":"` + now.Add(-time.Hour).Format(time.RFC3339) + `"}`, `"id":"old","ok":false,"error":"command expired: ts `, ""},
		{"m5", `{"value":1,"id":"badts","ts":"noon"}`, `{"id":"badts","ok":false,"error":"malformed command: \"ts\" \"noon\" is not RFC 3339"}`, ""},
	}
	for _, c := range cases {
		obs.Publish(t, "fg/gw/boiler/"+c.point+"/set", 1, false, c.payload)
	}
	for _, c := range cases {
		got := obs.AwaitMessage(t, wait, "fg/gw/boiler/"+c.point+"/set/result", nil)
		if !strings.Contains(string(got.Payload), c.want) || got.Retained || got.QoS != 1 {
			t.Errorf("%s: result %s, want %s (QoS 1, not retained)", c.point, got, c.want)
		}
	}
	ret := obs.AwaitMessage(t, wait, "fg/gw/boiler/retained/set/result", nil)
	if want := `{"id":"ret","ok":false,"error":"retained command refused`; !strings.HasPrefix(string(ret.Payload), want) {
		t.Errorf("retained command: result %s, want %s…", ret, want)
	}
	var want []string
	for _, c := range cases {
		if c.call != "" {
			want = append(want, c.call)
		}
	}
	if got := cmd.called(); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("Commander calls:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	obs.Publish(t, "fg/gw/boiler/retained/set", 1, true, "") // clear the retained command
}

// TestCommandsBusy floods a Commander that is stuck: the queue fills, the
// excess is refused as busy at once, the rest runs once it is unstuck.
func TestCommandsBusy(t *testing.T) {
	m := peers.StartMochi(t)
	obs := peers.Observe(t, m.URL(), "fg/gw/+/+/set/result")
	cmd := &commander{block: make(chan struct{})}
	g := startGateway(t, testConfig(t, upstreamCfg("cloud", m.URL())), cmd)
	g.logs.Await(t, wait, "subscribed to commands", "upstream=cloud")

	const n = commandQueue + 8
	for i := range n {
		obs.Publish(t, "fg/gw/boiler/temp/set", 1, false, fmt.Sprintf(`{"value":%d,"id":"%d"}`, i, i))
	}
	busy := obs.Await(t, wait, "busy refusals", func(ms []peers.Message) bool {
		return len(ms) >= n-commandQueue-1
	})
	for _, b := range busy {
		if !strings.Contains(string(b.Payload), `"ok":false,"error":"busy`) {
			t.Fatalf("before the Commander returned: %s", b)
		}
	}
	close(cmd.block)
	ms := obs.Await(t, wait, "every result", func(ms []peers.Message) bool { return len(ms) == n })
	ok := 0
	for _, m := range ms {
		if bytes.Contains(m.Payload, []byte(`"ok":true`)) {
			ok++
		}
	}
	if calls := len(cmd.called()); calls != ok || ok < commandQueue {
		t.Errorf("%d commands succeeded, %d Commander calls; want equal and at least %d", ok, calls, commandQueue)
	}
}

// TestPasswordNotLogged runs through connects, losses and failed reconnects
// at debug level and checks no password appears in the log.
func TestPasswordNotLogged(t *testing.T) {
	m := peers.StartMochi(t)
	const secret, urlSecret = "s3cr3t-Pa55", "url-s3cr3t"
	withPassword := func(u *config.Upstream) { u.Username, u.Password = "gw", secret }
	g := startGateway(t, testConfig(t,
		upstreamCfg("cloud", m.URL(), withPassword),
		upstreamCfg("inurl", "mqtt://gw:"+urlSecret+"@"+m.Addr),
	), nil)
	g.logs.Await(t, wait, "msg=connected", readingsLink, "upstream=cloud")
	g.logs.Await(t, wait, "msg=connected", readingsLink, "upstream=inurl")
	m.Stop()
	g.logs.Await(t, wait, "cannot connect", "upstream=cloud")
	g.logs.Await(t, wait, "cannot connect", "upstream=inurl")
	m.Start()
	g.logs.Await(t, wait, "msg=connected", readingsLink, "upstream=inurl", "xxxxx")
	g.stop()
	for _, s := range []string{secret, urlSecret} {
		if strings.Contains(g.logs.String(), s) {
			t.Errorf("the log contains the password %q:\n%s", s, g.logs)
		}
	}
}

// TestTLS checks SPEC §4.7 against Mosquitto requiring client certificates:
// mutual TLS delivers; a broker certificate from an unknown CA, or a missing
// client certificate, fails with a log line that says TLS.
func TestTLS(t *testing.T) {
	dir := t.TempDir()
	ca := peers.NewCA(t, dir, "ca")
	other := peers.NewCA(t, dir, "other-ca")
	srvCert, srvKey := ca.Issue(t, dir, "broker", true)
	cliCert, cliKey := ca.Issue(t, dir, "gw", false)
	m := peers.StartMosquitto(t, peers.MosquittoOptions{TLS: &peers.MosquittoTLS{
		CAFile: ca.CertFile, CertFile: srvCert, KeyFile: srvKey, RequireCertificate: true,
	}})
	obs := peers.Observe(t, m.URL(), "fg/gw/#")
	withTLS := func(c config.TLS) func(*config.Upstream) {
		return func(u *config.Upstream) { u.TLS = &c }
	}
	g := startGateway(t, testConfig(t,
		upstreamCfg("good", m.TLSURL(), withTLS(config.TLS{CAFile: ca.CertFile, CertFile: cliCert, KeyFile: cliKey})),
		upstreamCfg("badca", m.TLSURL(), withTLS(config.TLS{CAFile: other.CertFile, CertFile: cliCert, KeyFile: cliKey})),
		upstreamCfg("nocert", m.TLSURL(), withTLS(config.TLS{CAFile: ca.CertFile, ServerName: "localhost"})),
		upstreamCfg("insecure", m.TLSURL(), withTLS(config.TLS{CertFile: cliCert, KeyFile: cliKey, InsecureSkipVerify: true})),
	), nil)

	_, last := g.emit(cycle(0)...)
	g.awaitCursor("good", last+1)
	g.awaitCursor("insecure", last+1)
	g.logs.Await(t, wait, "level=WARN", "upstream=insecure", "insecure_skip_verify")
	obs.AwaitMessage(t, wait, "fg/gw/boiler/temp", nil)
	line := g.logs.Await(t, wait, "upstream=badca", "TLS: ", "x509: certificate signed by unknown authority")
	if !strings.Contains(line, "level=ERROR") {
		t.Errorf("TLS failure not logged as an error: %s", line)
	}
	g.logs.Await(t, wait, "upstream=nocert", "TLS: ", "remote error")
	if c := g.buf.Cursor("badca"); c > 1 {
		t.Errorf("cursor of the refused upstream moved to %d", c)
	}
}

// TestReload changes one upstream, adds one, removes one and leaves one
// alone, which must keep its connection and pick up a new unit live.
func TestReload(t *testing.T) {
	m := peers.StartMochi(t)
	obs := peers.Observe(t, m.URL(), "fg/A/#")
	prefix := func(p string) func(*config.Upstream) { return func(u *config.Upstream) { u.TopicPrefix = p } }
	v1 := testConfig(t, upstreamCfg("A", m.URL(), prefix("fg/A")), upstreamCfg("B", m.URL(), prefix("fg/B")), upstreamCfg("D", m.URL(), prefix("fg/D")))
	g := startGateway(t, v1, nil)
	for _, u := range []string{"A", "B", "D"} {
		g.logs.Await(t, wait, "msg=connected", readingsLink, "upstream="+u)
	}

	kelvin := strings.Replace(testAdapters, `unit = "degC"`, `unit = "K"`, 1)
	v2 := mustLoad(t, kelvin, upstreamCfg("A", m.URL(), prefix("fg/A")), upstreamCfg("B", m.URL(), prefix("fg/B"), qos(2)), upstreamCfg("C", m.URL(), prefix("fg/C")))
	if err := g.buf.SetUpstreams([]string{"A", "B", "C"}); err != nil { // as the gateway does
		t.Fatal(err)
	}
	if err := g.b.Reload(v2); err != nil {
		t.Fatal(err)
	}
	_, last := g.emit(cycle(7)...)
	for _, u := range []string{"A", "B", "C"} {
		g.awaitCursor(u, last+1)
	}
	// B, now at QoS 2, connects twice more: once clean to end its old
	// session, then for good.
	for id, want := range map[string]int{"gw-A": 1, "gw-B": 3, "gw-C": 1, "gw-D": 1} {
		if got := m.Connects(id); got != want {
			t.Errorf("%s connected %d times, want %d", id, got, want)
		}
	}
	if got := obs.AwaitMessage(t, wait, "fg/A/boiler/temp", nil); !bytes.Contains(got.Payload, []byte(`"unit":"K"`)) {
		t.Errorf("after the reload: %s, want the new unit", got)
	}
	m.Received.AwaitMessage(t, wait, "fg/D/status", func(p []byte) bool { return string(p) == "offline" })
	bad := testConfig(t, upstreamCfg("x", m.URL()))
	bad.Upstream[0].URLs = []string{"gopher://x"} // past config.Load, which refuses it
	if err := g.b.Reload(bad); err == nil {
		t.Error("a bad config was accepted")
	}
}

// TestReloadWaitsAlone: while a reload waits for an upstream it replaces
// to stop (here over a silent link, which takes the stop budget), the
// bridge still answers: the metrics list the upstreams, adapters announce
// points.
func TestReloadWaitsAlone(t *testing.T) {
	m := peers.StartMochi(t)
	p := peers.StartProxy(t, m.Addr)
	g := startGateway(t, testConfig(t, upstreamCfg("slow", p.URL()), upstreamCfg("other", m.URL())), nil)
	g.logs.Await(t, wait, "msg=connected", readingsLink, "upstream=slow")
	p.Silence() // nothing is confirmed: the stop waits for `offline` its whole budget
	_, last := g.emit(cycle(0)...)

	done := make(chan error, 1)
	go func() {
		done <- g.b.Reload(testConfig(t, upstreamCfg("slow", p.URL(), qos(2)), upstreamCfg("other", m.URL())))
	}()
	deadline := time.Now().Add(wait)
	for slices.ContainsFunc(g.b.Upstreams(), func(u UpstreamState) bool { return u.Name == "slow" }) {
		if time.Now().After(deadline) {
			t.Fatal("the replaced upstream is still listed")
		}
		runtime.Gosched()
	}
	g.b.SetPoints("boiler", []reading.Point{{Adapter: "boiler", Name: "extra", Type: "float64", Scale: 1}})
	select {
	case err := <-done:
		t.Fatalf("the reload ended (%v) before the test could look: the replaced upstream stopped at once", err)
	default:
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	g.awaitCursor("slow", last+1) // the new upstream, on a new connection
}

// TestStopBounded stops the bridge while one upstream is stuck connecting to
// a broker that never answers: Run still returns within 5 s, and the healthy
// upstream says offline.
func TestStopBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("waits out the stop budget: left out by -short")
	}
	m := peers.StartMochi(t)
	g := startGateway(t, testConfig(t, upstreamCfg("ok", m.URL()), upstreamCfg("stuck", "mqtt://"+peers.Silent(t))), nil)
	g.logs.Await(t, wait, "msg=connected", readingsLink, "upstream=ok")
	_, last := g.emit(cycle(0)...)
	g.awaitCursor("ok", last+1)
	if d := g.stop(); d > 5*time.Second {
		t.Errorf("Run returned %v after the stop, want ≤ 5s", d)
	}
	m.Received.AwaitMessage(t, wait, "fg/gw/status", func(p []byte) bool { return string(p) == "offline" })
}
