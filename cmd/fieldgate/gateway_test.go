package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/fieldgate/fieldgate/adapters"
	"github.com/fieldgate/fieldgate/buffer"
	"github.com/fieldgate/fieldgate/config"
	"github.com/fieldgate/fieldgate/internal/reading"
	"github.com/fieldgate/fieldgate/test/modbussim"
	"github.com/fieldgate/fieldgate/test/peers"
)

// wait bounds every event a test awaits.
const wait = 20 * time.Second

// fast are timings that keep the tests short.
var fast = options{adapterStop: time.Second, bridgeStop: 6 * time.Second, restartFirst: 100 * time.Millisecond, restartMax: 400 * time.Millisecond}

// flakyConfig is the [[flaky]] table of a test adapter kind whose Run fails
// its first `fails` times, by panicking or by returning an error, and then
// polls one point until stopped; in mode flap its one Run reports a fault
// and ok again `fails` times first.
type flakyConfig struct {
	Name  string `toml:"name"`
	Mode  string `toml:"mode"` // panic | error | flap, or after the failures: stall | wedge | mute
	Fails int    `toml:"fails"`
	// Pace, when set, is the adapter's (adapters.Pacer); in mode stall it
	// reports once and then not until released.
	Pace config.Duration `toml:"pace"`
}

func (c *flakyConfig) AdapterName() string         { return c.Name }
func (c *flakyConfig) Check(*config.Check)         {}
func (c *flakyConfig) Summary() string             { return c.Mode }
func (c *flakyConfig) PollInterval() time.Duration { return c.Pace.D() }
func (c *flakyConfig) PointInfo() []reading.Point {
	return []reading.Point{{Adapter: c.Name, Name: "x", Type: "int64", Scale: 1}}
}

// flaky is the adapter; runs receives the time each Run starts. In mode
// stall a Run reports once, then waits for release before it reports
// again; in mode wedge it ignores its cancellation until released.
type flaky struct {
	cfg     *flakyConfig
	n       atomic.Int32
	runs    chan time.Time
	release chan struct{}
}

// flakies holds the flaky adapters the gateway built, by name, so a test
// reaches them.
var flakies sync.Map

func init() {
	adapters.Register("flaky", func(c *flakyConfig, _ adapters.Env) (*flaky, error) {
		f := &flaky{cfg: c, runs: make(chan time.Time, 16), release: make(chan struct{})}
		flakies.Store(c.Name, f)
		return f, nil
	})
}

func (f *flaky) Name() string { return f.cfg.Name }

func (f *flaky) Run(ctx context.Context, e adapters.Emitter) error {
	n := int(f.n.Add(1))
	f.runs <- time.Now()
	if f.cfg.Mode == "mute" { // never a word
		<-ctx.Done()
		return nil
	}
	if f.cfg.Mode == "flap" {
		for i := range f.cfg.Fails {
			e.Status(fmt.Errorf("flap %d", i))
			e.Status(nil)
		}
		f.runs <- time.Now()
	}
	if n <= f.cfg.Fails {
		if f.cfg.Mode == "panic" {
			panic(fmt.Sprintf("flaky run %d", n))
		}
		return fmt.Errorf("flaky run %d failed", n)
	}
	e.Emit([]reading.Reading{{Adapter: f.cfg.Name, Point: "x", Time: time.Now(), Value: reading.Int(int64(n))}})
	e.Status(nil)
	switch f.cfg.Mode {
	case "stall": // then, released, it polls at its pace again
		select {
		case <-f.release:
		case <-ctx.Done():
			return nil
		}
		tick := time.NewTicker(f.cfg.Pace.D() / 4)
		defer tick.Stop()
		for {
			e.Status(nil)
			select {
			case <-tick.C:
			case <-ctx.Done():
				return nil
			}
		}
	case "wedge":
		<-f.release
		return nil
	}
	<-ctx.Done()
	return nil
}

// Pace implements adapters.Pacer.
func (f *flaky) Pace() time.Duration { return f.cfg.Pace.D() }

func flakyAdapter(t *testing.T, name string) *flaky {
	t.Helper()
	f, ok := flakies.Load(name)
	if !ok {
		t.Fatalf("no flaky adapter %q was built", name)
	}
	return f.(*flaky)
}

