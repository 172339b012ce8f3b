// Package serialport is the one serial port layer of fieldgate: every serial
// device, raw line-protocol instruments and Modbus RTU buses alike, is opened
// here with go.bug.st/serial, so line settings, read deadlines and recovery
// from an unplugged USB adapter behave the same everywhere.
//
// A Port belongs to one goroutine (the owner of the device or bus); only
// Close may be called from another. A Keeper reopens the port after a fault.
package serialport

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"go.bug.st/serial"

	"github.com/fieldgate/fieldgate/config"
)

// ErrTimeout is wrapped by Read when the read deadline passes with no data. It
// is not a port fault: the line is fine, the device just did not answer. It
// also matches os.ErrDeadlineExceeded, as net.Conn deadlines do.
var ErrTimeout = fmt.Errorf("serial read timed out: %w", os.ErrDeadlineExceeded)

// ErrNotDraining is wrapped by Write when the port took nothing for longer
// than the write deadline: a USB adapter that stopped draining its buffer, or
// a device that holds the line. It is a port fault: the port is closed and
// reopened, and it cannot be reopened while the stuck write is still in the
// kernel.
var ErrNotDraining = errors.New("the port stopped draining: a write did not complete in time")

// Port is an open serial port with net.Conn-style deadlines. Any error from
// Read or Write other than ErrTimeout means the port is gone (unplugged, EOF,
// EIO) or stuck (ErrNotDraining) and must be closed and reopened; see Keeper.
type Port struct {
	sp       serial.Port
	path     string // for error messages
	line     config.Line
	deadline time.Time // for reads
	wdl      time.Time // for writes; zero: a bound from the line speed
}

// Open opens the serial device at path (a /dev/serial/by-id/… symlink keeps
// naming the same adapter across replugs) in raw mode with the given line
// settings.
func Open(path string, line config.Line) (*Port, error) {
	m, err := mode(line)
	if err != nil {
		return nil, fmt.Errorf("serial port %s: %w", path, err)
	}
	if err := stuck.check(path); err != nil {
		return nil, fmt.Errorf("serial port %s: %w", path, err)
	}
	sp, err := serial.Open(path, m)
	if err != nil {
		return nil, fmt.Errorf("serial port %s: open: %w", path, err)
	}
	return &Port{sp: sp, path: path, line: line}, nil
}

// CheckLine reports whether line settings can be used to open a port, so a
// bad configuration fails when the adapter is built, not at the first open.
func CheckLine(line config.Line) error {
	_, err := mode(line)
	return err
}

func mode(l config.Line) (*serial.Mode, error) {
	m := &serial.Mode{BaudRate: l.BaudRate, DataBits: l.DataBits}
	if l.BaudRate <= 0 {
		return nil, fmt.Errorf("bad baud rate %d", l.BaudRate)
	}
	if l.DataBits < 5 || l.DataBits > 8 {
		return nil, fmt.Errorf("bad data bits %d: want 5..8", l.DataBits)
	}
	switch strings.ToUpper(l.Parity) {
	case "N":
		m.Parity = serial.NoParity
	case "E":
		m.Parity = serial.EvenParity
	case "O":
		m.Parity = serial.OddParity
	default:
		return nil, fmt.Errorf("bad parity %q: want N, E or O", l.Parity)
	}
	switch l.StopBits {
	case 1:
		m.StopBits = serial.OneStopBit
	case 2:
		m.StopBits = serial.TwoStopBits
	default:
		return nil, fmt.Errorf("bad stop bits %d: want 1 or 2", l.StopBits)
	}
	return m, nil
}

// SetReadDeadline bounds the following Reads: once t has passed they return
// ErrTimeout. The zero time means no deadline, which only a caller that closes
// the port from elsewhere may use.
func (p *Port) SetReadDeadline(t time.Time) {
	p.deadline = t
}

// Read reads at least one byte, or fails with ErrTimeout at the deadline, or
// with the fault that makes the port unusable: io.EOF when the device hung up
// (or Close was called), EIO and the like from the kernel.
func (p *Port) Read(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	for {
		t := serial.NoTimeout
		if !p.deadline.IsZero() {
			if t = time.Until(p.deadline); t <= 0 {
				return 0, fmt.Errorf("serial port %s: %w", p.path, ErrTimeout)
			}
		}
		if err := p.sp.SetReadTimeout(t); err != nil {
			return 0, fmt.Errorf("serial port %s: set read timeout: %w", p.path, err)
		}
		// go.bug.st/serial returns (0, nil) when its timeout expires; the
		// loop turns that into ErrTimeout above.
		n, err := p.sp.Read(b)
		var pe *serial.PortError
		if errors.As(err, &pe) && pe.Code() == serial.PortClosed {
			// How go.bug.st reports a hang-up: the device went away.
			err = fmt.Errorf("device gone: %w", io.EOF)
		}
		if err != nil {
			return n, fmt.Errorf("serial port %s: read: %w", p.path, err)
		}
		if n > 0 {
			return n, nil
		}
	}
}

