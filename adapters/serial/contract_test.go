package serial_test

import (
	"bufio"
	"testing"
	"time"

	"github.com/fieldgate/fieldgate/adapters"
	"github.com/fieldgate/fieldgate/adapters/adapterstest"
	"github.com/fieldgate/fieldgate/adapters/serial"
	"github.com/fieldgate/fieldgate/config"
	"github.com/fieldgate/fieldgate/internal/reading"
	"github.com/fieldgate/fieldgate/test/peers"
)

// TestContract runs the adapter contract over a socat cable in both modes,
// whose Run loops differ: the test plays the instrument on the far end, and
// stopping socat pulls the cable, starting it again plugs it back at the
// same path.
func TestContract(t *testing.T) {
	t.Run("line", func(t *testing.T) { adapterstest.Contract(t, lineRig) })
	t.Run("query", func(t *testing.T) { adapterstest.Contract(t, queryRig) })
}

// lineRig is an instrument that streams: the far end sends a line with
// every point when prompted, and reads the commands itself.
func lineRig(t *testing.T) adapterstest.Rig {
	s := peers.StartSocat(t, t.TempDir())
	dev := s.Device()
	c := newConfig(s.A, "line",
		serial.PointConfig{Name: "temp", Pattern: `T=(\S+)`, Type: "float64"},
		serial.PointConfig{Name: "count", Pattern: `\bN=(\S+)`, Type: "int64"},
		serial.PointConfig{Name: "on", Pattern: `ON=(\w+)`, Type: "bool"},
		serial.PointConfig{Name: "label", Pattern: `L="([^"]*)"`, Type: "string"},
		serial.PointConfig{Name: "sp", Pattern: `SP=(\S+)`, Type: "float64", WriteFormat: "S{value}\n"},
	)
	return adapterstest.Rig{
		Adapter: build(t, c),
		Kinds:   adapterstest.KindsOf(c.PointInfo()),
		Prompt:  func() { send(t, dev, "T=21.5 N=-7 ON=off L=\"a b\" SP=3\n") },
		Break:   s.Stop,
		Heal:    func() { s.Start(); dev = s.Device() },
		Refusals: []adapterstest.Refusal{
			{Point: "nosuch", Value: reading.Float(1), Want: adapters.ErrNoPoint},
			{Point: "temp", Value: reading.Float(1), Want: adapters.ErrNotWritable},
			{Point: "sp", Value: reading.String("abc"), Want: adapters.ErrBadValue},
			{Point: "sp", Value: reading.Bool(true), Want: adapters.ErrBadValue},
		},
		Accept: adapterstest.Command{Point: "sp", Value: reading.Float(21.5), Seen: "S21.5\n"},
		FirstWrite: func(t testing.TB) string {
			if err := dev.SetReadDeadline(time.Now().Add(adapterstest.Timeout)); err != nil {
				t.Fatal(err)
			}
			line, err := bufio.NewReader(dev).ReadString('\n')
			if err != nil {
				t.Fatalf("no write reached the device: %v (got %q)", err, line)
			}
			return line
		},
	}
}

// queryRig is the weighing scale of TestQueryMode, asked every 20 ms.
func queryRig(t *testing.T) adapterstest.Rig {
	const request = "R\r\n"
	s := peers.StartSocat(t, t.TempDir())
	sc := startScale(t, s.Device())
	c := newConfig(s.A, "query",
		serial.PointConfig{Name: "weight", Pattern: `W:\s*([-0-9.]+)`, Type: "float64"},
		serial.PointConfig{Name: "whole", Pattern: `W:\s*([0-9]+)`, Type: "int64"},
		serial.PointConfig{Name: "tare", Pattern: `T:\s*([-0-9.]+)`, Type: "float64", WriteFormat: "T{value}\r\n"},
		serial.PointConfig{Name: "state", Pattern: `S:\s*(\w+)`, Type: "string"},
	)
	c.Request, c.Interval = request, config.Duration(20*time.Millisecond)
	return adapterstest.Rig{
		Adapter: build(t, c),
		Kinds:   adapterstest.KindsOf(c.PointInfo()),
		Break:   s.Stop, // the scale's reads fail: it stops
		Heal:    func() { s.Start(); sc = startScale(t, s.Device()) },
		Refusals: []adapterstest.Refusal{
			{Point: "nosuch", Value: reading.Float(1), Want: adapters.ErrNoPoint},
			{Point: "weight", Value: reading.Float(1), Want: adapters.ErrNotWritable},
			{Point: "tare", Value: reading.String("abc"), Want: adapters.ErrBadValue},
			{Point: "tare", Value: reading.String("1\r\nR"), Want: adapters.ErrBadValue},
		},
		Accept:     adapterstest.Command{Point: "tare", Value: reading.Float(0.5), Seen: "T0.5\r\n"},
		FirstWrite: func(t testing.TB) string { return sc.firstCommand(t, request) },
	}
}
