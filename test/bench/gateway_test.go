package bench

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fieldgate/fieldgate/test/modbussim"
	"github.com/fieldgate/fieldgate/test/peers"
)

// prefix is every run's topic prefix; the device is adapter "plc".
const (
	prefix  = "bench"
	adapter = "plc"
)

// device serves n holding registers p0…p(n-1) from a simulated Modbus TCP
// device. Register i holds (97·i) mod 10000, so values have one to four
// digits, as counts and scaled measurements do.
func device(t testing.TB, n int) (*modbussim.Bank, string) {
	t.Helper()
	bank := modbussim.NewBank()
	for i := range n {
		bank.SetHolding(uint16(i), uint16(97*i%10000))
	}
	srv, err := modbussim.Start("127.0.0.1:0", bank)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Stop() })
	return bank, srv.Addr
}

// gwConfig is what varies between the gateway's runs.
type gwConfig struct {
	device   string // host:port
	points   int
	interval string
	broker   string // url
	qos      int
	format   string
	dir      string // the buffer's directory
}

// render writes the config file of the gateway id (which names its MQTT
// clients: gateways that share a broker need their own); metrics listen on
// metricsAddr, which the harness scrapes for the buffer's seqs.
func (c gwConfig) render(id, metricsAddr string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "[gateway]\nid = %q\ntopic_prefix = %q\nlog_level = \"info\"\nmetrics_listen = %q\n\n", id, prefix, metricsAddr)
	fmt.Fprintf(&b, "[buffer]\ndir = %q\nfsync = \"interval\"\n\n", c.dir)
	fmt.Fprintf(&b, "[[upstream]]\nname = \"local\"\nurl = %q\nqos = %d\nformat = %q\nreconnect_max = \"1s\"\n", c.broker, c.qos, c.format)
	if c.format == "sparkplug" {
		fmt.Fprintf(&b, "  [upstream.sparkplug]\n  group_id = \"bench\"\n  edge_node_id = \"bench\"\n")
	}
	fmt.Fprintf(&b, "\n[[modbus]]\nname = %q\nurl = \"tcp://%s\"\nunit_id = 1\ninterval = %q\ntimeout = \"1s\"\n", adapter, c.device, c.interval)
	for i := range c.points {
		fmt.Fprintf(&b, "  [[modbus.point]]\n  name = \"p%d\"\n  table = \"holding_register\"\n  address = %d\n", i, i)
	}
	return b.String()
}

// gw is one running gateway process.
type gw struct {
	t       testing.TB
	proc    *peers.Process
	logs    *peers.Lines
	url     string // of /metrics
	started time.Time
}

// startGateway runs the binary with c and returns once it serves metrics.
// name labels its CPU profile when the harness writes profiles.
func (r *rig) startGateway(name string, c gwConfig) *gw {
	r.t.Helper()
	if c.dir == "" {
		c.dir = filepath.Join(r.t.TempDir(), "buffer")
	}
	addr := peers.FreeAddr(r.t)
	cfg := filepath.Join(r.t.TempDir(), "fieldgate.toml")
	r.gateways++
	if err := os.WriteFile(cfg, []byte(c.render(fmt.Sprintf("bench%d", r.gateways), addr)), 0o600); err != nil {
		r.t.Fatal(err)
	}
	g := &gw{t: r.t, logs: &peers.Lines{}, url: "http://" + addr + "/metrics"}
	cmd := exec.Command(r.gateway, "run", "-c", cfg)
	cmd.Stderr = g.logs
	if *profileFlag != "" {
		if err := os.MkdirAll(*profileFlag, 0o755); err != nil {
			r.t.Fatal(err)
		}
		cmd.Env = append(os.Environ(), "FIELDGATE_PROFILE="+filepath.Join(*profileFlag, name))
	}
	g.started = time.Now()
	proc, err := peers.StartProcess(r.t, cmd, g.logs, "serving metrics", 20*time.Second)
	if err != nil {
		r.t.Fatalf("gateway %s: %v\n%s", name, err, g.logs)
	}
	g.proc = proc
	r.t.Cleanup(func() {
		g.stop()
		if r.t.Failed() {
			r.t.Logf("gateway %s log:\n%s", name, g.logs)
		}
	})
	return g
}

