package modbus

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"time"

	"github.com/goburrow/modbus"

	"github.com/fieldgate/fieldgate/adapters/internal/serialport"
)

// Errors of a Modbus exchange, for classification with errors.Is; all but
// ErrBadFrame occur on RTU only. On a bus none of them is a fault of the
// port: it stays open, the line is drained, and the next request goes out
// as usual.
var (
	// ErrNoResponse: the unit sent nothing within its timeout. It also
	// matches os.ErrDeadlineExceeded.
	ErrNoResponse = errors.New("no response")
	// ErrCRC: the reply's checksum is wrong; nothing of it is used.
	ErrCRC = errors.New("CRC mismatch")
	// ErrWrongUnit: a well-formed reply came from a unit other than the
	// one asked, such as a late answer to an earlier request.
	ErrWrongUnit = errors.New("reply from another unit")
	// ErrBadFrame: the reply is cut short or does not fit the request.
	ErrBadFrame = errors.New("malformed reply")
)

const (
	rtuMaxFrame     = 256
	rtuExceptionLen = 5
	// drainQuiet is how long the line must stay silent (and at least the
	// inter-frame gap) before a request follows a failed exchange. USB
	// serial adapters pass bytes on in bursts up to 16 ms apart.
	drainQuiet = 20 * time.Millisecond
)

// wire is an open serial port or socket that carries RTU frames.
type wire interface {
	io.ReadWriter
	// SetDeadline bounds the following reads, and writes where they may
	// block.
	SetDeadline(t time.Time) error
}

// rtuLine opens the wire under an RTU transport and reopens it after a
// fault, with its own back-off.
type rtuLine interface {
	open() (wire, error)
	retryAt() time.Time
	// done takes the outcome of an exchange: nil when the line worked,
	// whatever the unit did, else the fault that broke it, which closes
	// it.
	done(fault error)
	close() error
}

// lineFault is an error of the wire itself (EOF, EIO, a reset socket): the
// port or socket is gone and must be reopened. A timeout is not one: on a
// bus it says that one unit did not answer.
type lineFault struct{ err error }

func (e *lineFault) Error() string { return e.err.Error() }
func (e *lineFault) Unwrap() error { return e.err }

// readFault is a lineFault for an error of Read.
func readFault(err error) *lineFault {
	if err == io.EOF { // all a socket says when the peer closed it
		err = fmt.Errorf("connection closed by the peer: %w", err)
	}
	return &lineFault{err}
}

// rtuTransport is Modbus RTU: goburrow's RTU packager frames the requests
// and checks the replies (see rtuPackager), and the transport, as their
// modbus.Transporter, moves the frames over a serial port or a TCP socket.
// It keeps the inter-frame silence, reads each reply by the length its
// header announces, and drains the line after a failed exchange so the
// next request starts clean.
type rtuTransport struct {
	line rtuLine
	w    wire // nil while closed
	pk   rtuPackager
	c    unitClient
	gap  time.Duration // the inter-frame silence

	// Of the request being made.
	timeout time.Duration
	log     *slog.Logger

	quietAt time.Time // the next frame starts no earlier
	dirty   bool      // stray bytes may be on their way
}

func newRTUTransport(line rtuLine, gap time.Duration) *rtuTransport {
	t := &rtuTransport{line: line, gap: gap, pk: rtuPackager{modbus.NewRTUClientHandler("")}}
	t.c = unitClient{Client: modbus.NewClient2(&t.pk, t), pk: &t.pk, tr: t}
	return t
}

func (t *rtuTransport) open() error {
	w, err := t.line.open()
	if err != nil {
		return err
	}
	t.w, t.dirty = w, true // whatever arrived while nobody listened is stale
	return nil
}

func (t *rtuTransport) retryAt() time.Time { return t.line.retryAt() }

func (t *rtuTransport) close() error {
	t.w = nil
	return t.line.close()
}

func (t *rtuTransport) client(unit byte, timeout time.Duration, log *slog.Logger) modbus.Client {
	t.pk.h.SlaveId, t.timeout, t.log = unit, timeout, log
	return t.c
}

// retry: never on a bus, where a unit that does not answer must cost it
// only its own timeout, and a port fault waits for the back-off.
func (t *rtuTransport) retry(error) bool { return false }

