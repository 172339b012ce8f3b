package serial_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fieldgate/fieldgate/internal/reading"

	"github.com/fieldgate/fieldgate/adapters"
	"github.com/fieldgate/fieldgate/adapters/adapterstest"
	"github.com/fieldgate/fieldgate/adapters/internal/serialport"
	"github.com/fieldgate/fieldgate/adapters/serial"
	"github.com/fieldgate/fieldgate/config"
	"github.com/fieldgate/fieldgate/test/peers"
)

// wait bounds every wait for the adapter; the port back-off is 1 s.
const wait = 10 * time.Second

// values maps a batch to point → value, checking that all readings of the
// batch carry the adapter's name and one time.
func values(t *testing.T, rs []reading.Reading) map[string]reading.Value {
	t.Helper()
	m := map[string]reading.Value{}
	for _, r := range rs {
		if r.Adapter != "scale" || !r.Time.Equal(rs[0].Time) || time.Since(r.Time) > time.Minute {
			t.Errorf("reading %+v: want adapter scale and one recent time per batch", r)
		}
		m[r.Point] = r.Value
	}
	return m
}

func wantValues(t *testing.T, rs []reading.Reading, want map[string]reading.Value) {
	t.Helper()
	if got := values(t, rs); !maps.Equal(got, want) {
		t.Errorf("readings %v, want %v", got, want)
	}
}

func newConfig(port, mode string, points ...serial.PointConfig) *serial.Config {
	return &serial.Config{
		Name: "scale", Port: port, Mode: mode, Delimiter: "\n",
		Line:    config.Line{BaudRate: 9600, DataBits: 8, Parity: "N", StopBits: 1},
		Timeout: config.Duration(time.Second),
		Points:  points,
	}
}

// start runs the adapter build makes until the test ends, checking that Run
// returns nil promptly on cancellation.
func start(t *testing.T, c *serial.Config) (adapters.Writer, *adapterstest.Recorder) {
	t.Helper()
	a := build(t, c)
	e := &adapterstest.Recorder{}
	adapterstest.Run(t, a, e)
	return a.(adapters.Writer), e
}

// build makes the adapter through the registry, logging to the test.
func build(t *testing.T, c *serial.Config) adapters.Adapter {
	t.Helper()
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
	a, err := adapters.New(config.Adapter{Kind: "serial", Name: c.Name, Config: c}, adapters.Env{Log: log})
	if err != nil {
		t.Fatal(err)
	}
	if a.Name() != c.Name {
		t.Errorf("Name = %q", a.Name())
	}
	return a
}

func send(t *testing.T, dev io.Writer, s string) {
	t.Helper()
	if _, err := io.WriteString(dev, s); err != nil {
		t.Fatalf("device write: %v", err)
	}
}

// expect reads exactly len(want) bytes at the device and compares them.
func expect(t *testing.T, dev *os.File, want string) {
	t.Helper()
	if err := dev.SetReadDeadline(time.Now().Add(wait)); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, len(want))
	if _, err := io.ReadFull(dev, b); err != nil {
		t.Fatalf("device read, want %q: %v (got %q)", want, err, b)
	}
	if string(b) != want {
		t.Fatalf("device got %q, want %q", b, want)
	}
}

