// Package modbussim serves an in-memory Modbus device over TCP with the
// github.com/simonvetter/modbus server, for the demo, the integration tests
// and the modbus adapter's tests. The protocol side is entirely the
// third-party server's; this package only holds the register values, counts
// the requests it answered and plays the faults tests ask for.
package modbussim

import (
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/simonvetter/modbus"
)

// Bank is the register memory of one simulated device (every unit id sees
// the same memory, unless ServeUnits says otherwise). It is safe for concurrent use. Tables are named as in
// the config: "coil", "discrete_input", "holding_register", "input_register".
type Bank struct {
	mu         sync.Mutex
	coils      map[uint16]bool
	discrete   map[uint16]bool
	holding    map[uint16]uint16
	input      map[uint16]uint16
	tableFault map[string]error
	stall      chan struct{} // while set, requests wait until it is closed
	held       int           // requests that came while stalled
	slowNext   time.Duration // the next request waits this long before it is answered
	reads      int
	changed    chan struct{} // closed and replaced at each read and each held request
	writes     []Write
	clients    map[string]bool // the source addresses requests came from: one per connection
	units      map[uint8]bool  // the unit ids served; nil: all
}

// Write records one write request the device received.
type Write struct {
	Table string // "coil" or "holding_register"
	Addr  uint16
	Count uint16
}

// NewBank returns an empty bank: every register reads 0, every bit false.
func NewBank() *Bank {
	return &Bank{
		coils: map[uint16]bool{}, discrete: map[uint16]bool{},
		holding: map[uint16]uint16{}, input: map[uint16]uint16{},
		tableFault: map[string]error{}, changed: make(chan struct{}), clients: map[string]bool{},
	}
}

// Set stores vals at consecutive addresses of table from addr, bits as 0
// and 1. It panics on an unknown table, a mistake in the test.
func (b *Bank) Set(table string, addr uint16, vals ...uint16) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for i, v := range vals {
		a := addr + uint16(i)
		switch table {
		case "coil":
			b.coils[a] = v != 0
		case "discrete_input":
			b.discrete[a] = v != 0
		case "holding_register":
			b.holding[a] = v
		case "input_register":
			b.input[a] = v
		default:
			panic("modbussim: unknown table " + table)
		}
	}
}

// SetHolding stores regs at consecutive holding registers from addr.
func (b *Bank) SetHolding(addr uint16, regs ...uint16) { b.Set("holding_register", addr, regs...) }

// SetInput stores regs at consecutive input registers from addr.
func (b *Bank) SetInput(addr uint16, regs ...uint16) { b.Set("input_register", addr, regs...) }

// SetCoil sets one coil.
func (b *Bank) SetCoil(addr uint16, v bool) { b.Set("coil", addr, bit(v)) }

// SetDiscrete sets one discrete input.
func (b *Bank) SetDiscrete(addr uint16, v bool) { b.Set("discrete_input", addr, bit(v)) }

func bit(v bool) uint16 {
	if v {
		return 1
	}
	return 0
}

// Holding returns n holding registers from addr.
func (b *Bank) Holding(addr uint16, n int) []uint16 {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]uint16, n)
	for i := range out {
		out[i] = b.holding[addr+uint16(i)]
	}
	return out
}

// Coil returns one coil.
func (b *Bank) Coil(addr uint16) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.coils[addr]
}

// SetTableFault makes every request on one table fail with err (a
// modbus.Err* exception), or succeed again with nil, while the other tables
// keep answering.
func (b *Bank) SetTableFault(table string, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err == nil {
		delete(b.tableFault, table)
		return
	}
	b.tableFault[table] = err
}

// ServeUnits makes the device a Modbus TCP gateway with units behind it:
// requests to the unit ids listed are served from the bank, every other
// one is answered with exception 11 (gateway target device failed to
// respond), as a gateway answers for a unit that is not there. Without it
// every unit id sees the bank.
func (b *Bank) ServeUnits(units ...uint8) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.units = map[uint8]bool{}
	for _, u := range units {
		b.units[u] = true
	}
}

// SlowNext makes the device answer the next request only after d, as a
// device busy with something else now and then does.
func (b *Bank) SlowNext(d time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.slowNext = d
}

// Stall holds every request from now on unanswered, as a device that went
// silent, until resume is called; calling resume again does nothing. Held
// requests stay blocked even after the server stopped, so a test resumes
// before it ends (t.Cleanup(resume)).
func (b *Bank) Stall() (resume func()) {
	gate := make(chan struct{})
	b.mu.Lock()
	b.stall = gate
	b.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			b.mu.Lock()
			if b.stall == gate {
				b.stall = nil
			}
			b.mu.Unlock()
			close(gate)
		})
	}
}

// Reads returns how many read requests were answered.
func (b *Bank) Reads() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.reads
}

