package gpio

import (
	"bytes"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fieldgate/fieldgate/internal/reading"

	"github.com/warthog618/go-gpiocdev"

	"github.com/fieldgate/fieldgate/adapters"
	"github.com/fieldgate/fieldgate/adapters/adapterstest"
	"github.com/fieldgate/fieldgate/internal/statefile"
)

// logBuffer is a logger's output, for the test to read or await.
type logBuffer struct {
	mu      sync.Mutex
	b       bytes.Buffer
	changed chan struct{} // closed at the next write; nil until awaited
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.changed != nil {
		close(l.changed)
		l.changed = nil
	}
	return l.b.Write(p)
}

// await waits until the log contains s.
func (l *logBuffer) await(t *testing.T, s string) {
	t.Helper()
	timeout := time.After(adapterstest.Timeout)
	for {
		l.mu.Lock()
		if strings.Contains(l.b.String(), s) {
			l.mu.Unlock()
			return
		}
		if l.changed == nil {
			l.changed = make(chan struct{})
		}
		changed := l.changed
		l.mu.Unlock()
		select {
		case <-changed:
		case <-timeout:
			t.Fatalf("log:\n%s\nnothing saying %s within %v", l, s, adapterstest.Timeout)
		}
	}
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func newLog() (*slog.Logger, *logBuffer) {
	lb := &logBuffer{}
	return slog.New(slog.NewTextHandler(lb, nil)), lb
}

// onDisk returns the totals a fresh load of path finds, as a restarted
// gateway would.
func onDisk(t *testing.T, path string) map[string]uint64 {
	t.Helper()
	f := statefile.New(path, counterFormat)
	defer f.Close()
	body, err := f.Load()
	if err != nil {
		t.Fatal(err)
	}
	counts, err := decodeCounts(body)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return counts
}

// saved returns a counter file's contents after bodies were saved to it in
// turn.
func saved(t *testing.T, bodies ...string) []byte {
	t.Helper()
	path := filepath.Join(t.TempDir(), "saved.counters")
	f := statefile.New(path, counterFormat)
	for _, b := range bodies {
		if err := f.Save([]byte(b)); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func add(t *testing.T, c *counterFile, point string, n uint64) uint64 {
	t.Helper()
	total, err := c.add(point, n)
	if err != nil {
		t.Fatal(err)
	}
	return total
}

func TestCounterFileRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "gpio-io.counters")
	log, lb := newLog()
	c := openCounterFile(statefile.New(path, counterFormat), log)
	if got := c.total("water"); got != 0 {
		t.Fatalf("new file: total %d", got)
	}
	for i := range 5 {
		add(t, c, "water", 1)
		add(t, c, "energy", uint64(i))
	}
	if got := add(t, c, "water", 1); got != 6 {
		t.Errorf("add returned %d, want 6", got)
	}
	if st, err := os.Stat(path); err != nil || st.Size() != 2*int64(counterFormat.Align) {
		t.Errorf("file %v (%v), want two slots of %d bytes", st, err, counterFormat.Align)
	}
	// A name long enough to outgrow the slot makes the file be replaced.
	long := strings.Repeat("x", 2*counterFormat.Align)
	add(t, c, long, 3)
	add(t, c, "water", 1)
	if err := c.close(); err != nil {
		t.Fatal(err)
	}

	c = openCounterFile(statefile.New(path, counterFormat), log)
	defer c.close()
	for point, want := range map[string]uint64{"water": 7, "energy": 10, long: 3, "gas": 0} {
		if got := c.total(point); got != want {
			t.Errorf("reopened: %.10s = %d, want %d", point, got, want)
		}
	}
	if got := add(t, c, "water", 1); got != 8 {
		t.Errorf("after reopening, add returned %d, want 8", got)
	}
	if lb.String() != "" {
		t.Errorf("logged on a healthy file:\n%s", lb)
	}
}

// TestCounterFileTornWrite spoils the newest slot as a power cut during its
// write would (statefile's tests tear it every way): the total before it is
// loaded, without a warning, and counting goes on from it.
func TestCounterFileTornWrite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "gpio-io.counters")
	log, lb := newLog()
	c := openCounterFile(statefile.New(path, counterFormat), log)
	for range 6 {
		add(t, c, "water", 1)
	}
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	add(t, c, "water", 1)
	c.close()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	half := len(data) / 2
	newest := data[:half]
	if bytes.Equal(newest, before[:half]) {
		newest = data[half:]
	}
	clear(newest) // never written
	if err := os.WriteFile(path, data, 0o640); err != nil {
		t.Fatal(err)
	}
	c = openCounterFile(statefile.New(path, counterFormat), log)
	defer c.close()
	if got := c.total("water"); got != 6 {
		t.Errorf("total %d after tearing the newest slot, want the previous 6", got)
	}
	if got := add(t, c, "water", 1); got != 7 || onDisk(t, path)["water"] != 7 {
		t.Errorf("counting on: %d, on disk %d; want 7", got, onDisk(t, path)["water"])
	}
	if lb.String() != "" {
		t.Errorf("logged for a torn slot:\n%s", lb)
	}
}