// SetWriteDeadline bounds the following Writes; the zero time leaves the
// bound to Write.
func (p *Port) SetWriteDeadline(t time.Time) { p.wdl = t }

// SetDeadline bounds the following Reads and Writes.
func (p *Port) SetDeadline(t time.Time) {
	p.deadline, p.wdl = t, t
}

// writeSlack is what a write may take beyond its bytes' time on the line:
// the kernel and a USB adapter pass data on in bursts.
const writeSlack = time.Second

// Write writes all of b, or fails with ErrNotDraining once the write
// deadline has passed (without one: twice b's time on the line plus a
// second). go.bug.st/serial writes block, so the write runs on a goroutine
// of its own; one the port never lets go of is abandoned, and the path is
// marked stuck until it returns (see Open).
func (p *Port) Write(b []byte) (int, error) {
	deadline := p.wdl
	if deadline.IsZero() {
		deadline = time.Now().Add(2*lineTime(len(b), p.line) + writeSlack)
	}
	type outcome struct {
		n   int
		err error
	}
	done := make(chan outcome, 1)
	returned := make(chan struct{})
	go func() {
		defer close(returned)
		n, err := p.writeAll(b)
		done <- outcome{n, err}
	}()
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	select {
	case o := <-done:
		return o.n, o.err
	case <-t.C:
	}
	// Discarding what the port holds may let the write go on; if not, the
	// caller closes the port and Open waits for the write to come back.
	_ = p.sp.ResetOutputBuffer()
	stuck.mark(p.path, returned)
	return 0, fmt.Errorf("serial port %s: write: %w", p.path, ErrNotDraining)
}

func (p *Port) writeAll(b []byte) (int, error) {
	n := 0
	for n < len(b) {
		m, err := p.sp.Write(b[n:])
		n += m
		if err != nil {
			return n, fmt.Errorf("serial port %s: write: %w", p.path, err)
		}
		if m == 0 {
			return n, fmt.Errorf("serial port %s: write: %w", p.path, io.ErrShortWrite)
		}
	}
	return n, nil
}

// lineTime is how long n characters take on the line.
func lineTime(n int, l config.Line) time.Duration {
	if l.BaudRate <= 0 {
		return 0
	}
	bits := 1 + l.DataBits + l.StopBits + 1 // start, data, stop, parity at most
	return time.Duration(int64(n) * int64(bits) * int64(time.Second) / int64(l.BaudRate))
}

// stuckWrites tracks, by path, writes a port never let go of: until such a
// write returns, the path is not opened again, so a wedged adapter costs
// one goroutine, not one per retry.
type stuckWrites struct {
	mu    sync.Mutex
	paths map[string]<-chan struct{} // closed when the write returns
}

var stuck = &stuckWrites{paths: map[string]<-chan struct{}{}}

func (s *stuckWrites) mark(path string, returned <-chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.paths[path] = returned
}

func (s *stuckWrites) check(path string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	returned, ok := s.paths[path]
	if !ok {
		return nil
	}
	select {
	case <-returned:
		delete(s.paths, path)
		return nil
	default:
		return fmt.Errorf("%w (a write from before is still blocked in the kernel)", ErrNotDraining)
	}
}

// ResetInput discards received bytes nobody has read, such as a late answer
// to a request that already timed out, so it is not taken for the next one.
func (p *Port) ResetInput() error {
	if err := p.sp.ResetInputBuffer(); err != nil {
		return fmt.Errorf("serial port %s: reset input: %w", p.path, err)
	}
	return nil
}

// Close closes the port; a Read blocked in another goroutine returns.
func (p *Port) Close() error {
	if err := p.sp.Close(); err != nil {
		return fmt.Errorf("serial port %s: close: %w", p.path, err)
	}
	return nil
}

// rtuFixedGap is the Modbus-over-serial-line guide's fixed inter-frame gap
// above 19200 baud, where 3.5 character times would be needlessly short for
// UARTs and operating systems to honour.
const rtuFixedGap = 1750 * time.Microsecond

// FrameGap returns the Modbus RTU inter-frame silence: 3.5 character times,
// a character being a start bit, the data bits, a parity bit unless parity is
// "N" (or empty) and the stop bits; a fixed 1.75 ms above 19200 baud. It
// rounds up, as the gap is a minimum. A baud rate ≤ 0 gives the fixed gap.
func FrameGap(baud, dataBits int, parity string, stopBits int) time.Duration {
	if baud > 19200 || baud <= 0 {
		return rtuFixedGap
	}
	bits := 1 + dataBits + stopBits
	if parity != "" && !strings.EqualFold(parity, "N") {
		bits++
	}
	// 3.5 characters = 35 bits per 10 characters; round the nanoseconds up.
	num := int64(bits) * 35 * int64(time.Second)
	den := int64(baud) * 10
	return time.Duration((num + den - 1) / den)
}
