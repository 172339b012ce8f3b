package modbus

import (
	"context"
	"encoding/binary"
	"io"
	"log"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	sim "github.com/simonvetter/modbus"

	"github.com/fieldgate/fieldgate/adapters"
	"github.com/fieldgate/fieldgate/config"
)

// Test plumbing around a real Modbus TCP server (simonvetter/modbus): the
// register maps it serves, a wire tap that records function codes, and an
// Emitter that hands each poll cycle to the test.

// device is the in-memory register map behind the server.
type device struct {
	mu         sync.Mutex
	coils      map[uint16]bool
	discrete   map[uint16]bool
	holding    map[uint16]uint16
	input      map[uint16]uint16
	holdingErr error         // while set, holding register reads fail with it
	gate       chan struct{} // while set, register reads wait until it closes
}

func newDevice() *device {
	return &device{coils: map[uint16]bool{}, discrete: map[uint16]bool{}, holding: map[uint16]uint16{}, input: map[uint16]uint16{}}
}

func (d *device) update(f func(d *device)) {
	d.mu.Lock()
	defer d.mu.Unlock()
	f(d)
}

// seed stores vals from addr in table (bits as 0 and 1).
func (d *device) seed(table string, addr int, vals []uint16) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for i, v := range vals {
		a := uint16(addr + i)
		switch table {
		case config.Coil:
			d.coils[a] = v != 0
		case config.DiscreteInput:
			d.discrete[a] = v != 0
		case config.HoldingRegister:
			d.holding[a] = v
		case config.InputRegister:
			d.input[a] = v
		}
	}
}

// holdingRegs returns n holding registers from addr, for assertions.
func (d *device) holdingRegs(addr, n int) []uint16 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return readMap(d.holding, uint16(addr), uint16(n))
}

func readMap[T any](m map[uint16]T, addr, n uint16) []T {
	out := make([]T, n)
	for i := range out {
		out[i] = m[addr+uint16(i)]
	}
	return out
}

func (d *device) HandleCoils(req *sim.CoilsRequest) ([]bool, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if req.IsWrite {
		for i, v := range req.Args {
			d.coils[req.Addr+uint16(i)] = v
		}
		return nil, nil
	}
	return readMap(d.coils, req.Addr, req.Quantity), nil
}

func (d *device) HandleDiscreteInputs(req *sim.DiscreteInputsRequest) ([]bool, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return readMap(d.discrete, req.Addr, req.Quantity), nil
}

func (d *device) HandleHoldingRegisters(req *sim.HoldingRegistersRequest) ([]uint16, error) {
	d.waitGate()
	d.mu.Lock()
	defer d.mu.Unlock()
	if req.IsWrite {
		for i, v := range req.Args {
			d.holding[req.Addr+uint16(i)] = v
		}
		return nil, nil
	}
	if d.holdingErr != nil {
		return nil, d.holdingErr
	}
	return readMap(d.holding, req.Addr, req.Quantity), nil
}

func (d *device) HandleInputRegisters(req *sim.InputRegistersRequest) ([]uint16, error) {
	d.waitGate()
	d.mu.Lock()
	defer d.mu.Unlock()
	return readMap(d.input, req.Addr, req.Quantity), nil
}

func (d *device) waitGate() {
	d.mu.Lock()
	g := d.gate
	d.mu.Unlock()
	if g != nil {
		<-g
	}
}

// freeAddr picks a free loopback port.
func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startServer serves d on addr until the test ends (or Stop).
func startServer(t testing.TB, d *device, addr string) *sim.ModbusServer {
	t.Helper()
	srv, err := sim.NewServer(&sim.ServerConfiguration{
		URL: "tcp://" + addr, Timeout: 30 * time.Second, MaxClients: 10,
		Logger: log.New(io.Discard, "", 0),
	}, d)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatalf("modbus server on %s: %v", addr, err)
	}
	t.Cleanup(func() { srv.Stop() })
	return srv
}

// tap relays Modbus TCP between the adapter and the server and records the
// function code of every request that passes.
type tap struct {
	ln       net.Listener
	target   string
	wg       sync.WaitGroup
	mu       sync.Mutex
	fcs      []byte
	accepted int
	conns    []net.Conn
}

func newTap(t *testing.T, target string) *tap {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tp := &tap{ln: ln, target: target}
	tp.wg.Go(tp.serve)
	t.Cleanup(tp.close)
	return tp
}

func (tp *tap) url() string { return "tcp://" + tp.ln.Addr().String() }

func (tp *tap) serve() {
	for {
		c, err := tp.ln.Accept()
		if err != nil {
			return
		}
		tp.wg.Go(func() { tp.relay(c) })
	}
}

