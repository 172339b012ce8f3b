package test

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	sim "github.com/simonvetter/modbus"

	fgconfig "github.com/fieldgate/fieldgate/config"
	"github.com/fieldgate/fieldgate/test/modbussim"
	"github.com/fieldgate/fieldgate/test/peers"
	"github.com/fieldgate/fieldgate/test/rtuserver"
)

// The commissioning commands, scan, read and write, run as the binary
// against simonvetter's Modbus TCP server and pymodbus's RTU server on a
// PTY: what they print is logged, as the transcript a technician sees.

var line8N1 = fgconfig.Line{BaudRate: 9600, DataBits: 8, Parity: "N", StopBits: 1}

// startSim serves bank over Modbus TCP until the test ends.
func startSim(t *testing.T, bank *modbussim.Bank) string {
	t.Helper()
	srv, err := modbussim.Start("127.0.0.1:0", bank)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Stop() })
	return srv.Addr
}

// cli runs the binary, logs the transcript and checks the exit code.
func cli(t *testing.T, wantCode int, args ...string) (stdout, stderr string) {
	t.Helper()
	code, stdout, stderr := runCLI(t, args...)
	t.Logf("$ fieldgate %s\n%s%s(exit %d)", strings.Join(args, " "), stdout, stderr, code)
	if code != wantCode {
		t.Fatalf("exit %d, want %d", code, wantCode)
	}
	return stdout, stderr
}

// wantLines checks that out has a line matching each pattern (regexps).
func wantLines(t *testing.T, out string, patterns ...string) {
	t.Helper()
	for _, p := range patterns {
		if !regexp.MustCompile("(?m)" + p).MatchString(out) {
			t.Errorf("no line matches %q in:\n%s", p, out)
		}
	}
}

// identity is what unit 1 of the RTU tests says it is.
var identity = &rtuserver.Identity{Units: []int{1}, Objects: map[byte]string{
	0: "fieldgate", 1: "FG-SIM", 2: "1.2", 4: "Simulated meter",
}}

// TestScanTCP scans a Modbus TCP gateway with units 1 and 3 behind it: the
// others get exception 11 from the gateway and count as absent; the server
// has no device identification. Then holding registers are refused, and
// the scan shows the input register the units answer instead.
func TestScanTCP(t *testing.T) {
	bank := modbussim.NewBank()
	bank.SetHolding(0, 0x1234)
	bank.SetInput(0, 7)
	bank.ServeUnits(1, 3)
	url := "tcp://" + startSim(t, bank)
	out, _ := cli(t, 0, "scan", url, "--units", "1-5", "--timeout", "500ms")
	wantLines(t, out,
		`^ +1  holding_register 0 = 4660 \(0x1234\)$`,
		`^ +identification: none \(exception 1 \(illegal function\)\)$`,
		`^ +3  holding_register 0 = 4660`,
		`^5 units probed in .*: 2 answered \(1, 3\)$`)
	if strings.Contains(out, "  2  ") || strings.Contains(out, "  4  ") {
		t.Errorf("units the gateway said are absent are listed:\n%s", out)
	}

	bank.SetTableFault("holding_register", sim.ErrIllegalDataAddress)
	out, _ = cli(t, 0, "scan", url, "--units", "3")
	wantLines(t, out, `^ +3  input_register 0 = 7 \(0x0007\); holding_register 0: exception 2 \(illegal data address\)$`)
}

// TestScanRTU scans the pymodbus server on a PTY and through an rtu+tcp
// converter: unit 1 identifies itself, unit 2 refuses identification, 3
// and 4 are silent, each costing one timeout.
func TestScanRTU(t *testing.T) {
	rtuserver.Need(t)
	cable := peers.StartSocat(t, t.TempDir())
	rtuserver.Start(t, cable.B, line8N1, map[byte]rtuserver.Unit{1: {"hr": {"0": {230}}}, 2: {}}, identity)
	addr := peers.FreeAddr(t)
	for _, c := range []struct{ name, url string }{{"pty", "rtu://" + cable.A}, {"rtu+tcp", "rtu+tcp://" + addr}} {
		t.Run(c.name, func(t *testing.T) {
			if c.name == "rtu+tcp" {
				rtuserver.StartTCPBridge(t, addr, cable.A)
			}
			const timeout = 200 * time.Millisecond
			begin := time.Now()
			out, _ := cli(t, 0, "scan", c.url, "--units", "1-4", "--timeout", timeout.String())
			took := time.Since(begin)
			wantLines(t, out,
				`^ +1  holding_register 0 = 230 \(0x00e6\)$`,
				`^ +identification: vendor "fieldgate", product_code "FG-SIM", revision "1.2", product_name "Simulated meter"$`,
				`^ +2  holding_register 0 = 0 \(0x0000\)$`,
				`^ +identification: none \(exception 1 \(illegal function\)\)$`,
				`^4 units probed in .*: 2 answered \(1-2\)$`)
			// Two silent units and one timeout each, plus the start of the
			// binary built with the race detector.
			if bound := 2*timeout + 5*time.Second; took > bound {
				t.Errorf("the scan took %s, more than %s", took, bound)
			}
		})
	}
}