// TestCounterFileUnreadable: a file with no valid slot, or with totals in a
// format this code does not know, is kept aside, a warning logged, and
// counting starts from 0 in a fresh file.
func TestCounterFileUnreadable(t *testing.T) {
	tests := []struct {
		name string
		data func(t *testing.T) []byte
	}{
		{"empty", func(*testing.T) []byte { return nil }},
		{"garbage", func(*testing.T) []byte { return bytes.Repeat([]byte("fieldgate"), 100) }},
		{"both slots spoilt", func(t *testing.T) []byte {
			return bytes.ReplaceAll(saved(t, "water 41\n", "water 42\n"), []byte("water 4"), []byte("water 5"))
		}},
		{"truncated in the record", func(t *testing.T) []byte {
			d := saved(t, "water 41\n")
			return d[:bytes.Index(d, []byte("water"))+2]
		}},
		{"unknown body", func(t *testing.T) []byte { return saved(t, "water=41\n") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "gpio-io.counters")
			bad := tt.data(t)
			if err := os.WriteFile(path, bad, 0o640); err != nil {
				t.Fatal(err)
			}
			log, lb := newLog()
			c := openCounterFile(statefile.New(path, counterFormat), log)
			defer c.close()
			if got := c.total("water"); got != 0 {
				t.Errorf("total %d, want 0", got)
			}
			if !strings.Contains(lb.String(), "level=WARN") || !strings.Contains(lb.String(), "unreadable") {
				t.Errorf("log %q, want a warning", lb)
			}
			if kept, err := os.ReadFile(path + ".bad"); err != nil || !bytes.Equal(kept, bad) {
				t.Errorf("the unreadable file was not kept as .bad (%v)", err)
			}
			if got := add(t, c, "water", 1); got != 1 || onDisk(t, path)["water"] != 1 {
				t.Errorf("counting on: %d, on disk %d; want 1", got, onDisk(t, path)["water"])
			}
		})
	}
}

// diskEmitter records, as each reading is emitted, the total the state file
// holds at that moment.
type diskEmitter struct {
	adapterstest.Recorder
	t      *testing.T
	path   string
	onDisk []uint64
}

func (d *diskEmitter) Emit(rs []reading.Reading) {
	d.onDisk = append(d.onDisk, onDisk(d.t, d.path)[rs[0].Point])
	d.Recorder.Emit(rs)
}

// event is one edge event as the kernel numbers it.
type event struct {
	rising bool
	seqno  uint32
}

