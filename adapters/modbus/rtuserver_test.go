package modbus

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fieldgate/fieldgate/config"
	"github.com/fieldgate/fieldgate/test/peers"
)

// Test plumbing around a real Modbus RTU server: test/rtuserver, Debian's
// python3-pymodbus serving several units on the device end of a socat PTY
// pair (or behind a socat TCP listener for rtu+tcp://).

// rtuPython is Debian's Python, which has python3-pymodbus; a pyenv or
// virtualenv python3 on PATH may not.
const (
	rtuPython = "/usr/bin/python3"
	rtuScript = "../../test/rtuserver/rtuserver.py"
)

var line8N1 = config.Line{BaudRate: 9600, DataBits: 8, Parity: "N", StopBits: 1}

// pymodbus tables by config table name.
var rtuTables = map[string]string{
	config.Coil: "co", config.DiscreteInput: "di", config.HoldingRegister: "hr", config.InputRegister: "ir",
}

// unitRegs is what one unit serves: pymodbus table → address → values.
type unitRegs map[string]map[string][]uint16

// seed stores vals from addr in table, as device.seed does.
func (u unitRegs) seed(table string, addr int, vals []uint16) {
	tb := rtuTables[table]
	if u[tb] == nil {
		u[tb] = map[string][]uint16{}
	}
	u[tb][strconv.Itoa(addr)] = vals
}

// needRTUServer fails the test under CI=true, and skips it otherwise, when
// the server's Python packages are missing.
func needRTUServer(t testing.TB) {
	t.Helper()
	out, err := exec.Command(rtuPython, "-c", "import pymodbus, serial_asyncio").CombinedOutput()
	if err == nil {
		return
	}
	msg := fmt.Sprintf("the Modbus RTU server needs python3-pymodbus and python3-serial-asyncio: %v\n%s", err, out)
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// rtuServer is one running test/rtuserver process.
type rtuServer struct {
	t         testing.TB
	cmd       *exec.Cmd
	in        io.WriteCloser
	replies   chan string // answers to commands, and "ready"
	corrupted chan string // "corrupted UNIT" notes
	stderr    syncBuffer
	quit      chan struct{} // closed by stop: nobody reads any more
	done      chan struct{} // closed once the process has exited
}

// startRTUServer serves units on the serial device at port until the test
// ends, and returns once the port is open.
func startRTUServer(t testing.TB, port string, line config.Line, units map[byte]unitRegs) *rtuServer {
	t.Helper()
	needRTUServer(t)
	js := map[string]unitRegs{}
	for u, regs := range units {
		js[strconv.Itoa(int(u))] = regs
	}
	b, err := json.Marshal(js)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "units.json")
	if err := os.WriteFile(file, b, 0o600); err != nil {
		t.Fatal(err)
	}
	s := &rtuServer{t: t, replies: make(chan string, 16), corrupted: make(chan string, 16),
		quit: make(chan struct{}), done: make(chan struct{})}
	s.cmd = exec.Command(rtuPython, rtuScript, "--port", port, "--units", file,
		"--baud", strconv.Itoa(line.BaudRate), "--bytesize", strconv.Itoa(line.DataBits),
		"--parity", line.Parity, "--stopbits", strconv.Itoa(line.StopBits))
	s.cmd.Stderr = &s.stderr
	if s.in, err = s.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	out, err := s.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("start the RTU server: %v", err)
	}
	go func() {
		defer close(s.done)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			to := s.replies
			if strings.HasPrefix(sc.Text(), "corrupted ") {
				to = s.corrupted
			}
			select {
			case to <- sc.Text():
			case <-s.quit:
			}
		}
		_ = s.cmd.Wait() // the exit status of a stopped server says nothing
	}()
	t.Cleanup(s.stop)
	if l := s.reply(15 * time.Second); l != "ready" {
		t.Fatalf("RTU server said %q, not ready", l)
	}
	return s
}

// reply waits for the server's next answer.
func (s *rtuServer) reply(within time.Duration) string {
	s.t.Helper()
	select {
	case l := <-s.replies:
		return l
	case <-s.done:
		s.t.Fatalf("RTU server exited:\n%s", s.stderr.String())
	case <-time.After(within):
		s.t.Fatalf("no answer from the RTU server within %s:\n%s", within, s.stderr.String())
	}
	return ""
}