// TestNoisyDevice sends many malformed lines, each different: the status
// is the same error for all of them (so the gateway publishes one change),
// and the log gets a few lines, not one per line.
func TestNoisyDevice(t *testing.T) {
	s := peers.StartSocat(t, t.TempDir())
	dev := s.Device()
	logs := &peers.Lines{}
	c := newConfig(s.A, "line", serial.PointConfig{Name: "temp", Pattern: `T=(\S+)`, Type: "float64"})
	a, err := adapters.New(config.Adapter{Kind: "serial", Name: c.Name, Config: c},
		adapters.Env{Log: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	e := &adapterstest.Recorder{}
	adapterstest.Run(t, a, e)
	e.AwaitStatus(t, "ok status once open", adapterstest.IsOK)
	var noise strings.Builder
	for i := range 200 {
		fmt.Fprintf(&noise, "T=x%dy\n", i)
	}
	noise.WriteString("T=x199y\n")
	send(t, dev, noise.String())
	first := e.AwaitStatus(t, "parse error", adapterstest.IsError)
	for range 200 {
		if err := e.NextStatus(t); err == nil || err.Error() != first.Error() {
			t.Fatalf("status %v after %v: want the same error for every malformed line", err, first)
		}
	}
	if n := strings.Count(logs.String(), "serial value does not parse"); n > 2 {
		t.Errorf("%d log lines for 201 malformed lines, want at most 2:\n%s", n, logs)
	}
}

func TestLineMode(t *testing.T) {
	s := peers.StartSocat(t, t.TempDir())
	dev := s.Device()
	_, e := start(t, newConfig(s.A, "line",
		serial.PointConfig{Name: "temp", Pattern: `T=(-?[0-9.]+)`, Type: "float64"},
		serial.PointConfig{Name: "count", Pattern: `\bN=(\S+)`, Type: "int64"},
		serial.PointConfig{Name: "on", Pattern: `ON=(\w+)`, Type: "bool"},
		serial.PointConfig{Name: "label", Pattern: `L="([^"]*)"`, Type: "string"},
		serial.PointConfig{Name: "wt", Pattern: `W=([0-9.]+)`, Type: "float64",
			Change: config.Change{OnChange: true, Deadband: 0.5}},
	))
	e.AwaitStatus(t, "ok status once open", adapterstest.IsOK)

	send(t, dev, "T=21.5 N=-7 ON=off L=\"a b\"\r\n")
	wantValues(t, e.NextBatch(t), map[string]reading.Value{
		"temp": reading.Float(21.5), "count": reading.Int(-7), "on": reading.Bool(false), "label": reading.String("a b"),
	})

	// A line matching nothing emits nothing: the next batch is T=22's.
	send(t, dev, "hello world\nT=22\n")
	wantValues(t, e.NextBatch(t), map[string]reading.Value{"temp": reading.Float(22)})

	// An unparsable capture is a status error naming the point and its
	// type, not the text, which changes with every line of a noisy device.
	send(t, dev, "N=99999999999999999999\n")
	err := e.AwaitStatus(t, "parse error for count", adapterstest.IsError)
	if msg := err.Error(); msg != `serial "scale" point "count": cannot parse as int64` {
		t.Errorf("status %q, want one naming the point and its type", msg)
	}
	// The other points of a line still count.
	send(t, dev, "ON=maybe T=1\n")
	wantValues(t, e.NextBatch(t), map[string]reading.Value{"temp": reading.Float(1)})
	e.AwaitStatus(t, "parse error for on", func(err error) bool { return err != nil && strings.Contains(err.Error(), `"on"`) })
	send(t, dev, "ON=TRUE\n")
	wantValues(t, e.NextBatch(t), map[string]reading.Value{"on": reading.Bool(true)})
	e.AwaitStatus(t, "ok status after a good line", adapterstest.IsOK)

	// on_change with a deadband of 0.5: 1.2 is filtered out.
	send(t, dev, "W=1.0\nW=1.2\nW=2\n")
	wantValues(t, e.NextBatch(t), map[string]reading.Value{"wt": reading.Float(1)})
	wantValues(t, e.NextBatch(t), map[string]reading.Value{"wt": reading.Float(2)})

	// Noise without a delimiter (a wrong baud rate) is a status error, and
	// the port keeps working.
	send(t, dev, strings.Repeat("\xaa", 5000))
	e.AwaitStatus(t, "error for a line without delimiter", func(err error) bool {
		return err != nil && strings.Contains(err.Error(), "without a delimiter")
	})
	send(t, dev, "\nT=3\n")
	wantValues(t, e.NextBatch(t), map[string]reading.Value{"temp": reading.Float(3)})
	e.AwaitStatus(t, "ok status", adapterstest.IsOK)
}

// scale plays a weighing instrument on the device end of the cable: it
// answers "R\r\n" with its weight and tare, and takes "T<tare>\r\n"
// commands. Until the test closes it, everything received is recorded.
type scale struct {
	mu       sync.Mutex
	silent   bool
	tare     string
	received []string
	more     chan struct{} // closed and replaced at each line received
}

func startScale(t *testing.T, dev *os.File) *scale {
	sc := &scale{tare: "0", more: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { sc.serve(ctx, dev) })
	t.Cleanup(func() { cancel(); wg.Wait() })
	return sc
}

func (sc *scale) serve(ctx context.Context, dev *os.File) {
	in := bufio.NewReader(dev)
	partial := ""
	for ctx.Err() == nil {
		_ = dev.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		s, err := in.ReadString('\n')
		partial += s
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				continue
			}
			return
		}
		line := partial
		partial = ""
		sc.mu.Lock()
		sc.received = append(sc.received, line)
		close(sc.more)
		sc.more = make(chan struct{})
		if v, ok := strings.CutPrefix(line, "T"); ok {
			sc.tare = strings.TrimRight(v, "\r\n")
			_, _ = io.WriteString(dev, "ACK\r\n") // an answer that matches no point
		}
		answer := ""
		if line == "R\r\n" && !sc.silent {
			answer = "W: 12.5 T: " + sc.tare + " S: ok\r\n"
		}
		sc.mu.Unlock()
		if _, err := io.WriteString(dev, answer); err != nil {
			return
		}
	}
}