// TestScanDeadBus: a PTY nobody answers on costs each unit its timeout and
// ends with exit 1; a TCP address nobody listens on ends at once.
func TestScanDeadBus(t *testing.T) {
	t.Run("pty", func(t *testing.T) {
		cable := peers.StartSocat(t, t.TempDir())
		const units, timeout = 10, 100 * time.Millisecond
		begin := time.Now()
		out, stderr := cli(t, 1, "scan", "rtu://"+cable.A, "--units", fmt.Sprintf("1-%d", units), "--timeout", timeout.String(), "--baud", "19200", "--parity", "E")
		took := time.Since(begin)
		wantLines(t, out, `^10 units probed in .*: no unit answered$`)
		wantLines(t, stderr, `^scanning 10 units of rtu://.* \(19200 8E1\), waiting 100ms for each answer: about 1s if none answers$`)
		if took < units*timeout || took > units*timeout+5*time.Second {
			t.Errorf("the scan took %s, want about %s", took, units*timeout)
		}
	})
	t.Run("tcp", func(t *testing.T) {
		begin := time.Now()
		out, stderr := cli(t, 1, "scan", "tcp://"+peers.FreeAddr(t), "--timeout", "1s")
		wantLines(t, stderr, `^fieldgate scan: cannot reach tcp://.*: .*connection refused`)
		wantLines(t, out, `^0 of 247 units probed in .*: no unit answered$`)
		if took := time.Since(begin); took > 5*time.Second {
			t.Errorf("a refused connection took %s to end the scan of 247 units", took)
		}
	})
}

// TestReadURL reads registers of the TCP server and of the RTU server on a
// PTY, shown in every type and byte order, and a device error.
func TestReadURL(t *testing.T) {
	bank := modbussim.NewBank()
	bank.SetHolding(10, 0x41AC, 0x0000, 0x4142, 0x4300) // float32 21.5, "ABC"
	bank.SetCoil(2, true)
	bank.ServeUnits(1)
	url := "tcp://" + startSim(t, bank)
	out, _ := cli(t, 0, "read", url, "--unit", "1", "--table", "holding_register", "--address", "10", "--count", "4")
	wantLines(t, out,
		`^address 10 \(40011\)  raw 41ac 0000 4142 4300$`,
		`^ +ABCD +CDAB +BADC +DCBA$`,
		`^  float32 +21\.5 +`,
		`^  int16 +16812 +16812 +-21439 +-21439$`,
		`^  string +"A\\xac\\x00\\x00ABC" +`,
		`^address 12 \(40013\)  raw 4142 4300$`,
		`^  string +"ABC" +"ABC" +"BA\\x00C" +"BA\\x00C"$`)
	out, _ = cli(t, 0, "read", url, "--unit", "1", "--table", "coil", "--address", "1", "--count", "2")
	wantLines(t, out, `^address 1 \(00002\)  false$`, `^address 2 \(00003\)  true$`)
	_, stderr := cli(t, 1, "read", url, "--unit", "2", "--address", "0")
	wantLines(t, stderr, `exception '11'`)

	t.Run("pty", func(t *testing.T) {
		bus := rtuserver.StartBus(t, line8N1, map[byte]rtuserver.Unit{5: {"ir": {"0": {0xFFFF, 0xFFFE}}}}, nil)
		out, _ := cli(t, 0, "read", bus.URL, "--unit", "5", "--table", "input_register", "--address", "0", "--count", "2")
		wantLines(t, out, `^  int32 +-2 +-65537 +-257 +-16777217$`, `^  uint16 +65535 +65535 +65535 +65535$`)
		_, stderr := cli(t, 1, "read", bus.URL, "--unit", "6", "--address", "0", "--timeout", "100ms")
		wantLines(t, stderr, `no response within 100ms`)
	})
}

// commissionConfig is a gateway with the adapter tables given and no
// upstream: read and write need no broker.
func commissionConfig(t *testing.T, adapters string) string {
	t.Helper()
	return writeConfig(t, fmt.Sprintf("[gateway]\nid = \"gw\"\n[buffer]\ndir = %q\n%s", t.TempDir(), adapters))
}