func (tp *tap) relay(client net.Conn) {
	defer client.Close()
	server, err := net.DialTimeout("tcp", tp.target, 5*time.Second)
	if err != nil {
		return
	}
	defer server.Close()
	tp.mu.Lock()
	tp.accepted++
	tp.conns = append(tp.conns, client, server)
	tp.mu.Unlock()
	tp.wg.Go(func() {
		io.Copy(client, server)
		client.Close()
	})
	for {
		var hdr [8]byte // MBAP header and function code
		if _, err := io.ReadFull(client, hdr[:]); err != nil {
			return
		}
		n := int(binary.BigEndian.Uint16(hdr[4:])) - 2
		if n < 0 {
			return
		}
		body := make([]byte, n)
		if _, err := io.ReadFull(client, body); err != nil {
			return
		}
		tp.mu.Lock()
		tp.fcs = append(tp.fcs, hdr[7])
		tp.mu.Unlock()
		if _, err := server.Write(append(hdr[:], body...)); err != nil {
			return
		}
	}
}

func (tp *tap) close() {
	tp.ln.Close()
	tp.mu.Lock()
	for _, c := range tp.conns {
		c.Close()
	}
	tp.mu.Unlock()
	tp.wg.Wait()
}

// counts returns how many requests of each function code passed so far.
func (tp *tap) counts() map[byte]int {
	tp.mu.Lock()
	defer tp.mu.Unlock()
	m := map[byte]int{}
	for _, fc := range tp.fcs {
		m[fc]++
	}
	return m
}

func (tp *tap) connections() int {
	tp.mu.Lock()
	defer tp.mu.Unlock()
	return tp.accepted
}

// cycle is what one poll cycle emitted.
type cycle struct {
	readings []adapters.Reading
	err      error
}

func (c cycle) value(point string) (adapters.Value, bool) {
	for _, r := range c.readings {
		if r.Point == point {
			return r.Value, true
		}
	}
	return adapters.Value{}, false
}

// recorder is an adapters.Emitter that collects each cycle's readings and
// hands them over with the cycle's status, so tests await cycles.
type recorder struct {
	mu      sync.Mutex
	pending []adapters.Reading
	cycles  chan cycle
	stop    <-chan struct{}
}

func (r *recorder) Emit(rs []adapters.Reading) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.pending = append(r.pending, rs...)
}

func (r *recorder) Status(err error) {
	r.mu.Lock()
	c := cycle{readings: r.pending, err: err}
	r.pending = nil
	r.mu.Unlock()
	select {
	case r.cycles <- c:
	case <-r.stop:
	}
}

// await returns the first cycle for which ok holds.
func (r *recorder) await(t *testing.T, what string, ok func(cycle) bool) cycle {
	t.Helper()
	deadline := time.After(10 * time.Second)
	var last cycle
	for {
		select {
		case c := <-r.cycles:
			if ok(c) {
				return c
			}
			last = c
		case <-deadline:
			t.Fatalf("no cycle with %s within 10s; last: %d readings, err %v", what, len(last.readings), last.err)
		}
	}
}

func (r *recorder) next(t *testing.T) cycle {
	t.Helper()
	return r.await(t, "anything", func(cycle) bool { return true })
}

// start runs an adapter for cfg until the test ends, with reconnection
// back-off shortened to keep the tests quick.
func start(t *testing.T, cfg *config.Modbus) (*Adapter, *recorder) {
	t.Helper()
	a, err := New(cfg, slog.New(slog.NewTextHandler(t.Output(), nil)))
	if err != nil {
		t.Fatal(err)
	}
	a.retry = backoff{min: 10 * time.Millisecond, max: 50 * time.Millisecond}
	ctx, cancel := context.WithCancel(context.Background())
	rec := &recorder{cycles: make(chan cycle, 16), stop: ctx.Done()}
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx, rec) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Run did not return after cancel")
		}
	})
	return a, rec
}

func deviceConfig(url string, interval time.Duration, points ...config.ModbusPoint) *config.Modbus {
	return &config.Modbus{
		Name: "dev", URL: url, UnitID: 1, MaxGap: 10, Points: points,
		Interval: config.Duration(interval), Timeout: config.Duration(time.Second),
	}
}

// pt is a point with the defaults the loader fills in.
func pt(name, table string, addr int, typ string, opts ...func(*config.ModbusPoint)) config.ModbusPoint {
	one := 1.0
	p := config.ModbusPoint{Name: name, Table: table, Address: addr, Type: typ, ByteOrder: "ABCD", Scale: &one}
	for _, o := range opts {
		o(&p)
	}
	return p
}

func writable(p *config.ModbusPoint) { p.Writable = true }

func scaled(scale float64) func(*config.ModbusPoint) {
	return func(p *config.ModbusPoint) { p.Scale = &scale }
}