func (t *rtuTransport) settle(err error) bool {
	var lf *lineFault
	if errors.As(err, &lf) {
		t.w = nil
		t.line.done(err)
		return true
	}
	t.line.done(nil)
	t.dirty = err != nil && !answered(err)
	return false
}

// Send implements modbus.Transporter: it sends one request frame and reads
// the reply.
func (t *rtuTransport) Send(req []byte) ([]byte, error) {
	if t.dirty {
		if err := t.drain(); err != nil {
			return nil, err
		}
		t.dirty = false
	}
	time.Sleep(time.Until(t.quietAt)) // the silence between frames, at most 3.5 characters
	// Nothing received before the request can be its reply: drop noise a
	// serial port picked up since.
	if p, ok := t.w.(interface{ ResetInput() error }); ok {
		if err := p.ResetInput(); err != nil {
			return nil, &lineFault{err}
		}
	}
	t.dump("modbus rtu send", req)
	if err := t.w.SetDeadline(time.Now().Add(t.timeout)); err != nil {
		return nil, &lineFault{err}
	}
	if _, err := t.w.Write(req); err != nil {
		return nil, &lineFault{err}
	}
	resp, err := t.readReply(req)
	t.quietAt = time.Now().Add(t.gap)
	if err == nil {
		t.dump("modbus rtu recv", resp)
	}
	return resp, err
}

// readReply reads the reply to req until it is complete or the deadline
// passes.
func (t *rtuTransport) readReply(req []byte) ([]byte, error) {
	buf := make([]byte, 0, rtuMaxFrame)
	want := 3 // the unit, the function code and what decides the length
	for len(buf) < want {
		n, err := t.w.Read(buf[len(buf):want])
		buf = buf[:len(buf)+n]
		switch {
		case err != nil && !errors.Is(err, os.ErrDeadlineExceeded):
			return nil, readFault(err)
		case err != nil && len(buf) == 0:
			return nil, fmt.Errorf("%w within %s: %w", ErrNoResponse, t.timeout, err)
		case err != nil:
			return nil, fmt.Errorf("%w: %d bytes (% x), then nothing until the timeout of %s", ErrBadFrame, len(buf), buf, t.timeout)
		case len(buf) == want:
			if want, err = replyLen(req, buf); err != nil {
				return nil, err
			}
		}
	}
	return buf, nil
}

// replyLen returns the length of the reply to req as far as head, its
// first three bytes or more, tells; the reply is complete when that is
// len(head). An exception is five bytes, a read reply carries its byte
// count, a write reply echoes eight; a device identification reply (FC
// 43/14) announces its length object by object. A reply with another
// function code, or longer than the 256 bytes of a frame, is malformed.
func replyLen(req, head []byte) (int, error) {
	fc := req[1]
	switch {
	case head[1] == fc|0x80:
		return rtuExceptionLen, nil
	case head[1] != fc:
		return 0, fmt.Errorf("%w: function code %d in the reply to function %d", ErrBadFrame, head[1], fc)
	}
	n := 0
	switch fc {
	case modbus.FuncCodeReadCoils, modbus.FuncCodeReadDiscreteInputs,
		modbus.FuncCodeReadHoldingRegisters, modbus.FuncCodeReadInputRegisters:
		n = 3 + int(head[2]) + 2
	case modbus.FuncCodeWriteSingleCoil, modbus.FuncCodeWriteSingleRegister,
		modbus.FuncCodeWriteMultipleCoils, modbus.FuncCodeWriteMultipleRegisters:
		n = 8
	case fcMEI:
		if head[2] != meiDeviceID {
			return 0, fmt.Errorf("%w: MEI type %d in the reply to a device identification request", ErrBadFrame, head[2])
		}
		n = 2 + deviceIDLen(head[2:]) + 2
	default:
		return 0, fmt.Errorf("%w: the reply length of function %d is unknown", ErrBadFrame, fc)
	}
	if n > rtuMaxFrame {
		return 0, fmt.Errorf("%w: a reply of %d bytes exceeds a frame", ErrBadFrame, n)
	}
	return n, nil
}