// command sends one command line and returns the answer.
func (s *rtuServer) command(format string, args ...any) string {
	s.t.Helper()
	if _, err := fmt.Fprintf(s.in, format+"\n", args...); err != nil {
		s.t.Fatalf("RTU server command: %v", err)
	}
	l := s.reply(5 * time.Second)
	if strings.HasPrefix(l, "error") {
		s.t.Fatalf("RTU server: %s", l)
	}
	return l
}

// stop closes the server's stdin, which ends it, and waits.
func (s *rtuServer) stop() {
	close(s.quit)
	_ = s.in.Close()
	select {
	case <-s.done:
	case <-time.After(5 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
}

// syncBuffer is a bytes.Buffer for a child's stderr, read while it runs.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (w *syncBuffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *syncBuffer) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

// rtuBus is a serial cable (a socat PTY pair) with the RTU server serving
// units on its far end; adapters open url.
type rtuBus struct {
	cable *peers.Socat
	srv   *rtuServer
	url   string
}

func startRTUBus(t testing.TB, line config.Line, units map[byte]unitRegs) *rtuBus {
	t.Helper()
	needRTUServer(t)
	cable := peers.StartSocat(t, t.TempDir())
	return &rtuBus{cable: cable, srv: startRTUServer(t, cable.B, line, units), url: "rtu://" + cable.A}
}

// tcpBridge is socat passing the bytes of each TCP connection to addr to
// and from a serial device, as an Ethernet–RS-485 converter in transparent
// mode does.
type tcpBridge struct {
	cmd    *exec.Cmd
	exited chan struct{}
}

// startTCPBridge listens on addr (a loopback host:port) for the serial
// device at port until stop or the end of the test.
func startTCPBridge(t testing.TB, addr, port string) *tcpBridge {
	t.Helper()
	_, p, _ := strings.Cut(addr, ":")
	log := &readyLog{want: []byte("listening on"), ready: make(chan struct{})}
	b := &tcpBridge{exited: make(chan struct{})}
	b.cmd = exec.Command("socat", "-d", "-d",
		"TCP-LISTEN:"+p+",bind=127.0.0.1,reuseaddr,fork", "FILE:"+port+",raw,echo=0")
	b.cmd.Stderr = log
	// Its forked children, one per connection, go down with it.
	b.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := b.cmd.Start(); err != nil {
		t.Fatalf("start socat: %v", err)
	}
	go func() {
		_ = b.cmd.Wait() // the exit status of a stopped socat says nothing
		close(b.exited)
	}()
	t.Cleanup(b.stop)
	select {
	case <-log.ready:
	case <-b.exited:
		t.Fatalf("socat exited:\n%s", log.String())
	case <-time.After(10 * time.Second):
		t.Fatalf("socat not listening within 10s:\n%s", log.String())
	}
	return b
}

// stop ends socat and the children serving its connections.
func (b *tcpBridge) stop() {
	_ = syscall.Kill(-b.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-b.exited:
	case <-time.After(5 * time.Second):
		_ = syscall.Kill(-b.cmd.Process.Pid, syscall.SIGKILL)
		<-b.exited
	}
}

// readyLog keeps a child's log and signals when want appears in it.
type readyLog struct {
	syncBuffer
	want  []byte
	ready chan struct{}
	seen  bool
}

func (w *readyLog) Write(p []byte) (int, error) {
	n, err := w.syncBuffer.Write(p)
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.seen && bytes.Contains(w.b.Bytes(), w.want) {
		w.seen = true
		close(w.ready)
	}
	return n, err
}

// rtuConfig is an adapter config for unit on the bus at url, 9600 8N1.
func rtuConfig(url string, unit int, interval time.Duration, points ...config.ModbusPoint) *config.Modbus {
	cfg := deviceConfig(url, interval, points...)
	cfg.Name, cfg.UnitID, cfg.Line = fmt.Sprintf("unit%d", unit), unit, line8N1
	return cfg
}