// nextRun awaits the adapter's next Run.
func (f *flaky) nextRun(t *testing.T) time.Time {
	t.Helper()
	select {
	case at := <-f.runs:
		return at
	case <-time.After(wait):
		t.Fatalf("%s: no Run within %v", f.cfg.Name, wait)
		return time.Time{}
	}
}

// writeConfig writes a config file with the gateway table and a buffer in
// a fresh directory, followed by rest, and returns its path.
func writeConfig(t *testing.T, rest string) string {
	t.Helper()
	dir := t.TempDir()
	text := fmt.Sprintf("[gateway]\nid = \"gw\"\n[buffer]\ndir = %q\nfsync = \"never\"\n%s", filepath.Join(dir, "buffer"), rest)
	path := filepath.Join(dir, "fieldgate.toml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// openGateway starts a gateway in the test process with timings opt; stop
// shuts it down and returns the exit status, and the test's cleanup calls
// it unless the test has.
func openGateway(t *testing.T, path string, opt options) (g *gateway, logs *peers.Lines, stop func() int) {
	t.Helper()
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	logs = &peers.Lines{}
	g, status := open(cfg, logs, opt)
	if g == nil {
		t.Fatalf("open failed with status %d:\n%s", status, logs)
	}
	stop = sync.OnceValue(g.shutdown)
	t.Cleanup(func() {
		stop()
		if t.Failed() {
			t.Logf("gateway log:\n%s", logs)
		}
	})
	return g, logs, stop
}

func faultOf(g *gateway, adapter string) (string, bool) {
	for _, a := range g.adapterHealth() {
		if a.name == adapter {
			return a.err, true
		}
	}
	return "", false
}

// TestSupervisorRestartsFailedAdapters: an adapter whose Run panics or
// returns an error shows `error`, is restarted after a growing back-off,
// and shows `ok` once it runs; its neighbour is never disturbed.
func TestSupervisorRestartsFailedAdapters(t *testing.T) {
	for _, mode := range []string{"panic", "error"} {
		t.Run(mode, func(t *testing.T) {
			name := "crash-" + mode
			path := writeConfig(t, fmt.Sprintf(`
[[flaky]]
name = %q
mode = %q
fails = 2
[[flaky]]
name = "steady-%s"
`, name, mode, mode))
			g, logs, stop := openGateway(t, path, fast)
			f := flakyAdapter(t, name)
			first := f.nextRun(t)
			if mode == "panic" {
				logs.Await(t, wait, "adapter="+name, "adapter panicked", "flaky run 1")
			}
			logs.Await(t, wait, "adapter="+name, "adapter failed; restarting", "flaky run 1")
			second := f.nextRun(t)
			if fault, _ := faultOf(g, name); !strings.Contains(fault, "flaky run") {
				t.Errorf("status after a failure %q, want the failure", fault)
			}
			third := f.nextRun(t)
			// Each wait is drawn from the upper half of its span: 100 ms,
			// then 200 ms.
			if d1, d2 := second.Sub(first), third.Sub(second); d1 < fast.restartFirst/2 || d2 < fast.restartFirst {
				t.Errorf("restarted after %v and %v, want at least %v and %v (back-off)", d1, d2, fast.restartFirst/2, fast.restartFirst)
			}
			logs.Await(t, wait, "adapter="+name, "adapter ok")
			if fault, ok := faultOf(g, name); !ok || fault != "" {
				t.Errorf("status after the restart %q (known %t), want ok", fault, ok)
			}
			if n := flakyAdapter(t, "steady-"+mode).n.Load(); n != 1 {
				t.Errorf("the neighbour ran %d times, want once", n)
			}
			if status := stop(); status != exitOK {
				t.Errorf("shutdown status %d, want %d", status, exitOK)
			}
		})
	}
}

// TestFlappingAdapterIsQuiet: an adapter whose status flips between a
// fault and ok 500 times logs a line or two, not a thousand.
func TestFlappingAdapterIsQuiet(t *testing.T) {
	path := writeConfig(t, "[[flaky]]\nname = \"flapper\"\nmode = \"flap\"\nfails = 500\n")
	_, logs, _ := openGateway(t, path, fast)
	f := flakyAdapter(t, "flapper")
	f.nextRun(t)
	f.nextRun(t) // the flapping is over
	if n := strings.Count(logs.String(), "adapter fault") + strings.Count(logs.String(), "adapter ok"); n > 4 {
		t.Errorf("%d log lines for 1,000 status changes:\n%s", n, logs)
	}
}

// runInProcess runs `fieldgate run -c path` in the test process, as main
// would, and returns its log and a channel with its exit status. Signals
// sent to the test process reach it.
func runInProcess(t *testing.T, path string) (*peers.Lines, <-chan int) {
	t.Helper()
	logs := &peers.Lines{}
	done := make(chan int, 1)
	go func() { done <- run([]string{"run", "-c", path}, io.Discard, logs) }()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("gateway log:\n%s", logs)
		}
	})
	return logs, done
}