// drain reads and drops what arrives until the line has been quiet for
// drainQuiet: the rest of a bad frame, or a late answer to a request that
// timed out, which would otherwise be taken for the next reply. A line
// that never falls quiet ends the drain after the request timeout.
func (t *rtuTransport) drain() error {
	quiet := max(t.gap, drainQuiet)
	var buf [rtuMaxFrame]byte
	dropped := 0
	for end := time.Now().Add(t.timeout); time.Now().Before(end); {
		if err := t.w.SetDeadline(time.Now().Add(quiet)); err != nil {
			return &lineFault{err}
		}
		n, err := t.w.Read(buf[:])
		dropped += n
		if errors.Is(err, os.ErrDeadlineExceeded) {
			break
		}
		if err != nil {
			return readFault(err)
		}
	}
	if dropped > 0 {
		t.log.Debug("modbus rtu dropped stray bytes", "bytes", dropped)
	}
	t.quietAt = time.Now()
	return nil
}

func (t *rtuTransport) dump(msg string, frame []byte) {
	if t.log.Enabled(context.Background(), slog.LevelDebug) {
		t.log.Debug(msg, "frame", fmt.Sprintf("% x", frame))
	}
}

// rtuPackager is goburrow's RTU packager (Encode, Decode) with a stricter
// Verify. goburrow's Verify checks the length and the unit, Decode the
// CRC, in that order and with untyped errors; so a reply whose unit byte
// was corrupted would read as one from another unit. Here the CRC comes
// first, and each failure wraps ErrBadFrame, ErrCRC or ErrWrongUnit. The
// function code and the exception length are checked while reading the
// reply (replyLen); goburrow's client checks the byte count and the echoes
// of writes.
type rtuPackager struct{ h *modbus.RTUClientHandler }

func (p *rtuPackager) Encode(pdu *modbus.ProtocolDataUnit) ([]byte, error) { return p.h.Encode(pdu) }

func (p *rtuPackager) Decode(adu []byte) (*modbus.ProtocolDataUnit, error) { return p.h.Decode(adu) }

func (p *rtuPackager) Verify(req, resp []byte) error {
	if len(resp) < 4 {
		return fmt.Errorf("%w: %d bytes", ErrBadFrame, len(resp))
	}
	// goburrow's Decode checks the CRC and nothing else.
	if _, err := p.h.Decode(resp); err != nil {
		return fmt.Errorf("%w: %w", ErrCRC, err)
	}
	if resp[0] != req[0] {
		return fmt.Errorf("%w: unit %d answered a request to unit %d", ErrWrongUnit, resp[0], req[0])
	}
	return nil
}

// serialLine is a serial port kept open by serialport.Keeper, which
// reopens the same path (a replugged USB adapter) after a fault.
type serialLine struct{ k *serialport.Keeper }

func (s serialLine) open() (wire, error) {
	p, err := s.k.Port()
	if err != nil {
		return nil, err
	}
	return portWire{p}, nil
}

func (s serialLine) retryAt() time.Time { return s.k.Next() }

func (s serialLine) done(fault error) {
	if fault != nil {
		s.k.Fault(fault)
	}
}

func (s serialLine) close() error { return s.k.Close() }

// portWire is a serial port as a wire.
type portWire struct{ *serialport.Port }

func (p portWire) SetDeadline(t time.Time) error {
	p.Port.SetDeadline(t)
	return nil
}

// socketLine is a TCP connection to an Ethernet–RS-485 converter that
// passes RTU frames through.
type socketLine struct {
	addr    string
	timeout time.Duration // bounds the dial
	conn    net.Conn
	redial
}

func (s *socketLine) open() (wire, error) {
	c, err := net.DialTimeout("tcp", s.addr, s.timeout)
	if err != nil {
		s.failed()
		return nil, err
	}
	s.conn = c
	return c, nil
}

func (s *socketLine) done(fault error) {
	if fault == nil {
		s.reset()
		return
	}
	// Closing a connection that already failed may fail as well.
	_ = s.close()
	s.failed()
}

func (s *socketLine) close() error {
	if s.conn == nil {
		return nil
	}
	err := s.conn.Close()
	s.conn = nil
	return err
}
