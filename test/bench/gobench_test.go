package bench

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"strconv"
	"strings"
)

// hotPaths are the packages whose benchmarks measure the per-reading path:
// decoding and coalescing (modbus), payload encoding and command parsing
// (bridge), append and read (buffer).
var hotPaths = []string{"./adapters/modbus", "./bridge", "./buffer"}

// goBench is one Go benchmark's line of output.
type goBench struct {
	Name    string             `json:"name"`
	N       int64              `json:"n"`
	Metrics map[string]float64 `json:"metrics"` // ns/op, B/op, allocs/op and the benchmark's own
}

// goBench runs the hot paths' benchmarks with -benchmem (in smoke mode
// every benchmark of the module, once, so they keep working) and keeps
// their figures.
func (r *rig) goBench() {
	pkgs := hotPaths
	if r.mode == "smoke" {
		pkgs = []string{"./..."}
	}
	args := append([]string{"test", "-run", "^$", "-bench", ".", "-benchmem", "-benchtime", r.sz.goBenchTime}, pkgs...)
	cmd := exec.Command("go", args...)
	cmd.Dir = "../.."
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, os.Stderr
	err := cmd.Run()
	os.Stdout.Write(out.Bytes())
	if err != nil {
		r.t.Fatalf("go %s: %v", strings.Join(args, " "), err)
	}
	r.res.GoBench = parseGoBench(out.Bytes())
	if len(r.res.GoBench) == 0 {
		r.t.Fatal("no benchmark results")
	}
	if b, ok := r.bench("BenchmarkAppend/interval"); ok {
		r.res.check("buffer bytes on disk per reading (BenchmarkAppend)", b.Metrics["bytes/reading"], "B", "≤ 12.5", atMost(12.5))
		r.appendRate = b.Metrics["readings/s"]
		r.res.add("buffer append (fsync interval)", r.appendRate, "readings/s", "", nil)
	}
}

// bench finds a benchmark by name (without the -GOMAXPROCS suffix).
func (r *rig) bench(name string) (goBench, bool) {
	for _, b := range r.res.GoBench {
		if b.Name == name {
			return b, true
		}
	}
	return goBench{}, false
}

func atMost(v float64) func(float64) bool { return func(x float64) bool { return x <= v } }

// parseGoBench reads the result lines of go test -bench.
func parseGoBench(out []byte) []goBench {
	var bs []goBench
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") {
			continue
		}
		n, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil {
			continue
		}
		name := f[0]
		if i := strings.LastIndex(name, "-"); i > 0 {
			if _, err := strconv.Atoi(name[i+1:]); err == nil {
				name = name[:i]
			}
		}
		b := goBench{Name: name, N: n, Metrics: map[string]float64{}}
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				break
			}
			b.Metrics[f[i+1]] = v
		}
		bs = append(bs, b)
	}
	return bs
}
