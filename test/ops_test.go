package test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fieldgate/fieldgate/test/peers"
)

// get fetches a URL of the gateway (whose listener is up once it logs
// "serving metrics").
func get(t *testing.T, url string) (int, string) {
	t.Helper()
	c := http.Client{Timeout: wait}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(body)
}

func TestMetricsAndHealth(t *testing.T) {
	broker := peers.StartMochi(t)
	_, dev := device(t)
	addr := peers.FreeAddr(t)
	cfg := strings.Replace(config(t.TempDir(), upstream("local", broker.URL()), dev.Addr, "100ms", onePoint),
		"[buffer]", fmt.Sprintf("metrics_listen = %q\n\n[buffer]", addr), 1)
	g := startGateway(t, writeConfig(t, cfg))
	g.waitLog("serving metrics")
	broker.Received.AwaitMessage(t, wait, prefix+"/plc/v", nil)

	// The command link is up once it subscribes.
	broker.AwaitPackets(t, wait, "it-local-cmd", func(ps []peers.Packet) bool {
		return slices.ContainsFunc(ps, func(p peers.Packet) bool { return p.Type == "Subscribe" })
	})

	_, metrics := get(t, "http://"+addr+"/metrics")
	for _, want := range []string{
		`fieldgate_readings_total{adapter="plc"}`,
		`fieldgate_adapter_up{adapter="plc"} 1`,
		`fieldgate_upstream_connected{upstream="local"} 1`,
		`fieldgate_upstream_commands_connected{upstream="local"} 1`,
		`fieldgate_buffer_dropped_total 0`,
		`fieldgate_build_info{`,
		`process_resident_memory_bytes`,
		`process_open_fds`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s:\n%s", want, metrics)
		}
	}
	health := func() (int, map[string]any) {
		code, body := get(t, "http://"+addr+"/healthz")
		var h map[string]any
		if err := json.Unmarshal([]byte(body), &h); err != nil {
			t.Fatalf("healthz %q: %v", body, err)
		}
		return code, h
	}
	if code, h := health(); code != 200 || h["status"] != "ok" || h["upstreams"].(map[string]any)["local"].(map[string]any)["commands_connected"] != true {
		t.Errorf("healthz with everything up: %d %v", code, h)
	}

	dev.Stop()
	g.waitLog("adapter fault", "adapter=plc")
	if code, h := health(); code != 200 || h["status"] != "degraded" ||
		!strings.HasPrefix(fmt.Sprint(h["adapters"].(map[string]any)["plc"]), "error") {
		t.Errorf("healthz with the device down: %d %v", code, h)
	}

	broker.Stop()
	g.waitLog("connection lost", "upstream=local", "in_flight=")
	g.waitLog("connection lost", "upstream=local", "connection=commands")
	if _, h := health(); h["upstreams"].(map[string]any)["local"].(map[string]any)["connected"] != false ||
		h["upstreams"].(map[string]any)["local"].(map[string]any)["commands_connected"] != false {
		t.Errorf("healthz with the broker down: %v", h)
	}
	_, m := get(t, "http://"+addr+"/metrics")
	for _, want := range []string{`fieldgate_upstream_connected{upstream="local"} 0`, `fieldgate_upstream_commands_connected{upstream="local"} 0`} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics with the broker down lack %s:\n%s", want, m)
		}
	}
}

func TestSystemdNotify(t *testing.T) {
	notify := peers.ListenNotify(t)
	seen := 0
	expect := func(want string) {
		t.Helper()
		seen = notify.AwaitNext(t, wait, seen, want)
	}

	broker := peers.StartMochi(t)
	_, dev := device(t)
	g := startGateway(t, writeConfig(t, config(t.TempDir(), upstream("local", broker.URL()), dev.Addr, "100ms", onePoint)),
		"NOTIFY_SOCKET="+notify.Path, "WATCHDOG_USEC=200000")
	expect("READY=1")
	expect("WATCHDOG=1")
	g.proc.Signal(syscall.SIGHUP)
	expect("RELOADING=1")
	expect("READY=1")
	g.proc.Signal(syscall.SIGTERM)
	expect("STOPPING=1")
	if code := g.exitCode(15 * time.Second); code != 0 {
		t.Errorf("clean stop exited %d", code)
	}
}

// TestTimerSlack runs the gateway as `make build` builds it, polling every
// 20 ms: the kernel's slack of its main thread, which the gateway sets
// from whichever thread applies it, is 1 % of that (gateway.timer_slack
// unset); a reload to timer_slack = "0" returns it to the slack the
// gateway started with.
func TestTimerSlack(t *testing.T) {
	bin, err := plainBinary()
	if err != nil {
		t.Fatal(err)
	}
	broker := peers.StartMochi(t)
	_, dev := device(t)
	dir := t.TempDir()
	text := config(dir, upstream("local", broker.URL()), dev.Addr, "20ms", onePoint)
	cfg := writeConfig(t, text)
	inherited := timerSlack(t, os.Getpid())
	g := startBinary(t, bin, cfg)
	broker.Received.AwaitMessage(t, wait, prefix+"/plc/v", nil)
	if got, want := timerSlack(t, g.proc.Pid()), 200*time.Microsecond; got != want {
		t.Errorf("timer slack %v polling every 20 ms, want %v", got, want)
	}

	text = strings.Replace(text, "[gateway]\n", "[gateway]\ntimer_slack = \"0\"\n", 1)
	if err := os.WriteFile(cfg, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	g.proc.Signal(syscall.SIGHUP)
	g.waitLog("configuration reloaded")
	if got := timerSlack(t, g.proc.Pid()); got != inherited {
		t.Errorf("timer slack %v after a reload to timer_slack = \"0\", want the %v it started with", got, inherited)
	}
	if code := g.stop(); code != 0 {
		t.Errorf("clean stop exited %d", code)
	}
}

// timerSlack reads the timer slack of process pid's main thread.
func timerSlack(t *testing.T, pid int) time.Duration {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/timerslack_ns", pid))
	if err != nil {
		t.Fatal(err)
	}
	ns, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return time.Duration(ns)
}