// WaitReads waits until at least n read requests have been answered, and
// reports whether that happened within timeout.
func (b *Bank) WaitReads(n int, timeout time.Duration) bool {
	return b.await(func() bool { return b.reads >= n }, timeout)
}

// WaitHeld waits until at least n requests have come while the bank was
// stalled (Stall), and reports whether that happened within timeout.
func (b *Bank) WaitHeld(n int, timeout time.Duration) bool {
	return b.await(func() bool { return b.held >= n }, timeout)
}

// await waits until done, called under b.mu, holds, within timeout.
func (b *Bank) await(done func() bool, timeout time.Duration) bool {
	deadline := time.After(timeout)
	for {
		b.mu.Lock()
		ok, more := done(), b.changed
		b.mu.Unlock()
		if ok {
			return true
		}
		select {
		case <-more:
		case <-deadline:
			return false
		}
	}
}

// Connections returns how many client connections have sent requests
// (each has its own source address).
func (b *Bank) Connections() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.clients)
}

// Writes returns the write requests received so far.
func (b *Bank) Writes() []Write {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]Write(nil), b.writes...)
}

// HandleCoils implements modbus.RequestHandler.
func (b *Bank) HandleCoils(req *modbus.CoilsRequest) ([]bool, error) {
	return access(b, req.ClientAddr, req.UnitId, b.coils, "coil", req.Addr, req.Quantity, req.IsWrite, req.Args)
}

// HandleDiscreteInputs implements modbus.RequestHandler.
func (b *Bank) HandleDiscreteInputs(req *modbus.DiscreteInputsRequest) ([]bool, error) {
	return access[bool](b, req.ClientAddr, req.UnitId, b.discrete, "discrete_input", req.Addr, req.Quantity, false, nil)
}

// HandleHoldingRegisters implements modbus.RequestHandler.
func (b *Bank) HandleHoldingRegisters(req *modbus.HoldingRegistersRequest) ([]uint16, error) {
	return access(b, req.ClientAddr, req.UnitId, b.holding, "holding_register", req.Addr, req.Quantity, req.IsWrite, req.Args)
}

// HandleInputRegisters implements modbus.RequestHandler.
func (b *Bank) HandleInputRegisters(req *modbus.InputRegistersRequest) ([]uint16, error) {
	return access[uint16](b, req.ClientAddr, req.UnitId, b.input, "input_register", req.Addr, req.Quantity, false, nil)
}

// access serves one request from client to unit on one table: a write
// stores args, a read returns n values.
func access[T any](b *Bank, client string, unit uint8, m map[uint16]T, table string, addr, n uint16, write bool, args []T) ([]T, error) {
	b.mu.Lock()
	stall, slow := b.stall, b.slowNext
	b.slowNext = 0
	if stall != nil {
		b.held++
		b.signal()
	}
	b.mu.Unlock()
	if stall != nil {
		<-stall
	}
	time.Sleep(slow) // the fault being played: a device that answers late

	b.mu.Lock()
	defer b.mu.Unlock()
	b.clients[client] = true
	if b.units != nil && !b.units[unit] {
		return nil, modbus.ErrGWTargetFailedToRespond
	}
	if err := b.tableFault[table]; err != nil {
		return nil, err
	}
	if write {
		b.writes = append(b.writes, Write{table, addr, n})
		for i, v := range args {
			m[addr+uint16(i)] = v
		}
		return nil, nil
	}
	b.countRead()
	out := make([]T, n)
	for i := range out {
		out[i] = m[addr+uint16(i)]
	}
	return out, nil
}

func (b *Bank) countRead() {
	b.reads++
	b.signal()
}

// signal wakes the waiters; b.mu must be held.
func (b *Bank) signal() {
	close(b.changed)
	b.changed = make(chan struct{})
}

// Server is a running simulated device.
type Server struct {
	// Addr is the host:port the device listens on.
	Addr string
	srv  *modbus.ModbusServer
}

// Start serves bank on addr ("127.0.0.1:0" picks a free port).
func Start(addr string, bank *Bank) (*Server, error) {
	if _, port, err := net.SplitHostPort(addr); err == nil && port == "0" {
		l, err := net.Listen("tcp", addr)
		if err != nil {
			return nil, err
		}
		addr = l.Addr().String()
		l.Close() // the server binds itself; the port stays free for it on loopback
	}
	srv, err := modbus.NewServer(&modbus.ServerConfiguration{URL: "tcp://" + addr, MaxClients: 16}, bank)
	if err != nil {
		return nil, fmt.Errorf("modbus simulator: %w", err)
	}
	if err := srv.Start(); err != nil {
		return nil, fmt.Errorf("modbus simulator on %s: %w", addr, err)
	}
	return &Server{Addr: addr, srv: srv}, nil
}

// Stop closes the listener and every client connection.
func (s *Server) Stop() error { return s.srv.Stop() }