// handler builds an adapter with the one point pt on a chip that is never
// opened, and returns the edge handler gpiocdev would call for it.
func handler(t *testing.T, pt PointConfig, env adapters.Env, e adapters.Emitter) (*Adapter, func(event)) {
	t.Helper()
	a, err := New(&Config{Name: "io", Chip: "gpiochip0", Points: []PointConfig{pt}}, env)
	if err != nil {
		t.Fatal(err)
	}
	if a.countsFile != nil {
		a.counts = openCounterFile(a.countsFile, a.log)
		t.Cleanup(func() { a.counts.close() })
	}
	h := (&session{adapter: a.name, counts: a.counts}).onEdge(a, a.points[0], e)
	return a, func(ev event) {
		typ := gpiocdev.LineEventFallingEdge
		if ev.rising {
			typ = gpiocdev.LineEventRisingEdge
		}
		h(gpiocdev.LineEvent{Offset: pt.Line, Timestamp: monotonicNow(t), Type: typ, Seqno: ev.seqno, LineSeqno: ev.seqno})
	}
}

func TestPersistBeforeEmit(t *testing.T) {
	dir := t.TempDir()
	e := &diskEmitter{t: t, path: filepath.Join(dir, "gpio-io.counters")}
	_, edge := handler(t, PointConfig{Name: "water", Counter: true}, adapters.Env{State: stateDir(t, dir)}, e)
	for i := range uint32(20) {
		edge(event{true, i + 1})
	}
	for i := range uint64(20) {
		x, _ := e.NextReading(t)
		if x.Value != reading.Uint(i+1) || e.onDisk[i] != i+1 {
			t.Fatalf("reading %d: %v emitted while the file held %d; want both %d", i, x.Value, e.onDisk[i], i+1)
		}
	}
}

func TestCountEvents(t *testing.T) {
	U, B := reading.Uint, reading.Bool
	tests := []struct {
		name    string
		point   PointConfig
		events  []event
		want    []reading.Value
		wantLog string // in the log; "" for nothing logged
	}{
		{"rising", PointConfig{Counter: true},
			[]event{{true, 1}, {true, 2}, {true, 3}}, []reading.Value{U(1), U(2), U(3)}, ""},
		{"rising, events dropped", PointConfig{Counter: true, Edge: "rising"},
			[]event{{true, 1}, {true, 4}, {true, 5}}, []reading.Value{U(1), U(4), U(5)}, "level=WARN msg=\"gpio edge events lost (kernel buffer overflow); counted"},
		{"rising, events dropped before the first", PointConfig{Counter: true},
			[]event{{true, 3}}, []reading.Value{U(3)}, "lost=2"},
		{"both counts rising edges", PointConfig{Counter: true, Edge: "both"},
			[]event{{true, 1}, {false, 2}, {true, 3}, {false, 4}}, []reading.Value{U(1), U(2)}, ""},
		{"both, events dropped", PointConfig{Counter: true, Edge: "both"},
			[]event{{true, 1}, {false, 2}, {true, 5}, {false, 7}}, []reading.Value{U(1), U(2)}, "level=ERROR msg=\"gpio edge events lost (kernel buffer overflow); the counter misses"},
		{"no sequence numbers", PointConfig{Counter: true},
			[]event{{true, 0}, {true, 0}}, []reading.Value{U(1), U(2)}, ""},
		{"level", PointConfig{},
			[]event{{true, 1}, {false, 3}}, []reading.Value{B(true), B(false)}, "level=WARN msg=\"gpio edge events lost (kernel buffer overflow)\" point=door lost=1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.point.Name = "door"
			log, lb := newLog()
			dir := t.TempDir()
			rec := &adapterstest.Recorder{}
			_, edge := handler(t, tt.point, adapters.Env{Log: log, State: stateDir(t, dir)}, rec)
			for _, ev := range tt.events {
				edge(ev)
			}
			for i, want := range tt.want {
				if x, _ := rec.NextReading(t); x.Point != "door" || x.Value != want {
					t.Errorf("reading %d: %s = %v, want door = %v", i, x.Point, x.Value, want)
				}
			}
			rec.Quiet(t, 0)
			if got := lb.String(); tt.wantLog == "" && got != "" || !strings.Contains(got, tt.wantLog) {
				t.Errorf("log:\n%s\nwant %q", got, tt.wantLog)
			}
			if tt.point.Counter {
				if got, want := onDisk(t, filepath.Join(dir, "gpio-io.counters"))["door"], tt.want[len(tt.want)-1].Bits(); got != want {
					t.Errorf("on disk %d, want %d", got, want)
				}
			}
		})
	}
}

