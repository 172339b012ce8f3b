// Package test holds fieldgate's integration tests: the real binary, built
// once per run, against real peers (Mosquitto or the embedded mochi broker,
// and a Modbus server from github.com/simonvetter/modbus).
package test

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fieldgate/fieldgate/test/peers"
)

// fieldgateBin is the gateway binary under test, built with the race
// detector so the integration tests also hunt races in the daemon.
var fieldgateBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "fieldgate-test-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fieldgateBin = filepath.Join(dir, "fieldgate")
	build := exec.Command("go", "build", "-race", "-o", fieldgateBin, "../cmd/fieldgate")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building fieldgate:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// wait bounds every event a test awaits.
const wait = 20 * time.Second

// gateway is one running fieldgate process.
type gateway struct {
	t    *testing.T
	proc *peers.Process
	logs *peers.Lines
}

// writeConfig writes a config file into a fresh temp dir and returns its path.
func writeConfig(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "fieldgate.toml")
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// startGateway runs `fieldgate run -c cfg` with extra environment entries;
// the test's cleanup kills it if the test has not stopped it.
func startGateway(t *testing.T, cfg string, env ...string) *gateway {
	t.Helper()
	return startBinary(t, fieldgateBin, cfg, env...)
}

// plainBinary builds, once, the gateway as `make build` does (no race
// detector, no cgo), for tests that measure it or need the build shipped.
var plainBinary = sync.OnceValues(func() (string, error) {
	bin := filepath.Join(filepath.Dir(fieldgateBin), "fieldgate-plain")
	build := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", bin, "../cmd/fieldgate")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	out, err := build.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("build: %v\n%s", err, out)
	}
	return bin, nil
})

// startBinary is startGateway with another build of the gateway.
func startBinary(t *testing.T, bin, cfg string, env ...string) *gateway {
	t.Helper()
	g := &gateway{t: t, logs: &peers.Lines{}}
	cmd := exec.Command(bin, "run", "-c", cfg)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = g.logs
	proc, err := peers.StartProcess(t, cmd, g.logs, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	g.proc = proc
	t.Cleanup(func() {
		g.kill9() // no graceful stop to wait for: the test is over
		if t.Failed() {
			t.Logf("gateway log:\n%s", g.logs)
		}
	})
	return g
}

// stop sends SIGTERM and returns the exit code; the stop must finish within
// the bounded shutdown of SPEC §1.
func (g *gateway) stop() int {
	g.t.Helper()
	g.proc.Signal(syscall.SIGTERM)
	return g.exitCode(15 * time.Second)
}

// kill9 kills the gateway the hard way.
func (g *gateway) kill9() {
	g.t.Helper()
	g.proc.Signal(syscall.SIGKILL)
	<-g.proc.Done()
}

func (g *gateway) exitCode(timeout time.Duration) int {
	g.t.Helper()
	select {
	case <-g.proc.Done():
	case <-time.After(timeout):
		g.t.Fatalf("gateway still running %v after SIGTERM", timeout)
	}
	err := g.proc.Err()
	if err == nil {
		return 0
	}
	if ee := (*exec.ExitError)(nil); errors.As(err, &ee) {
		return ee.ExitCode()
	}
	g.t.Fatalf("gateway wait: %v", err)
	return -1
}

// waitLog waits for a log line containing every one of the substrings.
func (g *gateway) waitLog(subs ...string) string {
	g.t.Helper()
	return g.logs.Await(g.t, wait, subs...)
}

// reading is the JSON payload format of SPEC §3.
type reading struct {
	Value any    `json:"value"`
	TS    string `json:"ts"`
	Seq   uint64 `json:"seq"`
	Unit  string `json:"unit"`
}

func readingOf(t *testing.T, m peers.Message) reading {
	t.Helper()
	var r reading
	if err := json.Unmarshal(m.Payload, &r); err != nil {
		t.Fatalf("%s: payload %q is not a JSON reading: %v", m.Topic, m.Payload, err)
	}
	return r
}

// seqs returns the seq of every reading among ms (topics under prefix with
// two more levels), in arrival order.
func seqs(t *testing.T, prefix string, ms []peers.Message) []uint64 {
	t.Helper()
	var out []uint64
	for _, m := range ms {
		rest, ok := strings.CutPrefix(m.Topic, prefix+"/")
		if !ok || strings.Count(rest, "/") != 1 || strings.HasSuffix(rest, "/status") {
			continue
		}
		out = append(out, readingOf(t, m).Seq)
	}
	return out
}

// checkNoGap fails the test unless the seqs cover every number from 1 to
// their maximum (duplicates are allowed: delivery is at-least-once) and
// arrived in order: each seq's first copy after every lower seq's.
func checkNoGap(t *testing.T, got []uint64) uint64 {
	t.Helper()
	return checkRun(t, got, 1)
}

// checkRun is checkNoGap for seqs from first on, and ignores any below.
func checkRun(t *testing.T, got []uint64, first uint64) uint64 {
	t.Helper()
	seen := map[uint64]bool{}
	var max uint64
	for i, s := range got {
		if s < first {
			continue
		}
		if !seen[s] && s < max {
			t.Fatalf("reading %d: seq %d first arrived after seq %d", i, s, max)
		}
		seen[s] = true
		if s > max {
			max = s
		}
	}
	for s := first; s <= max; s++ {
		if !seen[s] {
			t.Fatalf("seq %d missing among %d readings from %d to %d", s, len(got), first, max)
		}
	}
	return max
}