func exitStatus(t *testing.T, done <-chan int) int {
	t.Helper()
	select {
	case s := <-done:
		return s
	case <-time.After(wait):
		t.Fatalf("the gateway did not exit within %v", wait)
		return -1
	}
}

func signalSelf(t *testing.T, sig syscall.Signal) {
	t.Helper()
	if err := syscall.Kill(os.Getpid(), sig); err != nil {
		t.Fatal(err)
	}
}

func startDevice(t *testing.T) (*modbussim.Server, *modbussim.Bank) {
	t.Helper()
	bank := modbussim.NewBank()
	srv, err := modbussim.Start("127.0.0.1:0", bank)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Stop() })
	return srv, bank
}

// TestReloadAndSIGINT runs the gateway as `fieldgate run` does: a SIGHUP
// reloads the file, so the log level changes, an unchanged adapter keeps
// its connection (its device sees no new one) and a changed one reconnects;
// SIGINT then stops it cleanly with status 0.
func TestReloadAndSIGINT(t *testing.T) {
	srvA, bankA := startDevice(t)
	srvB, bankB := startDevice(t)
	adaptersTOML := func(bPoints string) string {
		return fmt.Sprintf(`
[[modbus]]
name = "a"
url = "tcp://%s"
interval = "50ms"
point = [{ name = "p", table = "holding_register", address = 0 }]
[[modbus]]
name = "b"
url = "tcp://%s"
interval = "50ms"
point = [%s]
`, srvA.Addr, srvB.Addr, bPoints)
	}
	const (
		bOne = `{ name = "p", table = "holding_register", address = 0 }`
		bTwo = `{ name = "q", table = "holding_register", address = 1 }`
	)
	path := writeConfig(t, adaptersTOML(bOne))
	logs, done := runInProcess(t, path)
	logs.Await(t, wait, "fieldgate started")
	if !bankA.WaitReads(3, wait) || !bankB.WaitReads(3, wait) {
		t.Fatal("the devices were not polled")
	}
	if strings.Contains(logs.String(), "level=DEBUG") {
		t.Fatal("debug lines at log level info")
	}

	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	text := strings.Replace(string(data), adaptersTOML(bOne), adaptersTOML(bOne+", "+bTwo), 1)
	text = strings.Replace(text, `id = "gw"`, "id = \"gw\"\nlog_level = \"debug\"", 1)
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	n := logs.Len()
	signalSelf(t, syscall.SIGHUP)
	logs.Await(t, wait, "configuration reloaded")
	logs.Await(t, wait, "level=DEBUG")
	readsB := bankB.Reads()
	if !bankA.WaitReads(bankA.Reads()+3, wait) || !bankB.WaitReads(readsB+3, wait) {
		t.Fatal("the devices were not polled after the reload")
	}
	if c := bankA.Connections(); c != 1 {
		t.Errorf("the unchanged adapter's device saw %d connections, want 1", c)
	}
	if c := bankB.Connections(); c != 2 {
		t.Errorf("the changed adapter's device saw %d connections, want 2 (it restarts)", c)
	}
	if lines, _ := logs.Since(n); !strings.Contains(strings.Join(lines, "\n"), "adapters=2") {
		t.Errorf("reload log: %q", lines)
	}

	signalSelf(t, syscall.SIGINT)
	if s := exitStatus(t, done); s != exitOK {
		t.Errorf("exit status %d after SIGINT, want %d", s, exitOK)
	}
	logs.Await(t, wait, "stopped")
}