func TestMissed(t *testing.T) {
	tests := []struct{ last, seqno, want uint32 }{
		{0, 1, 0},
		{0, 4, 3}, // before the first event read
		{6, 7, 0},
		{6, 9, 2},
		{1<<32 - 1, 0, 0}, // the kernel's counter wraps
		{1<<32 - 2, 1, 2},
		{0, 0, 0}, // no numbers
	}
	for _, tt := range tests {
		if got := missed(tt.last, tt.seqno); got != tt.want {
			t.Errorf("missed(%d, %d) = %d, want %d", tt.last, tt.seqno, got, tt.want)
		}
	}
}

// TestCounterNotPersisted: while the state file cannot be written, edges
// are still counted and published, the status says the totals are not
// durable, and the first write that works again clears it.
func TestCounterNotPersisted(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	state := stateDir(t, dir)
	if err := os.Remove(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dir, nil, 0o640); err != nil { // a file where the directory should be
		t.Fatal(err)
	}
	log, lb := newLog()
	rec := &adapterstest.Recorder{}
	_, edge := handler(t, PointConfig{Name: "water", Counter: true}, adapters.Env{Log: log, State: state}, rec)
	for i := range uint32(2) {
		edge(event{true, i + 1})
		if err := rec.NextStatus(t); !errors.Is(err, syscall.ENOTDIR) || !strings.Contains(err.Error(), `gpio "io" point "water": total`) {
			t.Fatalf("status %v, want ENOTDIR naming the point", err)
		}
		if x, _ := rec.NextReading(t); x.Value != reading.Uint(uint64(i)+1) {
			t.Fatalf("reading %v, want %d", x.Value, i+1)
		}
	}
	if n := strings.Count(lb.String(), "not persisted"); n != 1 {
		t.Errorf("logged the fault %d times, want once:\n%s", n, lb)
	}

	if err := os.Remove(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(dir, 0o750); err != nil {
		t.Fatal(err)
	}
	edge(event{true, 3})
	if err := rec.NextStatus(t); err != nil {
		t.Fatalf("status %v after the directory came back, want ok", err)
	}
	if x, _ := rec.NextReading(t); x.Value != reading.Uint(3) || onDisk(t, filepath.Join(dir, "gpio-io.counters"))["water"] != 3 {
		t.Errorf("reading %v, want 3, on disk too", x.Value)
	}
	if !strings.Contains(lb.String(), "persisted again") {
		t.Errorf("recovery not logged:\n%s", lb)
	}
}

func TestCounterNeedsStateDir(t *testing.T) {
	cfg := &Config{Name: "io", Chip: "gpiochip0", Points: []PointConfig{{Name: "water", Counter: true}}}
	if _, err := New(cfg, adapters.Env{}); err == nil || !strings.Contains(err.Error(), "state directory") {
		t.Errorf("New without a state directory = %v, want a refusal", err)
	}
}

// BenchmarkCounterAdd measures one counted edge's write and fdatasync on
// the file system of the test's temporary directory.
func BenchmarkCounterAdd(b *testing.B) {
	c := openCounterFile(statefile.New(filepath.Join(b.TempDir(), "gpio-io.counters"), counterFormat), slog.Default())
	defer c.close()
	for b.Loop() {
		if _, err := c.add("water", 1); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "edges/s")
}

// stateDir lends the adapter dir as its state directory.
func stateDir(t testing.TB, dir string) *statefile.Dir {
	t.Helper()
	d, err := statefile.OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	return d
}
