// Package rtuserver runs rtuserver.py, Debian's python3-pymodbus serving
// Modbus RTU units on a serial device (the far end of a socat PTY pair, or
// behind a socat TCP listener for rtu+tcp://), so that the modbus adapter
// and the commissioning commands are tested against a third-party
// implementation of the protocol.
package rtuserver

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fieldgate/fieldgate/config"
	"github.com/fieldgate/fieldgate/test/peers"
)

// python is Debian's Python, which has python3-pymodbus; a pyenv or
// virtualenv python3 on PATH may not.
const python = "/usr/bin/python3"

// script is rtuserver.py, beside this file.
var script = func() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "rtuserver.py")
}()

// tables are pymodbus's table names by config table name.
var tables = map[string]string{
	"coil": "co", "discrete_input": "di", "holding_register": "hr", "input_register": "ir",
}

// Unit is what one unit serves: pymodbus table (co, di, hr, ir) → address
// → values.
type Unit map[string]map[string][]uint16

// Seed stores vals from addr in table, named as in the config
// (holding_register, …).
func (u Unit) Seed(table string, addr int, vals []uint16) {
	tb := tables[table]
	if u[tb] == nil {
		u[tb] = map[string][]uint16{}
	}
	u[tb][strconv.Itoa(addr)] = vals
}

// Identity is the device identification (FC 43/14) some units answer with;
// the others refuse it with exception 1, illegal function.
type Identity struct {
	Units   []int           `json:"units"`
	Objects map[byte]string `json:"objects"` // object id → value
}

// Need fails the test under CI=true, and skips it otherwise, when the
// server's Python packages are missing.
func Need(t testing.TB) {
	t.Helper()
	out, err := exec.Command(python, "-c", "import pymodbus, serial_asyncio").CombinedOutput()
	if err == nil {
		return
	}
	peers.Missing(t, "the Modbus RTU server needs python3-pymodbus and python3-serial-asyncio: %v\n%s", err, out)
}

// Server is one running rtuserver.py.
type Server struct {
	t    testing.TB
	proc *peers.Process
	in   io.Writer
	// Out holds the answers to commands, and "corrupted UNIT" notes.
	Out  peers.Lines
	next int // the first line of Out not taken by reply yet
	log  peers.Lines
}

// Start serves units on the serial device at port until the test ends, and
// returns once the port is open; id, when not nil, says which of them
// identify themselves and how.
func Start(t testing.TB, port string, line config.Line, units map[byte]Unit, id *Identity) *Server {
	t.Helper()
	Need(t)
	js := map[string]Unit{}
	for u, regs := range units {
		js[strconv.Itoa(int(u))] = regs
	}
	dir := t.TempDir()
	args := []string{script, "--port", port, "--units", writeJSON(t, dir, "units.json", js),
		"--baud", strconv.Itoa(line.BaudRate), "--bytesize", strconv.Itoa(line.DataBits),
		"--parity", line.Parity, "--stopbits", strconv.Itoa(line.StopBits)}
	if id != nil {
		args = append(args, "--identity", writeJSON(t, dir, "identity.json", id))
	}
	s := &Server{t: t}
	cmd := exec.Command(python, args...)
	cmd.Stdout, cmd.Stderr = &s.Out, &s.log
	var err error
	if s.in, err = cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	if s.proc, err = peers.StartProcess(t, cmd, &s.Out, "ready", 15*time.Second); err != nil {
		t.Fatalf("RTU server: %v:\n%s", err, &s.log)
	}
	s.next = s.Out.Len()
	return s
}

func writeJSON(t testing.TB, dir, name string, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, name)
	if err := os.WriteFile(file, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return file
}

// reply waits for the server's next answer.
func (s *Server) reply(within time.Duration) string {
	s.t.Helper()
	deadline := time.NewTimer(within)
	defer deadline.Stop()
	for {
		lines, more := s.Out.Since(s.next)
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

// Command sends one command line (see rtuserver.py: get, set, corrupt) and
// returns the answer.
func (s *Server) Command(format string, args ...any) string {
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

// Bus is a serial cable (a socat PTY pair) with the server serving units on
// its far end.
type Bus struct {
	Cable  *peers.Socat
	Server *Server
	URL    string // rtu:// and the near end, for the code under test
}

// StartBus starts a cable and a server on its far end, as Start.
func StartBus(t testing.TB, line config.Line, units map[byte]Unit, id *Identity) *Bus {
	t.Helper()
	Need(t)
	cable := peers.StartSocat(t, t.TempDir())
	return &Bus{Cable: cable, Server: Start(t, cable.B, line, units, id), URL: "rtu://" + cable.A}
}

// StartTCPBridge runs socat passing the bytes of each TCP connection to
// addr (a loopback host:port) to and from the serial device at port, as an
// Ethernet–RS-485 converter in transparent mode does, until Stop or the end
// of the test.
func StartTCPBridge(t testing.TB, addr, port string) *peers.Process {
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
