// Package bench is fieldgate's performance instrument, run by `make bench`:
// the Go benchmarks of the hot paths, then the real gateway binary against a
// private Mosquitto on loopback and a Modbus TCP device served by
// github.com/simonvetter/modbus (test/modbussim), measured beside the
// ceiling, what a bare paho.mqtt.golang publisher gets through the same
// broker to the same subscriber in the same run. It writes a JSON results
// file and prints a table of every figure beside its target.
// docs/PERFORMANCE.md describes the method and holds the latest figures.
//
// TestBench runs only when asked: `go test ./test/bench -run '^TestBench$'
// -args -mode full` (or smoke: every phase at a small size, to check that
// the instrument works, asserting nothing about the figures).
package bench

import (
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/fieldgate/fieldgate/test/peers"
)

var (
	modeFlag    = flag.String("mode", "", "full or smoke; TestBench skips without it")
	outFlag     = flag.String("out", "", "write the results as JSON to this file")
	onlyFlag    = flag.String("only", "", "run only these phases (comma-separated: gobench,throughput,latency,wire,drain,footprint)")
	roundsFlag  = flag.Int("rounds", 0, "rounds of the ceiling and throughput measurements (default 3 in full mode, 1 in smoke)")
	profileFlag = flag.String("profile", "", "build the gateway with the profile tag and write a CPU and an allocation profile per gateway run into this directory")
	formatsFlag = flag.String("formats", "", "measure only these payload formats (comma-separated; default all)")
)

// formats returns those of fs that -formats lets through.
func formats(fs ...string) []string {
	if *formatsFlag == "" {
		return fs
	}
	allowed := strings.Split(*formatsFlag, ",")
	return slices.DeleteFunc(slices.Clone(fs), func(f string) bool { return !slices.Contains(allowed, f) })
}

// sizes are the workload's dimensions in one mode.
type sizes struct {
	goBenchTime            string        // -benchtime of the hot-path benchmarks
	warm, window           time.Duration // throughput: warm-up, then the measured window
	latencyWindow          time.Duration
	wireCycles             int           // poll cycles whose messages are weighed per format
	backlog                int           // readings in the drain's backlog
	footprint              time.Duration // the footprint runs' measured window
	outageSteady, outage   time.Duration // the outage run: connected, then broker down
	footprintWarm          time.Duration
	drainLimit, phaseLimit time.Duration // bounds on waits
}

var modes = map[string]sizes{
	"full": {
		goBenchTime: "300ms", warm: 2 * time.Second, window: 5 * time.Second, latencyWindow: 10 * time.Second,
		wireCycles: 20, backlog: 1_000_000, footprint: 60 * time.Second, footprintWarm: 5 * time.Second,
		outageSteady: 10 * time.Second, outage: 60 * time.Second, drainLimit: 3 * time.Minute, phaseLimit: 4 * time.Minute,
	},
	"smoke": {
		goBenchTime: "1x", warm: 500 * time.Millisecond, window: time.Second, latencyWindow: 2 * time.Second,
		wireCycles: 3, backlog: 20_000, footprint: 3 * time.Second, footprintWarm: time.Second,
		outageSteady: 2 * time.Second, outage: 3 * time.Second, drainLimit: time.Minute, phaseLimit: 2 * time.Minute,
	},
}

// rig is one run of the instrument: its sizes, the peers every phase
// shares and the figures gathered so far.
type rig struct {
	t       *testing.T // the running phase's
	mode    string
	sz      sizes
	rounds  int
	gateway string // the binary under test
	broker  *peers.Mosquitto
	res     results
	// Figures that ratios across phases need.
	ceilingQoS1 float64            // the median of the rounds
	drains      map[string]float64 // readings/s, by format
	appendRate  float64            // BenchmarkAppend/interval, readings/s
	requests    []float64          // Modbus requests per cycle in the throughput runs
	gateways    int                // started so far, each with its own id
}