// TestReadPoints reads configured points through the adapter, all of them
// or one, and fails with the device's error when it is gone.
func TestReadPoints(t *testing.T) {
	bank := modbussim.NewBank()
	bank.SetHolding(0, 0x41AC, 0x0000, 235)
	addr := startSim(t, bank)
	cfg := commissionConfig(t, fmt.Sprintf(`
[[modbus]]
name = "boiler"
url = "tcp://%s"
  [[modbus.point]]
  name = "temp"
  table = "holding_register"
  address = 0
  type = "float32"
  unit = "degC"
  [[modbus.point]]
  name = "setpoint"
  table = "holding_register"
  address = 2
  type = "int16"
  scale = 0.1
`, addr))
	out, _ := cli(t, 0, "read", "-c", cfg, "boiler")
	wantLines(t, out, `^POINT +VALUE +UNIT +READ AT`, `^boiler/temp +21\.5 +degC +20\d\d-`, `^boiler/setpoint +23\.5 +20\d\d-`)
	out, _ = cli(t, 0, "read", "-c", cfg, "boiler/setpoint")
	if strings.Contains(out, "boiler/temp") {
		t.Errorf("read boiler/setpoint printed temp:\n%s", out)
	}
	_, stderr := cli(t, 2, "read", "-c", cfg, "boiler/nope")
	wantLines(t, stderr, `adapter "boiler" has no point "nope"`)

	dead := commissionConfig(t, fmt.Sprintf(`
[[modbus]]
name = "gone"
url = "tcp://%s"
point = [{ name = "x", table = "holding_register", address = 0 }]
`, peers.FreeAddr(t)))
	_, stderr = cli(t, 1, "read", "-c", dead, "gone")
	wantLines(t, stderr, `^fieldgate read: modbus "gone": .*connection refused`)
}

// TestWrite writes through the command path's checks: a value that fits
// is written and read back; every refusal leaves the device untouched.
// Then the same over a PTY to the RTU server.
func TestWrite(t *testing.T) {
	bank := modbussim.NewBank()
	addr := startSim(t, bank)
	points := `
  [[modbus.point]]
  name = "setpoint"
  table = "holding_register"
  address = 2
  type = "int16"
  scale = 0.1
  writable = true
  [[modbus.point]]
  name = "temp"
  table = "holding_register"
  address = 0
  type = "float32"
`
	cfg := commissionConfig(t, fmt.Sprintf("[[modbus]]\nname = \"boiler\"\nurl = \"tcp://%s\"\n%s", addr, points))
	out, _ := cli(t, 0, "write", "-c", cfg, "boiler/setpoint", "23.5")
	wantLines(t, out, `^boiler/setpoint: wrote 23\.5, read back 23\.5 at 20\d\d-`)
	if got := bank.Holding(2, 1)[0]; got != 235 {
		t.Errorf("holding register 2 = %d, want 235", got)
	}
	out, _ = cli(t, 0, "write", "-c", cfg, "boiler/setpoint", "-2.5") // a negative number is a value, not a flag
	wantLines(t, out, `^boiler/setpoint: wrote -2\.5, read back -2\.5 at `)
	if got := bank.Holding(2, 1)[0]; got != 0x10000-25 {
		t.Errorf("holding register 2 = %d, want %d", got, 0x10000-25)
	}
	writes := len(bank.Writes())
	old := time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)
	for _, c := range []struct{ target, value, why string }{
		{"boiler/temp", "1", "point is not writable"},
		{"boiler/setpoint", "4000", "value does not fit the point"},
		{"boiler/setpoint", "warm", "value does not fit the point"},
		{"boiler/nope", "1", "no such point"},
		{"pump/speed", "1", `adapter "pump": no such point`},
		{"boiler/setpoint", `{"value": 20, "ts": "` + old + `"}`, "command expired"},
		{"boiler/setpoint", `{"value": }`, "malformed command"},
	} {
		_, stderr := cli(t, 1, "write", "-c", cfg, c.target, c.value)
		wantLines(t, stderr, `^fieldgate write: refused: .*`+regexp.QuoteMeta(c.why))
	}
	if n := len(bank.Writes()); n != writes {
		t.Errorf("%d writes reached the device during the refusals", n-writes)
	}

	t.Run("pty", func(t *testing.T) {
		bus := rtuserver.StartBus(t, line8N1, map[byte]rtuserver.Unit{3: {}}, nil)
		cfg := commissionConfig(t, fmt.Sprintf("[[modbus]]\nname = \"boiler\"\nurl = %q\nunit_id = 3\n%s", bus.URL, points))
		out, _ := cli(t, 0, "write", "-c", cfg, "boiler/setpoint", `{"value": -1.5}`)
		wantLines(t, out, `^boiler/setpoint: wrote -1\.5, read back -1\.5 at `)
		if got := bus.Server.Command("get 3 hr 2 1"); got != fmt.Sprint("values ", 0x10000-15) {
			t.Errorf("the server holds %q", got)
		}
	})
}
