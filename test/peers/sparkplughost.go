package peers

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"
)

// SparkplugHostOptions configures a test's Sparkplug host application.
type SparkplugHostOptions struct {
	BrokerURL string // mqtt://host:port
	Group     string // the edge node's group id
	EdgeNode  string // the edge node id it follows
	// HostID makes it a primary host application: its will is STATE
	// offline, and it publishes STATE online (retained, QoS 1) once
	// subscribed.
	HostID string
}

// SparkplugHost is test/sparkplughost, a Sparkplug B host application on
// Node.js built on Eclipse Tahu's sparkplug-payload, run as a subprocess:
// it follows one edge node, checks every message against the Sparkplug 3.0
// rules (birth before data, seq continuity, bdSeq of NBIRTH and NDEATH,
// aliases resolving, value fields matching datatypes) and reports what it
// saw and found as events; it sends NCMD, DCMD and STATE on request. It
// shares no code with fieldgate's encoder.
type SparkplugHost struct {
	t     testing.TB
	proc  *Process
	out   Lines // stdout: one JSON event a line
	log   Lines // stderr
	mu    sync.Mutex
	stdin io.WriteCloser
	id    int
}

// SparkplugEvent is one line the host printed.
type SparkplugEvent struct {
	Event  string `json:"event"` // ready, connected, subscribed, message, state, sent, error
	Topic  string `json:"topic"`
	Type   string `json:"type"`   // NBIRTH, DDATA, …
	Device string `json:"device"` // of a D* message
	QoS    int    `json:"qos"`
	Retain bool   `json:"retain"`
	// Seq and Timestamp are the payload's (nil when it has none).
	Seq       *uint64           `json:"seq"`
	Timestamp *uint64           `json:"timestamp"`
	Metrics   []SparkplugMetric `json:"metrics"`
	// Problems are the rules this message broke, in the host's words.
	Problems []string `json:"problems"`
	// BdSeq is the bdSeq metric of an NBIRTH or NDEATH.
	BdSeq *int64 `json:"bdSeq"`
	// Rebirth marks an NBIRTH with the bdSeq of the session before it.
	Rebirth bool `json:"rebirth"`
	// BdSeqMatchesBirth says an NDEATH ends the session of the last NBIRTH.
	BdSeqMatchesBirth *bool `json:"bdSeqMatchesBirth"`
	// AfterRebirthRequest marks data that arrived after the host asked for
	// a rebirth and before the NBIRTH answering it.
	AfterRebirthRequest bool `json:"afterRebirthRequest"`
	// Online is a STATE message's flag.
	Online *bool `json:"online"`
	// ID and Message belong to sent and error events: the command's id,
	// and why it was not sent.
	ID      int    `json:"id"`
	Message string `json:"message"`
}

// SparkplugMetric is one metric of a message as the host decoded it.
type SparkplugMetric struct {
	Name     string  `json:"name"`
	Alias    *uint64 `json:"alias"`
	Resolved string  `json:"resolved"` // the name, also for a metric sent by alias
	Datatype string  `json:"datatype"` // as the metric states it; "" in DATA
	Field    string  `json:"field"`    // the protobuf value field: intValue, doubleValue, …
	// Value is a JSON number, boolean or string (64-bit integers as
	// decimal strings), read as the birth's datatype; null for a null.
	Value        json.RawMessage              `json:"value"`
	IsNull       bool                         `json:"isNull"`
	IsHistorical bool                         `json:"isHistorical"`
	Timestamp    *uint64                      `json:"timestamp"`
	Properties   map[string]SparkplugProperty `json:"properties"`
}

// SparkplugProperty is one entry of a metric's PropertySet.
type SparkplugProperty struct {
	Type  string          `json:"type"`
	Value json.RawMessage `json:"value"`
}

// Text is the value as fieldgate's "value" format would print it: numbers
// and booleans as they are, strings unquoted.
func (m SparkplugMetric) Text() string {
	var s string
	if json.Unmarshal(m.Value, &s) == nil {
		return s
	}
	return string(m.Value)
}

// Metric returns the metric of an event whose name, or the name its alias
// resolves to, is name.
func (e SparkplugEvent) Metric(name string) (SparkplugMetric, bool) {
	for _, m := range e.Metrics {
		if m.Resolved == name || m.Name == name {
			return m, true
		}
	}
	return SparkplugMetric{}, false
}

func (e SparkplugEvent) String() string {
	b, _ := json.Marshal(e)
	return string(b)
}

// sparkplugHostDir is test/sparkplughost, found from this file so any
// test package can start the host.
func sparkplugHostDir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "sparkplughost")
}

// StartSparkplugHost starts the host and returns once it has subscribed
// (and, as a primary host, published its STATE); it stops when the test
// ends. Without node or the host's npm packages (npm ci --prefix
// test/sparkplughost) the test fails under CI=true and is skipped
// otherwise.
func StartSparkplugHost(t testing.TB, opts SparkplugHostOptions) *SparkplugHost {
	t.Helper()
	dir := sparkplugHostDir()
	nodeBin, err := exec.LookPath("node")
	if err == nil {
		_, err = os.Stat(filepath.Join(dir, "node_modules", "sparkplug-payload"))
	}
	if err != nil {
		Missing(t, "the Sparkplug host needs node and its packages (apt-get install nodejs npm; npm ci --prefix test/sparkplughost): %v", err)
	}
	args := []string{filepath.Join(dir, "host.mjs"), "--url", opts.BrokerURL, "--group", opts.Group, "--node", opts.EdgeNode}
	if opts.HostID != "" {
		args = append(args, "--host-id", opts.HostID)
	}
	h := &SparkplugHost{t: t}
	cmd := exec.Command(nodeBin, args...)
	cmd.Stdout, cmd.Stderr = &h.out, &h.log
	if h.stdin, err = cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	h.proc, err = StartProcess(t, cmd, &h.out, `"event":"ready"`, 15*time.Second)
	if err != nil {
		t.Fatalf("%v\nstderr:\n%s", err, &h.log)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("Sparkplug host saw:\n%s\nstderr:\n%s", &h.out, &h.log)
		}
	})
	return h
}