// stop ends the gateway cleanly (SIGTERM), as a profile needs.
func (g *gw) stop() { g.proc.Stop() }

// metrics scrapes series from one /metrics response (each its name with
// labels, as exposed), 0 for one absent.
func (g *gw) metrics(series ...string) []uint64 {
	g.t.Helper()
	resp, err := http.Get(g.url)
	if err != nil {
		g.t.Fatalf("scraping metrics: %v", err)
	}
	defer resp.Body.Close()
	vs := make([]uint64, len(series))
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		for i, s := range series {
			if v, ok := strings.CutPrefix(sc.Text(), s+" "); ok {
				vs[i], _ = strconv.ParseUint(v, 10, 64)
			}
		}
	}
	return vs
}

// awaitMetrics scrapes series every 100 ms until ok accepts their values.
func (g *gw) awaitMetrics(limit time.Duration, ok func([]uint64) bool, series ...string) {
	g.t.Helper()
	deadline := time.Now().Add(limit)
	for {
		vs := g.metrics(series...)
		if ok(vs) {
			return
		}
		if time.Now().After(deadline) {
			g.t.Fatalf("%v = %v, still not there after %v", series, vs, limit)
		}
		time.Sleep(100 * time.Millisecond) // polling an HTTP endpoint: there is no event to await
	}
}

// usage is a process's CPU time and memory at one moment.
type usage struct {
	cpu      time.Duration // user + system, every thread
	rss, hwm float64       // MiB: resident now, and the peak so far
}

// sample reads a process's usage from /proc. CPU time is the sum of the
// threads' scheduler run times (nanoseconds; /proc/pid/stat counts 10 ms
// ticks, too coarse for a gateway that idles).
func sample(pid int) (usage, error) {
	var u usage
	var err error
	if u.rss, u.hwm, err = peers.ProcMem(pid); err != nil {
		return u, err
	}
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return u, err
	}
	for _, task := range tasks {
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/schedstat", pid, task.Name()))
		if err != nil {
			continue // the thread exited meanwhile
		}
		ns, _ := strconv.ParseInt(strings.Fields(string(data))[0], 10, 64)
		u.cpu += time.Duration(ns)
	}
	return u, nil
}

// monitor samples a process's RSS every 100 ms, keeping the highest seen
// since the last reset.
type monitor struct {
	pid  int
	stop chan struct{}
	done chan struct{}

	mu      sync.Mutex
	highest float64
	samples []float64
}

func watch(pid int) *monitor {
	m := &monitor{pid: pid, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(m.done)
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			if u, err := sample(pid); err == nil {
				m.mu.Lock()
				m.highest = max(m.highest, u.rss)
				m.samples = append(m.samples, u.rss)
				m.mu.Unlock()
			}
			select {
			case <-m.stop:
				return
			case <-t.C:
			}
		}
	}()
	return m
}

// reset starts a new window and returns the highest RSS and the samples of
// the one that ends.
func (m *monitor) reset() (highest float64, samples []float64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	highest, samples = m.highest, m.samples
	m.highest, m.samples = 0, nil
	return highest, samples
}

func (m *monitor) close() {
	close(m.stop)
	<-m.done
}

// usageOf samples the gateway, failing the test if it has exited.
func (g *gw) usage() usage {
	g.t.Helper()
	return usageOf(g.t, g.proc.Pid())
}

// usageOf samples the usage of process pid.
func usageOf(t testing.TB, pid int) usage {
	t.Helper()
	u, err := sample(pid)
	if err != nil {
		t.Fatalf("usage of process %d: %v", pid, err)
	}
	return u
}

// copyDir copies a buffer directory (flat: segments and state files).
func copyDir(t testing.TB, from, to string) {
	t.Helper()
	if err := os.MkdirAll(to, 0o755); err != nil {
		t.Fatal(err)
	}
	es, err := os.ReadDir(from)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range es {
		in, err := os.Open(filepath.Join(from, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out, err := os.Create(filepath.Join(to, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(out, in); err != nil {
			t.Fatal(err)
		}
		_ = in.Close()
		if err := out.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