func (sc *scale) setSilent(s bool) {
	sc.mu.Lock()
	sc.silent = s
	sc.mu.Unlock()
}

func (sc *scale) lines() []string {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	return slices.Clone(sc.received)
}

// firstCommand waits for the first line received that is not the query
// request, and returns it.
func (sc *scale) firstCommand(t testing.TB, request string) string {
	t.Helper()
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	for {
		sc.mu.Lock()
		lines, more := sc.received, sc.more
		sc.mu.Unlock()
		if i := slices.IndexFunc(lines, func(l string) bool { return l != request }); i >= 0 {
			return lines[i]
		}
		select {
		case <-more:
		case <-deadline.C:
			t.Fatalf("the scale received no command within %v, only %q", wait, lines)
		}
	}
}

func TestQueryMode(t *testing.T) {
	s := peers.StartSocat(t, t.TempDir())
	sc := startScale(t, s.Device())
	c := newConfig(s.A, "query",
		serial.PointConfig{Name: "weight", Pattern: `W:\s*([-0-9.]+)`, Type: "float64"},
		serial.PointConfig{Name: "tare", Pattern: `T:\s*([-0-9.]+)`, Type: "float64", WriteFormat: "T{value}\r\n",
			Change: config.Change{OnChange: true}},
		serial.PointConfig{Name: "state", Pattern: `S:\s*(\w+)`, Type: "string"},
	)
	c.Request, c.Interval = "R\r\n", config.Duration(100*time.Millisecond)
	w, e := start(t, c)

	wantValues(t, e.NextBatch(t), map[string]reading.Value{
		"weight": reading.Float(12.5), "tare": reading.Float(0), "state": reading.String("ok"),
	})
	e.AwaitStatus(t, "ok status", adapterstest.IsOK)

	// The device stops answering: a timeout is a status error, the port
	// stays open, and answers bring the status back.
	sc.setSilent(true)
	err := e.AwaitStatus(t, "timeout status", adapterstest.IsError)
	if !errors.Is(err, serialport.ErrTimeout) || !strings.Contains(err.Error(), `"R\r\n"`) {
		t.Errorf("status %v, want a timeout naming the request", err)
	}
	sc.setSilent(false)
	e.AwaitStatus(t, "ok status after the device answers again", adapterstest.IsOK)

	// A write sends the command, then one query whose answer is the
	// read-back; the device's ACK line in between is skipped.
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	written, rb, err := w.Write(ctx, "tare", reading.String("5.25"))
	if err != nil {
		t.Fatal(err)
	}
	if written != reading.Float(5.25) || rb.Point != "tare" || rb.Adapter != "scale" || rb.Value != reading.Float(5.25) {
		t.Errorf("Write = %v, %+v; want 5.25 read back from the device", written, rb)
	}
	got := sc.lines()
	if i := slices.Index(got, "T5.25\r\n"); i < 0 || i+1 >= len(got) || got[i+1] != "R\r\n" {
		t.Errorf("device received %q; want T5.25\\r\\n followed by a query", got)
	}
}