func TestBench(t *testing.T) {
	sz, ok := modes[*modeFlag]
	if !ok {
		t.Skip("the performance instrument runs with -args -mode full|smoke (make bench)")
	}
	r := &rig{t: t, mode: *modeFlag, sz: sz, rounds: *roundsFlag, drains: map[string]float64{}}
	if r.rounds <= 0 {
		r.rounds = map[string]int{"full": 3, "smoke": 1}[r.mode]
	}
	r.res = results{Mode: r.mode, Started: time.Now().UTC(), Machine: machine(), Rounds: r.rounds}
	r.gateway = buildGateway(t, *profileFlag != "")
	if fi, err := os.Stat(r.gateway); err == nil {
		r.res.add("binary size (stripped, amd64)", float64(fi.Size())/(1<<20), "MiB", "", nil)
	}
	r.broker = peers.StartMosquitto(t, peers.MosquittoOptions{})
	phases := []struct {
		name string
		run  func()
	}{
		{"gobench", r.goBench},
		{"throughput", r.throughput},
		{"latency", r.latency},
		{"wire", r.wire},
		{"drain", r.drain},
		{"footprint", r.footprint},
	}
	only := strings.Split(*onlyFlag, ",")
	for _, p := range phases {
		if *onlyFlag != "" && !slices.Contains(only, p.name) {
			continue
		}
		// What earlier phases wrote goes to disk first: its writeback
		// would otherwise fall into this phase's fsyncs and latencies.
		syscall.Sync()
		start, figures := time.Now(), len(r.res.Figures)
		t.Run(p.name, func(st *testing.T) {
			r.t = st // a phase's peers end with it, and its failure is its own
			p.run()
			r.produced(r.res.Figures[figures:])
		})
		r.t = t
		r.res.Phases = append(r.res.Phases, phase{Name: p.name, Seconds: time.Since(start).Seconds()})
		if t.Failed() {
			break
		}
	}
	r.ratios()
	r.res.Seconds = time.Since(r.res.Started).Seconds()
	r.report()
}

// produced fails the phase unless it measured something, and every figure
// is a number: what the smoke run asserts. No figure is held to its target
// here; the table says which are met.
func (r *rig) produced(fs []figure) {
	if len(fs) == 0 {
		r.t.Error("the phase produced no figure")
	}
	for _, f := range fs {
		if math.IsNaN(f.Value) || math.IsInf(f.Value, 0) {
			r.t.Errorf("%s: %v %s", f.Name, f.Value, f.Unit)
		}
	}
}

// ratios records the figures measured against the QoS 1 ceiling of this
// run, from the phases that ran.
func (r *rig) ratios() {
	if r.ceilingQoS1 == 0 {
		return
	}
	if d, ok := r.drains["json"]; ok {
		r.res.check("drain json / QoS 1 ceiling", d/r.ceilingQoS1, "×", "≥ 0.8", atLeast(0.8))
	}
	if d, ok := r.drains["batch"]; ok {
		r.res.check("drain batch / QoS 1 ceiling", d/r.ceilingQoS1, "×", "≥ 5", atLeast(5))
	}
	if d, ok := r.drains["compact"]; ok {
		r.res.add("drain compact / QoS 1 ceiling", d/r.ceilingQoS1, "×", "", nil)
	}
	if r.appendRate > 0 {
		r.res.check("buffer append (fsync interval) / QoS 1 ceiling", r.appendRate/r.ceilingQoS1, "×", "≥ 10", atLeast(10))
	}
}

// results is what the JSON file holds.
type results struct {
	Mode    string      `json:"mode"`
	Started time.Time   `json:"started"`
	Seconds float64     `json:"seconds"`
	Machine machineInfo `json:"machine"`
	Rounds  int         `json:"rounds"`
	Phases  []phase     `json:"phases"`
	Figures []figure    `json:"figures"`
	GoBench []goBench   `json:"go_benchmarks"`
}

type phase struct {
	Name    string  `json:"name"`
	Seconds float64 `json:"seconds"`
}