// TestLockedBufferExits1: a buffer directory another process holds is a
// fatal runtime error, exit status 1, not a config error.
func TestLockedBufferExits1(t *testing.T) {
	path := writeConfig(t, "")
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	holder, err := buffer.Open(cfg.Buffer.Dir, nil, buffer.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close()
	logs, done := runInProcess(t, path)
	if s := exitStatus(t, done); s != exitRuntime {
		t.Errorf("exit status %d, want %d", s, exitRuntime)
	}
	if line := logs.Await(t, wait, "cannot open the buffer"); !strings.Contains(line, "level=ERROR") || !strings.Contains(line, buffer.ErrLocked.Error()) {
		t.Errorf("log %q, want an error saying the directory is in use", line)
	}
}

// TestCommandsFalse: an upstream with commands = false never subscribes to
// command topics, while one beside it that takes commands (on its command
// connection) relays them to the device.
func TestCommandsFalse(t *testing.T) {
	broker := peers.StartMochi(t)
	dev, bank := startDevice(t)
	// The command connection answers this as soon as it has subscribed.
	obs := peers.Observe(t, broker.URL(), "loud/plc/+/set/result")
	obs.Publish(t, "loud/plc/sp/set", 1, true, "1")
	path := writeConfig(t, fmt.Sprintf(`
[[upstream]]
name = "quiet"
url = %[1]q
topic_prefix = "quiet"
commands = false
[[upstream]]
name = "loud"
url = %[1]q
topic_prefix = "loud"
[[modbus]]
name = "plc"
url = "tcp://%[2]s"
interval = "50ms"
point = [{ name = "sp", table = "holding_register", address = 0, writable = true }]
`, broker.URL(), dev.Addr))
	openGateway(t, path, fast)
	obs.AwaitMessage(t, wait, "loud/plc/sp/set/result", func(p []byte) bool { return strings.Contains(string(p), "retained") })
	obs.Publish(t, "loud/plc/sp/set", 1, true, "")
	// Both have published a reading: whatever they subscribe to on a
	// connection goes out before it, so the broker has recorded it.
	for _, prefix := range []string{"quiet", "loud"} {
		broker.Received.AwaitMessage(t, wait, prefix+"/plc/sp", func([]byte) bool { return true })
	}
	for _, id := range []string{"gw-quiet", "gw-quiet-cmd", "gw-loud"} {
		if subs := broker.Subscriptions(id); len(subs) != 0 {
			t.Errorf("%s subscribed to %q, want nothing", id, subs)
		}
	}
	if subs := broker.Subscriptions("gw-loud-cmd"); len(subs) != 1 || subs[0] != "loud/+/+/set" {
		t.Errorf("the upstream taking commands subscribed to %q on its command connection, want loud/+/+/set", subs)
	}
	obs.Publish(t, "loud/plc/sp/set", 1, false, `{"value":7,"id":"w"}`)
	obs.AwaitMessage(t, wait, "loud/plc/sp/set/result", func(p []byte) bool { return strings.Contains(string(p), `"ok":true`) })
	if w := bank.Writes(); len(w) != 1 {
		t.Errorf("device writes %v, want the one command", w)
	}
}

// TestCommandExpiresWaitingForTheBus: a command still waiting for the
// device when its command_max_age passes (a poll holds the connection,
// waiting out a silent device) is refused and never written, not even once
// the device answers again.
func TestCommandExpiresWaitingForTheBus(t *testing.T) {
	broker := peers.StartMochi(t)
	dev, bank := startDevice(t)
	path := writeConfig(t, fmt.Sprintf(`[[upstream]]
name = "cloud"
url = %q
[[modbus]]
name = "plc"
url = "tcp://%s"
interval = "50ms"
timeout = "2s"
point = [{ name = "sp", table = "holding_register", address = 0, writable = true }]
`, broker.URL(), dev.Addr))
	text, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	text = []byte(strings.Replace(string(text), `id = "gw"`, "id = \"gw\"\ncommand_max_age = \"500ms\"", 1))
	if err := os.WriteFile(path, text, 0o600); err != nil {
		t.Fatal(err)
	}
	obs := peers.Observe(t, broker.URL(), "fieldgate/gw/plc/sp/set/result")
	openGateway(t, path, fast)
	broker.AwaitPackets(t, wait, "gw-cloud-cmd", func(ps []peers.Packet) bool {
		return slices.ContainsFunc(ps, func(p peers.Packet) bool { return p.Type == "Subscribe" })
	})

	resume := bank.Stall()
	t.Cleanup(resume)
	if !bank.WaitHeld(1, wait) {
		t.Fatal("no poll reached the stalled device")
	}
	obs.Publish(t, "fieldgate/gw/plc/sp/set", 1, false, `{"value":7,"id":"late"}`)
	res := obs.AwaitMessage(t, wait, "fieldgate/gw/plc/sp/set/result", nil)
	if !strings.Contains(string(res.Payload), `"ok":false`) || !strings.Contains(string(res.Payload), "command_max_age") {
		t.Errorf("result %s, want a refusal for its age", res.Payload)
	}
	resume()
	if reads := bank.Reads(); !bank.WaitReads(reads+2, wait) {
		t.Fatal("polling did not resume")
	}
	if w := bank.Writes(); len(w) != 0 {
		t.Errorf("device writes %v, want none: the command expired", w)
	}
}

// TestStalledAdapter: a paced adapter that stays silent past its pace (a
// poll cycle that overran several intervals) is marked in error and the
// systemd watchdog is no longer fed; once it reports again it is ok and
// the pings resume.
func TestStalledAdapter(t *testing.T) {
	notify := peers.ListenNotify(t)
	t.Setenv("NOTIFY_SOCKET", notify.Path)
	t.Setenv("WATCHDOG_USEC", "200000") // checks every 100 ms
	path := writeConfig(t, `
[[flaky]]
name = "slow"
mode = "stall"
pace = "500ms"
`)
	logs, done := runInProcess(t, path)
	logs.Await(t, wait, "fieldgate started")
	f := flakyAdapter(t, "slow")
	f.nextRun(t)
	notify.Await(t, wait, "WATCHDOG=1")
	logs.Await(t, wait, "adapter=slow", "adapter fault", "stalled: no poll result")
	logs.Await(t, wait, "not feeding the watchdog", "slow")
	// One ping may have left before the check that found the stall.
	notify.Quiet(t, time.Second, notify.Len()+1, "WATCHDOG=1")
	from := notify.Len()
	f.release <- struct{}{}
	logs.Await(t, wait, "adapter=slow", "adapter ok")
	logs.Await(t, wait, "every part makes progress again")
	notify.AwaitFrom(t, wait, from, "WATCHDOG=1")
	signalSelf(t, syscall.SIGINT)
	if s := exitStatus(t, done); s != exitOK {
		t.Errorf("exit status %d, want %d", s, exitOK)
	}
}

// TestWedgedAdapterCostsNotTheDrain: an adapter that ignores its stop gets
// its share of the shutdown and no more: the bridge still says offline on
// the broker, the buffer is closed and the gateway exits 0.
func TestWedgedAdapterCostsNotTheDrain(t *testing.T) {
	broker := peers.StartMochi(t)
	path := writeConfig(t, fmt.Sprintf(`
[[upstream]]
name = "local"
url = %q
[[flaky]]
name = "stuck"
mode = "wedge"
`, broker.URL()))
	_, logs, stop := openGateway(t, path, fast)
	f := flakyAdapter(t, "stuck")
	f.nextRun(t)
	broker.Received.AwaitMessage(t, wait, "fieldgate/gw/stuck/x", func([]byte) bool { return true })
	defer close(f.release)
	if s := stop(); s != exitOK {
		t.Errorf("exit status %d, want %d", s, exitOK)
	}
	logs.Await(t, wait, "adapter did not stop in time", "stuck")
	broker.Received.AwaitMessage(t, wait, "fieldgate/gw/status", func(p []byte) bool { return string(p) == "offline" })
	if strings.Contains(logs.String(), "bridge did not stop in time") {
		t.Error("the wedged adapter cost the bridge its drain")
	}
}

// TestHealthzPending: an adapter that has not reported a status yet is
// "pending" in /healthz, which says degraded, not ok.
func TestHealthzPending(t *testing.T) {
	path := writeConfig(t, `
[[flaky]]
name = "quiet"
mode = "mute"
[[flaky]]
name = "talks"
`)
	g, logs, _ := openGateway(t, path, fast)
	flakyAdapter(t, "quiet").nextRun(t)
	logs.Await(t, wait, "adapter=talks", "adapter ok")
	rec := httptest.NewRecorder()
	g.healthz(rec, httptest.NewRequest("GET", "/healthz", nil))
	var h health
	if err := json.Unmarshal(rec.Body.Bytes(), &h); err != nil {
		t.Fatal(err)
	}
	if h.Status != "degraded" || h.Adapters["quiet"] != "pending" || h.Adapters["talks"] != "ok" {
		t.Errorf("healthz %d %s, want degraded with quiet pending and talks ok", rec.Code, rec.Body)
	}
}