func TestWrites(t *testing.T) {
	s := peers.StartSocat(t, t.TempDir())
	dev := s.Device()
	w, e := start(t, newConfig(s.A, "line",
		serial.PointConfig{Name: "temp", Pattern: `T=(.*)`, Type: "float64"},
		serial.PointConfig{Name: "sp", Pattern: `SP=(.*)`, Type: "float64", WriteFormat: "S{value}\r\n"},
		serial.PointConfig{Name: "count", Pattern: `C=(.*)`, Type: "int64", WriteFormat: "C{value}\n"},
		serial.PointConfig{Name: "on", Pattern: `ON=(.*)`, Type: "bool", WriteFormat: "E{value}\n"},
		serial.PointConfig{Name: "label", Pattern: `L=(.*)`, Type: "string", WriteFormat: "L{value}\n"},
	))
	e.AwaitStatus(t, "ok status once open", adapterstest.IsOK)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()

	for _, c := range []struct {
		point string
		v     reading.Value
		want  error
	}{
		{"nosuch", reading.Float(1), adapters.ErrNoPoint},
		{"temp", reading.Float(1), adapters.ErrNotWritable},
		{"label", reading.String("x\nE1"), adapters.ErrBadValue},
		{"label", reading.String("x\r"), adapters.ErrBadValue},
		{"label", reading.String("\x1b[2J"), adapters.ErrBadValue},
		{"label", reading.String(strings.Repeat("x", 300)), adapters.ErrBadValue},
		{"sp", reading.String("abc"), adapters.ErrBadValue},
		{"sp", reading.Bool(true), adapters.ErrBadValue},
		{"count", reading.Float(1.5), adapters.ErrBadValue},
		{"on", reading.String("maybe"), adapters.ErrBadValue},
	} {
		if _, _, err := w.Write(ctx, c.point, c.v); !errors.Is(err, c.want) {
			t.Errorf("Write(%s, %v) = %v, want %v", c.point, c.v, err, c.want)
		}
	}

	// The first bytes at the device are the first accepted command's:
	// nothing of the refused ones was written.
	for _, c := range []struct {
		point string
		v     reading.Value
		cmd   string
		typed reading.Value
	}{
		{"sp", reading.Float(21.5), "S21.5\r\n", reading.Float(21.5)},
		{"sp", reading.Int(1000000), "S1000000\r\n", reading.Float(1e6)},
		{"count", reading.String("42"), "C42\n", reading.Int(42)},
		{"on", reading.String("ON"), "Etrue\n", reading.Bool(true)},
		{"label", reading.String("héllo wörld"), "Lhéllo wörld\n", reading.String("héllo wörld")},
	} {
		written, rb, err := w.Write(ctx, c.point, c.v)
		if err != nil {
			t.Fatalf("Write(%s, %v): %v", c.point, c.v, err)
		}
		expect(t, dev, c.cmd)
		// Line mode cannot ask the device: the read-back is the value
		// written, timed now.
		if written != c.typed || rb.Point != c.point || rb.Value != c.typed || time.Since(rb.Time) > time.Minute {
			t.Errorf("Write(%s, %v) = %v, %+v; want %v read back", c.point, c.v, written, rb, c.typed)
		}
	}
}