// figure is one measured figure; with a target, Met says whether this run
// reached it (ratios and per-reading costs; absolute rates depend on the
// machine).
type figure struct {
	Name   string    `json:"name"`
	Value  float64   `json:"value"`
	Range  []float64 `json:"range,omitempty"` // lowest and highest over the rounds
	Unit   string    `json:"unit"`
	Target string    `json:"target,omitempty"`
	Met    *bool     `json:"met,omitempty"`
}

// add records a figure; met is nil for one without a target.
func (res *results) add(name string, v float64, unit, target string, met *bool) {
	res.Figures = append(res.Figures, figure{Name: name, Value: v, Unit: unit, Target: target, Met: met})
}

// addRange records the median of several rounds with their range.
func (res *results) addRange(name string, vs []float64, unit, target string, meets func(float64) bool) {
	s := slices.Sorted(slices.Values(vs))
	med := s[len(s)/2]
	f := figure{Name: name, Value: med, Unit: unit, Target: target}
	if len(s) > 1 {
		f.Range = []float64{s[0], s[len(s)-1]}
	}
	if meets != nil {
		m := meets(med)
		f.Met = &m
	}
	res.Figures = append(res.Figures, f)
}

// check records a figure against a target.
func (res *results) check(name string, v float64, unit, target string, meets func(float64) bool) {
	m := meets(v)
	res.add(name, v, unit, target, &m)
}

func (r *rig) report() {
	if *outFlag != "" {
		data, err := json.MarshalIndent(r.res, "", "  ")
		if err != nil {
			r.t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Dir(*outFlag), 0o755); err != nil {
			r.t.Fatal(err)
		}
		if err := os.WriteFile(*outFlag, append(data, '\n'), 0o644); err != nil {
			r.t.Fatal(err)
		}
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintf(w, "\nfieldgate bench (%s, %d round(s), %.0f s) on %s\n", r.mode, r.rounds, r.res.Seconds, r.res.Machine)
	fmt.Fprintln(w, "figure\tvalue\trange\ttarget\t")
	for _, f := range r.res.Figures {
		rng, mark := "", ""
		if len(f.Range) == 2 {
			rng = num(f.Range[0]) + "–" + num(f.Range[1])
		}
		if f.Met != nil {
			mark = map[bool]string{true: " ok", false: " MISSED"}[*f.Met]
		}
		fmt.Fprintf(w, "%s\t%s %s\t%s\t%s%s\t\n", f.Name, num(f.Value), f.Unit, rng, f.Target, mark)
	}
	_ = w.Flush()
	if *outFlag != "" {
		fmt.Printf("results: %s\n", *outFlag)
	}
}

// num formats a figure with the precision its size deserves.
func num(v float64) string {
	switch a := max(v, -v); {
	case a >= 1000:
		return fmt.Sprintf("%.0f", v)
	case a >= 10:
		return fmt.Sprintf("%.1f", v)
	case a >= 1:
		return fmt.Sprintf("%.2f", v)
	}
	return fmt.Sprintf("%.3g", v)
}

// machineInfo names the machine the figures were measured on.
type machineInfo struct {
	CPU   string `json:"cpu"`
	Cores int    `json:"cores"`
	Go    string `json:"go"`
	OS    string `json:"os"`
}

func (m machineInfo) String() string {
	return fmt.Sprintf("%s, %d cores, %s, %s", m.CPU, m.Cores, m.OS, m.Go)
}

func machine() machineInfo {
	m := machineInfo{CPU: "unknown", Cores: runtime.NumCPU(), Go: runtime.Version(), OS: runtime.GOOS + "/" + runtime.GOARCH}
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	return m
}

// buildGateway builds the gateway as `make build` does (static, stripped),
// with the profile tag when profiles are asked for.
func buildGateway(t *testing.T, profile bool) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "fieldgate")
	args := []string{"build", "-trimpath", "-ldflags", "-s -w", "-o", bin}
	if profile {
		args = append(args, "-tags", "profile")
	}
	cmd := exec.Command("go", append(args, "../../cmd/fieldgate")...)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building the gateway: %v\n%s", err, out)
	}
	return bin
}
