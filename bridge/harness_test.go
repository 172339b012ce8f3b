package bridge

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/fieldgate/fieldgate/adapters/all" // the adapter kinds the test configs use

	"github.com/fieldgate/fieldgate/buffer"
	"github.com/fieldgate/fieldgate/config"
	"github.com/fieldgate/fieldgate/internal/reading"
	"github.com/fieldgate/fieldgate/test/peers"
)

// wait bounds every event a test awaits.
const wait = 20 * time.Second

// readingsLink is in the "connected" line of an upstream's readings
// connection and not in its command link's.
const readingsLink = "backlog_from="

// gateway is a bridge under test, reading a real buffer, with its log
// captured.
type gateway struct {
	t      *testing.T
	buf    *buffer.Buffer
	acks   *ackWatch
	logs   *peers.Lines
	b      *Bridge
	cancel context.CancelFunc
	done   chan error
}

// startGateway runs a bridge for cfg until the test ends.
func startGateway(t *testing.T, cfg *config.Config, cmd Commander, opts ...Option) *gateway {
	t.Helper()
	var names []string
	for _, u := range cfg.Upstream {
		names = append(names, u.Name)
	}
	buf, err := buffer.Open(t.TempDir(), names, buffer.Options{Fsync: buffer.FsyncNever})
	if err != nil {
		t.Fatal(err)
	}
	g := &gateway{t: t, buf: buf, acks: &ackWatch{Buffer: buf, acked: make(chan struct{})}, logs: &peers.Lines{}, done: make(chan error, 1)}
	logger := slog.New(slog.NewTextHandler(g.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	g.b = New(cfg, g.acks, cmd, logger, opts...)
	ctx, cancel := context.WithCancel(context.Background())
	g.cancel = cancel
	go func() { g.done <- g.b.Run(ctx) }()
	t.Cleanup(func() {
		g.stop()
		_ = buf.Close()
		if t.Failed() {
			t.Logf("bridge log:\n%s", g.logs)
		}
	})
	return g
}

// stop stops the bridge and returns how long Run took to return.
func (g *gateway) stop() time.Duration {
	g.t.Helper()
	if g.cancel == nil {
		return 0
	}
	start := time.Now()
	g.cancel()
	g.cancel = nil
	select {
	case err := <-g.done:
		if err != nil {
			g.t.Errorf("Run: %v", err)
		}
	case <-time.After(wait):
		g.t.Fatalf("Run did not return within %v of the stop", wait)
	}
	return time.Since(start)
}

// emit hands the bridge one poll cycle as the gateway does: Observe, then
// Append.
func (g *gateway) emit(rs ...reading.Reading) (first, last uint64) {
	g.t.Helper()
	g.b.Observe(rs)
	first, last, err := g.buf.Append(rs)
	if err != nil {
		g.t.Fatal(err)
	}
	return first, last
}

// awaitCursor waits until upstream has confirmed every seq below next.
func (g *gateway) awaitCursor(upstream string, next uint64) {
	g.t.Helper()
	deadline := time.After(wait)
	for {
		acked := g.acks.next()
		if c := g.buf.Cursor(upstream); c >= next {
			return
		}
		select {
		case <-acked:
		case <-deadline:
			g.t.Fatalf("upstream %s: cursor %d, want %d within %v", upstream, g.buf.Cursor(upstream), next, wait)
		}
	}
}

// ackWatch is the buffer, with an event at each Ack so tests need not poll.
type ackWatch struct {
	*buffer.Buffer
	mu    sync.Mutex
	acked chan struct{} // closed and replaced at each Ack
}

func (a *ackWatch) Ack(upstream string, next uint64) error {
	err := a.Buffer.Ack(upstream, next)
	a.mu.Lock()
	close(a.acked)
	a.acked = make(chan struct{})
	a.mu.Unlock()
	return err
}

func (a *ackWatch) next() <-chan struct{} {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.acked
}

// testAdapters are the adapters of testConfig: boiler, whose points have
// units, and scale, whose point has none.
const testAdapters = `
[[modbus]]
name = "boiler"
url = "tcp://127.0.0.1:502"
point = [
  { name = "temp", table = "holding_register", type = "float32", unit = "degC", writable = true },
  { name = "pressure", table = "input_register", address = 2, unit = "bar" },
]
[[serial]]
name = "scale"
port = "/dev/ttyFG0"
point = [{ name = "weight", pattern = "(.*)", type = "string" }]
`

// testConfig is a gateway "gw" with prefix fg/gw, testAdapters and the given
// upstreams.
func testConfig(t *testing.T, ups ...config.Upstream) *config.Config {
	t.Helper()
	return mustLoad(t, testAdapters, ups...)
}

func mustLoad(t *testing.T, adapters string, ups ...config.Upstream) *config.Config {
	t.Helper()
	cfg, err := loadConfig(t, adapters, ups...)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// loadConfig writes a config file for gateway "gw" with prefix fg/gw, the
// adapter tables in adapters and ups as [[upstream]] tables, each with the
// keys whose fields are set, and loads it as the gateway does.
func loadConfig(t *testing.T, adapters string, ups ...config.Upstream) (*config.Config, error) {
	t.Helper()
	var b strings.Builder
	b.WriteString("[gateway]\nid = \"gw\"\ntopic_prefix = \"fg/gw\"\n")
	for _, u := range ups {
		b.WriteString("[[upstream]]\n")
		for _, kv := range tomlKeys(reflect.ValueOf(u)) {
			b.WriteString(kv + "\n")
		}
	}
	b.WriteString(adapters)
	path := filepath.Join(t.TempDir(), "fieldgate.toml")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return config.Load(path)
}

// tomlKeys renders the set fields of struct v as "key = value", by their
// toml tags.
func tomlKeys(v reflect.Value) []string {
	var kvs []string
	for i := range v.NumField() {
		if f := v.Field(i); !f.IsZero() {
			kvs = append(kvs, v.Type().Field(i).Tag.Get("toml")+" = "+tomlValue(f))
		}
	}
	return kvs
}

func tomlValue(v reflect.Value) string {
	switch {
	case v.Type() == reflect.TypeFor[config.Duration]():
		return strconv.Quote(time.Duration(v.Int()).String())
	case v.Kind() == reflect.Pointer:
		return tomlValue(v.Elem())
	case v.Kind() == reflect.Struct: // an inline table
		return "{ " + strings.Join(tomlKeys(v), ", ") + " }"
	case v.Kind() == reflect.Slice:
		var vs []string
		for i := range v.Len() {
			vs = append(vs, tomlValue(v.Index(i)))
		}
		return "[" + strings.Join(vs, ", ") + "]"
	case v.Kind() == reflect.String: // also a Secret, in clear
		return strconv.Quote(v.String())
	}
	return fmt.Sprint(v.Interface()) // bool, int
}

// upstreamCfg is an [[upstream]] with the fastest reconnects config allows,
// modified by opts.
func upstreamCfg(name, url string, opts ...func(*config.Upstream)) config.Upstream {
	u := config.Upstream{Name: name, URL: url, ReconnectMax: config.Duration(time.Second)}
	for _, o := range opts {
		o(&u)
	}
	return u
}

func qos(q int) func(*config.Upstream)       { return func(u *config.Upstream) { u.QoS = &q } }
func format(f string) func(*config.Upstream) { return func(u *config.Upstream) { u.Format = f } }
func clean(u *config.Upstream)               { u.CleanSession = true }
func retain(u *config.Upstream)              { u.Retain = true }
func batchMax(n int) func(*config.Upstream)  { return func(u *config.Upstream) { u.BatchMax = n } }
func reconnectMax(d time.Duration) func(*config.Upstream) {
	return func(u *config.Upstream) { u.ReconnectMax = config.Duration(d) }
}

// cycle is one poll cycle of the boiler: temp and pressure, values from i.
func cycle(i int) []reading.Reading {
	now := time.Now()
	return []reading.Reading{
		{Adapter: "boiler", Point: "temp", Time: now, Value: reading.Float(20 + float64(i)/10)},
		{Adapter: "boiler", Point: "pressure", Time: now, Value: reading.Int(int64(i))},
	}
}

// payloadReading is a "json" payload as a consumer decodes it.
type payloadReading struct {
	Point string          `json:"point"`
	Value json.RawMessage `json:"value"`
	TS    string          `json:"ts"`
	Seq   uint64          `json:"seq"`
	Unit  string          `json:"unit"`
}

// seqsOf decodes the seqs carried by reading messages of a json, batch or
// compact upstream (any topic under prefix except status, command and
// dictionary topics), in arrival order.
func seqsOf(t testing.TB, ms []peers.Message, prefix string) []uint64 {
	t.Helper()
	var seqs []uint64
	for _, m := range ms {
		if !isReadingTopic(m.Topic, prefix) {
			continue
		}
		var rs []payloadReading
		switch {
		case bytes.Contains(m.Payload, []byte(`"values":`)):
			var c compactData
			if err := json.Unmarshal(m.Payload, &c); err != nil {
				t.Fatalf("%s: %v", m, err)
			}
			for i := range c.Values {
				seqs = append(seqs, c.Seq+uint64(i))
			}
			continue
		case bytes.HasPrefix(m.Payload, []byte("[")):
			if err := json.Unmarshal(m.Payload, &rs); err != nil {
				t.Fatalf("%s: %v", m, err)
			}
		default:
			var r payloadReading
			if err := json.Unmarshal(m.Payload, &r); err != nil {
				t.Fatalf("%s: %v", m, err)
			}
			rs = append(rs, r)
		}
		for _, r := range rs {
			seqs = append(seqs, r.Seq)
		}
	}
	return seqs
}

func isReadingTopic(topic, prefix string) bool {
	rest, ok := strings.CutPrefix(topic, prefix+"/")
	return ok && rest != "status" && !strings.HasSuffix(rest, "/status") &&
		!strings.HasSuffix(rest, "/set") && !strings.HasSuffix(rest, "/set/result") && !strings.HasSuffix(rest, dictSuffix)
}

// hasAll reports whether seqs contains every seq in [from, to].
func hasAll(seqs []uint64, from, to uint64) bool {
	seen := map[uint64]bool{}
	for _, s := range seqs {
		seen[s] = true
	}
	for s := from; s <= to; s++ {
		if !seen[s] {
			return false
		}
	}
	return true
}

// checkOrder verifies SPEC §4.3 on a stream of seqs starting at first: no
// seq arrives before every earlier one has, so the only disorder is a
// repeat; it returns how many repeats there were.
func checkOrder(t testing.TB, seqs []uint64, first uint64) (dups int) {
	t.Helper()
	next := first // lowest seq not seen yet
	for i, s := range seqs {
		switch {
		case s == next:
			next++
		case s < next:
			dups++
		default:
			t.Fatalf("seq %d arrived (at %d) before seq %d: %v", s, i, next, window(seqs, i))
		}
	}
	return dups
}

func window(seqs []uint64, i int) string {
	lo, hi := max(0, i-5), min(len(seqs), i+5)
	return fmt.Sprint(seqs[lo:hi])
}