// TestUnplug pulls the cable while the adapter runs and plugs it back in at
// the same path: the status goes to error and back to ok, readings resume,
// and Run never returns in between.
func TestUnplug(t *testing.T) {
	s := peers.StartSocat(t, t.TempDir())
	dev := s.Device()
	w, e := start(t, newConfig(s.A, "line",
		serial.PointConfig{Name: "temp", Pattern: `T=(\S+)`, Type: "float64", WriteFormat: "T{value}\n"},
	))
	e.AwaitStatus(t, "ok status once open", adapterstest.IsOK)
	send(t, dev, "T=1\n")
	wantValues(t, e.NextBatch(t), map[string]reading.Value{"temp": reading.Float(1)})

	s.Stop()
	e.AwaitStatus(t, "error status after unplug", adapterstest.IsError)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if _, _, err := w.Write(ctx, "temp", reading.Float(2)); err == nil || errors.Is(err, adapters.ErrBadValue) || ctx.Err() != nil {
		t.Errorf("Write while unplugged = %v, want a prompt port error", err)
	}

	s.Start()
	dev = s.Device()
	e.AwaitStatus(t, "ok status after replug", adapterstest.IsOK)
	send(t, dev, "T=3\n")
	wantValues(t, e.NextBatch(t), map[string]reading.Value{"temp": reading.Float(3)})
	if _, _, err := w.Write(ctx, "temp", reading.Float(4)); err != nil {
		t.Fatalf("Write after replug: %v", err)
	}
	expect(t, dev, "T4\n")
}

// TestPortThatStopsDraining: a command to a port that stops draining fails
// at its deadline instead of wedging the port's owner; the adapter reports
// the port fault and, once the port drains again, reopens it and is ok.
func TestPortThatStopsDraining(t *testing.T) {
	cable := peers.StartSocat(t, t.TempDir())
	w, e := start(t, newConfig(cable.A, "line",
		serial.PointConfig{Name: "target", Pattern: `T=([0-9.]+)`, Type: "float64", WriteFormat: "T{value}\n"}))
	if err := e.NextStatus(t); err != nil {
		t.Fatalf("status %v, want ok", err)
	}
	unclog := cable.Clog()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	start := time.Now()
	_, _, err := w.Write(ctx, "target", reading.Float(21))
	if !errors.Is(err, serialport.ErrNotDraining) || time.Since(start) > 10*time.Second {
		t.Fatalf("command to a clogged port = %v after %v, want ErrNotDraining within its bound", err, time.Since(start))
	}
	e.AwaitStatus(t, "the port fault", func(err error) bool { return errors.Is(err, serialport.ErrNotDraining) })
	unclog()
	e.AwaitStatus(t, "ok after the port drains", adapterstest.IsOK)
}

// TestWriteInterval: a command sooner than its point's min_write_interval
// after the last one is refused and never reaches the device; other points
// are not held back.
func TestWriteInterval(t *testing.T) {
	s := peers.StartSocat(t, t.TempDir())
	dev := s.Device()
	w, e := start(t, newConfig(s.A, "line",
		serial.PointConfig{Name: "relay", Pattern: `R=(.*)`, Type: "bool", WriteFormat: "R{value}\n", MinWriteInterval: config.Duration(time.Hour)},
		serial.PointConfig{Name: "sp", Pattern: `SP=(.*)`, Type: "float64", WriteFormat: "S{value}\n"},
	))
	e.AwaitStatus(t, "ok status once open", adapterstest.IsOK)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if _, _, err := w.Write(ctx, "relay", reading.Bool(true)); err != nil {
		t.Fatal(err)
	}
	expect(t, dev, "Rtrue\n")
	if _, _, err := w.Write(ctx, "relay", reading.Bool(false)); !errors.Is(err, adapters.ErrTooSoon) {
		t.Errorf("second write within the interval: %v, want ErrTooSoon", err)
	}
	for _, v := range []float64{1, 2} {
		if _, _, err := w.Write(ctx, "sp", reading.Float(v)); err != nil {
			t.Fatal(err)
		}
	}
	expect(t, dev, "S1\nS2\n") // and nothing of the refused command before
}
