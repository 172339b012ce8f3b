package modbus

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/fieldgate/fieldgate/adapters"
	"github.com/fieldgate/fieldgate/adapters/adapterstest"
	"github.com/fieldgate/fieldgate/internal/reading"
	"github.com/fieldgate/fieldgate/test/modbussim"
	"github.com/fieldgate/fieldgate/test/rtuserver"
)

// TestContract runs the adapter contract over Modbus TCP against the
// simonvetter server: stopping the server is the fault, serving the same
// bank on the same port again the cure, and the server's log of write
// requests what reached the hardware.
func TestContract(t *testing.T) {
	adapterstest.Contract(t, func(t *testing.T) adapterstest.Rig {
		dev := modbussim.NewBank()
		srv := serve(t, dev, "127.0.0.1:0")
		rig := contractRig(t, deviceConfig("tcp://"+srv.Addr, contractInterval, contractPoints()...), "holding_register 0 ×1")
		rig.Break = func() {
			if err := srv.Stop(); err != nil {
				t.Fatal(err)
			}
		}
		rig.Heal = func() { serve(t, dev, srv.Addr) }
		rig.FirstWrite = func(t testing.TB) string {
			ws := dev.Writes() // stored before the server answered the write
			if len(ws) == 0 {
				t.Fatal("no write reached the server")
			}
			return fmt.Sprintf("%s %d ×%d", ws[0].Table, ws[0].Addr, ws[0].Count)
		}
		return rig
	})
}

// TestRTUContract runs the adapter contract over Modbus RTU against
// pymodbus on the far end of a socat cable: pulling the cable is the fault,
// plugging it back at the same path the cure.
func TestRTUContract(t *testing.T) {
	adapterstest.Contract(t, func(t *testing.T) adapterstest.Rig {
		bus := rtuserver.StartBus(t, line8N1, map[byte]rtuserver.Unit{1: {}}, nil)
		rig := contractRig(t, rtuConfig(bus.URL, 1, contractInterval, contractPoints()...), "hr 0 = 5")
		rig.Break, rig.Heal = bus.Cable.Stop, bus.Cable.Start
		// The server keeps no log of writes, but it stored each before it
		// answered, and every address the points span started at 0.
		rig.FirstWrite = func(t testing.TB) string {
			var changed []string
			for _, r := range []struct {
				table string
				n     int
			}{{"co", 1}, {"hr", 5}, {"ir", 10}} {
				vals := strings.Fields(strings.TrimPrefix(bus.Server.Command("get 1 %s 0 %d", r.table, r.n), "values "))
				for addr, v := range vals {
					if v != "0" {
						changed = append(changed, fmt.Sprintf("%s %d = %s", r.table, addr, v))
					}
				}
			}
			if len(changed) == 0 {
				t.Fatal("no write reached the server")
			}
			return strings.Join(changed, ", ")
		}
		return rig
	})
}

// contractInterval is how often contract rigs poll.
const contractInterval = 20 * time.Millisecond

// contractPoints span coils 0, discrete inputs 0, holding registers 0–4 and
// input registers 0–9 with a point of each reading kind, writable and not.
func contractPoints() []PointConfig {
	bit := 3
	return []PointConfig{
		pt("valve", Coil, 0, "bool", writable),
		pt("alarm", DiscreteInput, 0, "bool"),
		pt("setpoint", HoldingRegister, 0, "uint16", writable),
		pt("delta", HoldingRegister, 1, "int32"),
		pt("temp", HoldingRegister, 3, "int16", writable, scaled(0.1)),
		pt("flag", HoldingRegister, 4, "bool", func(p *PointConfig) { p.Bit = &bit }),
		pt("flow", InputRegister, 0, "float32"),
		pt("total", InputRegister, 2, "uint64"),
		pt("label", InputRegister, 6, "string", func(p *PointConfig) { p.Length = 4 }),
	}
}

// contractRig is the Modbus side of a contract rig for cfg, whose points
// are contractPoints: the adapter, its kinds, the writes to refuse and the
// write to accept, which the transport's FirstWrite reports as seen.
func contractRig(t *testing.T, cfg *Config, seen string) adapterstest.Rig {
	t.Helper()
	return adapterstest.Rig{
		Adapter: build(t, cfg),
		Kinds:   adapterstest.KindsOf(cfg.PointInfo()),
		Refusals: []adapterstest.Refusal{
			{Point: "nope", Value: reading.Int(1), Want: adapters.ErrNoPoint},
			{Point: "flow", Value: reading.Float(1), Want: adapters.ErrNotWritable},
			{Point: "delta", Value: reading.Int(1), Want: adapters.ErrNotWritable},
			{Point: "flag", Value: reading.Bool(true), Want: adapters.ErrNotWritable},
			{Point: "setpoint", Value: reading.String("abc"), Want: adapters.ErrBadValue},
			{Point: "setpoint", Value: reading.Int(70000), Want: adapters.ErrBadValue},
			{Point: "temp", Value: reading.Bool(true), Want: adapters.ErrBadValue},
			{Point: "valve", Value: reading.String("maybe"), Want: adapters.ErrBadValue},
		},
		Accept: adapterstest.Command{Point: "setpoint", Value: reading.Int(5), Seen: seen},
	}
}
