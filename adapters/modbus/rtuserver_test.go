package modbus

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
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
	Coil: "co", DiscreteInput: "di", HoldingRegister: "hr", InputRegister: "ir",
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
	peers.Missing(t, "the Modbus RTU server needs python3-pymodbus and python3-serial-asyncio: %v\n%s", err, out)
}

// rtuServer is one running test/rtuserver process.
type rtuServer struct {
	t    testing.TB
	proc *peers.Process
	in   io.Writer
	out  peers.Lines // answers to commands, and "corrupted UNIT" notes
	next int         // the first line of out not taken by reply yet
	log  peers.Lines // stderr
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
	s := &rtuServer{t: t}
	cmd := exec.Command(rtuPython, rtuScript, "--port", port, "--units", file,
		"--baud", strconv.Itoa(line.BaudRate), "--bytesize", strconv.Itoa(line.DataBits),
		"--parity", line.Parity, "--stopbits", strconv.Itoa(line.StopBits))
	cmd.Stdout, cmd.Stderr = &s.out, &s.log
	if s.in, err = cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	if s.proc, err = peers.StartProcess(t, cmd, &s.out, "ready", 15*time.Second); err != nil {
		t.Fatalf("RTU server: %v:\n%s", err, &s.log)
	}
	s.next = s.out.Len()
	return s
}

// reply waits for the server's next answer.
func (s *rtuServer) reply(within time.Duration) string {
	s.t.Helper()
	deadline := time.NewTimer(within)
	defer deadline.Stop()
	for {
		lines, more := s.out.Since(s.next)
		for _, l := range lines {
			s.next++
			if !strings.HasPrefix(l, "corrupted ") {
				return l
			}
		}
		select {
		case <-more:
		case <-s.proc.Done():
			s.t.Fatalf("RTU server exited:\n%s", &s.log)
		case <-deadline.C:
			s.t.Fatalf("no answer from the RTU server within %s:\n%s", within, &s.log)
		}
	}
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

// startTCPBridge runs socat passing the bytes of each TCP connection to
// addr (a loopback host:port) to and from the serial device at port, as an
// Ethernet–RS-485 converter in transparent mode does, until Stop or the end
// of the test.
func startTCPBridge(t testing.TB, addr, port string) *peers.Process {
	t.Helper()
	_, p, _ := strings.Cut(addr, ":")
	var log peers.Lines
	cmd := exec.Command("socat", "-d", "-d",
		"TCP-LISTEN:"+p+",bind=127.0.0.1,reuseaddr,fork", "FILE:"+port+",raw,echo=0")
	cmd.Stderr = &log
	// Its forked children, one per connection, go down with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	proc, err := peers.StartProcess(t, cmd, &log, "listening on", 10*time.Second)
	if err != nil {
		t.Fatalf("socat TCP bridge: %v:\n%s", err, &log)
	}
	return proc
}

// rtuConfig is an adapter config for unit on the bus at url, 9600 8N1.
func rtuConfig(url string, unit int, interval time.Duration, points ...PointConfig) *Config {
	cfg := deviceConfig(url, interval, points...)
	cfg.Name, cfg.UnitID, cfg.Line = fmt.Sprintf("unit%d", unit), unit, line8N1
	return cfg
}
