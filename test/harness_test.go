// Package test holds fieldgate's integration tests: the real binary, built
// once per run, against real peers (Mosquitto or the embedded mochi broker,
// and a Modbus server from github.com/simonvetter/modbus).
package test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
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
	cfg  string
	cmd  *exec.Cmd
	logs *logLines
	done chan struct{}
	err  error
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

// startGateway runs `fieldgate run -c cfg`; the test's cleanup kills it if
// the test has not stopped it.
func startGateway(t *testing.T, cfg string) *gateway {
	t.Helper()
	g := &gateway{t: t, cfg: cfg, logs: newLogLines(), done: make(chan struct{})}
	g.cmd = exec.Command(fieldgateBin, "run", "-c", cfg)
	stderr, err := g.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := g.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go g.logs.read(stderr)
	go func() {
		g.err = g.cmd.Wait()
		close(g.done)
	}()
	t.Cleanup(func() {
		select {
		case <-g.done:
		default:
			_ = g.cmd.Process.Kill()
			<-g.done
		}
		if t.Failed() {
			t.Logf("gateway log:\n%s", g.logs.String())
		}
	})
	return g
}

// stop sends SIGTERM and returns the exit code; the stop must finish within
// the bounded shutdown of SPEC §1.
func (g *gateway) stop() int {
	g.t.Helper()
	_ = g.cmd.Process.Signal(syscall.SIGTERM)
	return g.exitCode(15 * time.Second)
}

// kill9 kills the gateway the hard way.
func (g *gateway) kill9() {
	g.t.Helper()
	_ = g.cmd.Process.Signal(syscall.SIGKILL)
	<-g.done
}

func (g *gateway) exitCode(timeout time.Duration) int {
	g.t.Helper()
	select {
	case <-g.done:
	case <-time.After(timeout):
		g.t.Fatalf("gateway still running %v after SIGTERM", timeout)
	}
	if g.err == nil {
		return 0
	}
	if ee, ok := g.err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	g.t.Fatalf("gateway wait: %v", g.err)
	return -1
}

// waitLog waits for a log line containing every one of the substrings.
func (g *gateway) waitLog(subs ...string) string {
	g.t.Helper()
	line, ok := g.logs.waitFor(wait, subs...)
	if !ok {
		g.t.Fatalf("no gateway log line with %q within %v", subs, wait)
	}
	return line
}

// logLines collects a process's output lines and lets tests await one.
type logLines struct {
	mu    sync.Mutex
	lines []string
	more  chan struct{} // closed and replaced at each new line
}

func newLogLines() *logLines { return &logLines{more: make(chan struct{})} }

func (l *logLines) read(f interface{ Read([]byte) (int, error) }) {
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		l.mu.Lock()
		l.lines = append(l.lines, sc.Text())
		close(l.more)
		l.more = make(chan struct{})
		l.mu.Unlock()
	}
}

func (l *logLines) waitFor(timeout time.Duration, subs ...string) (string, bool) {
	deadline := time.After(timeout)
	next := 0
	for {
		l.mu.Lock()
		for ; next < len(l.lines); next++ {
			if containsAll(l.lines[next], subs) {
				line := l.lines[next]
				l.mu.Unlock()
				return line, true
			}
		}
		more := l.more
		l.mu.Unlock()
		select {
		case <-more:
		case <-deadline:
			return "", false
		}
	}
}

func (l *logLines) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

func containsAll(s string, subs []string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}

// message is one MQTT message a test subscriber received.
type message struct {
	Topic    string
	Payload  string
	Retained bool
}

// reading is the JSON payload format of SPEC §3.
type reading struct {
	Value any    `json:"value"`
	TS    string `json:"ts"`
	Seq   uint64 `json:"seq"`
	Unit  string `json:"unit"`
}

func (m message) reading(t *testing.T) reading {
	t.Helper()
	var r reading
	if err := json.Unmarshal([]byte(m.Payload), &r); err != nil {
		t.Fatalf("%s: payload %q is not a JSON reading: %v", m.Topic, m.Payload, err)
	}
	return r
}

// subscriber is a plain MQTT client observing the broker.
type subscriber struct {
	t    *testing.T
	c    paho.Client
	msgs chan message
}

// subscribe connects to broker (a tcp:// URL) and subscribes to filter at QoS 1.
func subscribe(t *testing.T, broker, filter string) *subscriber {
	t.Helper()
	s := &subscriber{t: t, msgs: make(chan message, 100000)}
	opts := paho.NewClientOptions().AddBroker(broker).
		SetClientID(fmt.Sprintf("test-sub-%d", time.Now().UnixNano())).
		SetCleanSession(true).SetAutoReconnect(true).SetOrderMatters(true).
		SetConnectRetry(true).SetConnectRetryInterval(200 * time.Millisecond)
	opts.SetOnConnectHandler(func(c paho.Client) {
		c.Subscribe(filter, 1, func(_ paho.Client, m paho.Message) {
			s.msgs <- message{Topic: m.Topic(), Payload: string(m.Payload()), Retained: m.Retained()}
		})
	})
	s.c = paho.NewClient(opts)
	if tok := s.c.Connect(); !tok.WaitTimeout(wait) || tok.Error() != nil {
		t.Fatalf("test subscriber cannot connect to %s: %v", broker, tok.Error())
	}
	t.Cleanup(func() { s.c.Disconnect(100) })
	return s
}

// next returns the next message whose topic is topic (and whose payload
// satisfies ok, when given), skipping others.
func (s *subscriber) next(topic string, ok func(message) bool) message {
	s.t.Helper()
	deadline := time.After(wait)
	for {
		select {
		case m := <-s.msgs:
			if m.Topic == topic && (ok == nil || ok(m)) {
				return m
			}
		case <-deadline:
			s.t.Fatalf("no message on %s within %v", topic, wait)
		}
	}
}

// publish sends one message from the subscriber's client.
func (s *subscriber) publish(topic string, retained bool, payload string) {
	s.t.Helper()
	tok := s.c.Publish(topic, 1, retained, payload)
	if !tok.WaitTimeout(wait) || tok.Error() != nil {
		s.t.Fatalf("publish %s: %v", topic, tok.Error())
	}
}