// Len is how many events the host has reported so far: pass it to
// AwaitSince to wait for what comes after.
func (h *SparkplugHost) Len() int { return h.out.Len() }

// Events returns the events so far, in order.
func (h *SparkplugHost) Events() []SparkplugEvent {
	lines, _ := h.out.Since(0)
	return h.parse(lines)
}

// Messages returns the edge node messages (NBIRTH … DDEATH) so far.
func (h *SparkplugHost) Messages() []SparkplugEvent {
	var ms []SparkplugEvent
	for _, e := range h.Events() {
		if e.Event == "message" {
			ms = append(ms, e)
		}
	}
	return ms
}

// Problems lists every problem the host has found so far, each with its
// message's topic and seq.
func (h *SparkplugHost) Problems() []string {
	var ps []string
	for _, e := range h.Events() {
		for _, p := range e.Problems {
			seq := "-"
			if e.Seq != nil {
				seq = strconv.FormatUint(*e.Seq, 10)
			}
			ps = append(ps, fmt.Sprintf("%s seq %s: %s", e.Topic, seq, p))
		}
	}
	return ps
}

func (h *SparkplugHost) parse(lines []string) []SparkplugEvent {
	es := make([]SparkplugEvent, 0, len(lines))
	for _, l := range lines {
		var e SparkplugEvent
		if err := json.Unmarshal([]byte(l), &e); err != nil {
			h.t.Errorf("Sparkplug host printed %q: %v", l, err)
			continue
		}
		es = append(es, e)
	}
	return es
}

// Await waits for an event, reported so far or to come, that match
// accepts and returns the first; it fails the test after timeout.
func (h *SparkplugHost) Await(t testing.TB, timeout time.Duration, what string, match func(SparkplugEvent) bool) SparkplugEvent {
	t.Helper()
	return h.AwaitSince(t, 0, timeout, what, match)
}

// AwaitSince is Await for the events from the from-th (0-based) on.
func (h *SparkplugHost) AwaitSince(t testing.TB, from int, timeout time.Duration, what string, match func(SparkplugEvent) bool) SparkplugEvent {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for next := from; ; {
		lines, more := h.out.Since(next)
		for _, e := range h.parse(lines) {
			if match(e) {
				return e
			}
		}
		next += len(lines)
		select {
		case <-more:
		case <-h.proc.Done():
			t.Fatalf("Sparkplug host exited while waiting for %s: %v\nstderr:\n%s", what, h.proc.Err(), &h.log)
		case <-deadline.C:
			t.Fatalf("waited %v for %s; the host saw:\n%s", timeout, what, &h.out)
		}
	}
}

// SparkplugWrite is one metric of a DCMD or NCMD: by Name, or by Alias
// when it is set. Type overrides the datatype the births declared (to send
// a wrong one).
type SparkplugWrite struct {
	Name  string  `json:"name,omitempty"`
	Alias *uint64 `json:"alias,omitempty"`
	Type  string  `json:"type,omitempty"`
	Value any     `json:"value"`
}

// Rebirth sends NCMD Node Control/Rebirth = true and returns once it is
// on its way to the broker.
func (h *SparkplugHost) Rebirth(t testing.TB) {
	t.Helper()
	h.command(t, map[string]any{"cmd": "rebirth"})
}

// DCMD sends a device command.
func (h *SparkplugHost) DCMD(t testing.TB, device string, ws ...SparkplugWrite) {
	t.Helper()
	h.command(t, map[string]any{"cmd": "dcmd", "device": device, "metrics": ws})
}

// NCMD sends an edge node command.
func (h *SparkplugHost) NCMD(t testing.TB, ws ...SparkplugWrite) {
	t.Helper()
	h.command(t, map[string]any{"cmd": "ncmd", "metrics": ws})
}

// State publishes the host's STATE, retained at QoS 1, with the
// timestamp of its birth (or ts, when not 0), and returns once the broker
// has it. Only a primary host (HostID) can.
func (h *SparkplugHost) State(t testing.TB, online bool, ts uint64) {
	t.Helper()
	c := map[string]any{"cmd": "state", "online": online}
	if ts != 0 {
		c["timestamp"] = ts
	}
	h.command(t, c)
}

func (h *SparkplugHost) command(t testing.TB, c map[string]any) {
	t.Helper()
	h.mu.Lock()
	h.id++
	id := h.id
	c["id"] = id
	line, err := json.Marshal(c)
	if err == nil {
		_, err = h.stdin.Write(append(line, '\n'))
	}
	h.mu.Unlock()
	if err != nil {
		t.Fatalf("Sparkplug host command: %v", err)
	}
	e := h.Await(t, 10*time.Second, "the host to send "+string(line), func(e SparkplugEvent) bool {
		return (e.Event == "sent" || e.Event == "error") && e.ID == id
	})
	if e.Event == "error" {
		t.Fatalf("Sparkplug host refused %s: %s", line, e.Message)
	}
}
