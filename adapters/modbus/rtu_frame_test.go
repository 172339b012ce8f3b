package modbus

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"testing"
	"time"

	gmb "github.com/goburrow/modbus"

	"github.com/fieldgate/fieldgate/adapters/internal/serialport"
	"github.com/fieldgate/fieldgate/test/peers"
)

// frame encodes an RTU frame (request or reply) with a correct CRC.
func frame(t testing.TB, unit, fc byte, data ...byte) []byte {
	t.Helper()
	p := rtuPackager{gmb.NewRTUClientHandler("")}
	p.h.SlaveId = unit
	b, err := p.Encode(&gmb.ProtocolDataUnit{FunctionCode: fc, Data: data})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// corrupt returns b with byte i inverted.
func corrupt(b []byte, i int) []byte {
	c := append([]byte(nil), b...)
	c[(i+len(c))%len(c)] ^= 0xff
	return c
}

func TestReplyLen(t *testing.T) {
	read10 := []byte{1, fcReadHolding, 0, 0, 0, 10}
	for _, c := range []struct {
		req, head []byte
		want      int
		err       error
	}{
		{read10, []byte{1, fcReadHolding, 20}, 25, nil},
		{read10, []byte{1, fcReadHolding | 0x80, 2}, 5, nil},
		{read10, []byte{1, fcReadInput, 20}, 0, ErrBadFrame},
		{[]byte{1, fcReadCoils, 0, 0, 0, 9}, []byte{1, fcReadCoils, 2}, 7, nil},
		{[]byte{1, fcReadDiscrete, 0, 0, 0, 1}, []byte{1, fcReadDiscrete, 1}, 6, nil},
		{[]byte{1, fcReadInput, 0, 0, 0, 125}, []byte{1, fcReadInput, 250}, 255, nil},
		{[]byte{1, fcReadInput, 0, 0, 0, 125}, []byte{1, fcReadInput, 251}, 256, nil},
		{[]byte{1, fcReadInput, 0, 0, 0, 125}, []byte{1, fcReadInput, 252}, 0, ErrBadFrame},
		{[]byte{1, fcWriteCoil, 0, 3, 0xff, 0}, []byte{1, fcWriteCoil, 0}, 8, nil},
		{[]byte{1, fcWriteRegister, 0, 3, 0, 1}, []byte{1, fcWriteRegister, 0}, 8, nil},
		{[]byte{1, fcWriteMultiple, 0, 3, 0, 2, 4}, []byte{1, fcWriteMultiple, 0}, 8, nil},
		{[]byte{1, fcWriteCoils, 0, 3, 0, 9, 2}, []byte{1, fcWriteCoils, 0}, 8, nil},
		{[]byte{1, 0x2b, 0x0e, 1, 0}, []byte{1, 0x2b, 0x0e}, 10, nil}, // the header first (see TestDeviceIDReplyLen)
	} {
		got, err := replyLen(c.req, c.head)
		if got != c.want || !errors.Is(err, c.err) {
			t.Errorf("replyLen(% x, % x) = %d, %v; want %d, %v", c.req, c.head, got, err, c.want, c.err)
		}
	}
}

func TestRTUVerify(t *testing.T) {
	p := rtuPackager{gmb.NewRTUClientHandler("")}
	req := frame(t, 1, fcReadHolding, 0, 0, 0, 1)
	good := frame(t, 1, fcReadHolding, 2, 0, 42)
	for _, c := range []struct {
		name string
		resp []byte
		want error
	}{
		{"good", good, nil},
		{"exception", frame(t, 1, fcReadHolding|0x80, 2), nil},
		{"bad CRC", corrupt(good, -1), ErrCRC},
		{"corrupted data", corrupt(good, 4), ErrCRC},
		{"corrupted unit byte", corrupt(good, 0), ErrCRC}, // not ErrWrongUnit: goburrow would say so
		{"another unit", frame(t, 2, fcReadHolding, 2, 0, 42), ErrWrongUnit},
		{"short", good[:3], ErrBadFrame},
	} {
		if err := p.Verify(req, c.resp); !errors.Is(err, c.want) || (c.want == nil) != (err == nil) {
			t.Errorf("%s: Verify = %v, want %v", c.name, err, c.want)
		}
	}
}

// TestRTUTransportFrames answers the transport's requests with scripted
// frames from the device end of a PTY pair, and of a TCP connection as an
// rtu+tcp converter: the malformed frames no real server sends. Each is
// classified, and the exchange after it, answered properly, reads clean
// data.
func TestRTUTransportFrames(t *testing.T) {
	t.Run("serial", func(t *testing.T) {
		cable := peers.StartSocat(t, t.TempDir())
		tr := newRTUTransport(serialLine{serialport.NewKeeper(cable.A, line8N1)}, serialport.FrameGap(9600, 8, "N", 1))
		if err := tr.open(); err != nil {
			t.Fatal(err)
		}
		defer tr.close()
		testFrames(t, tr, cable.Device(), true)
	})
	t.Run("tcp", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		tr := newRTUTransport(&socketLine{addr: ln.Addr().String(), timeout: 5 * time.Second, redial: newRedial(defaultPace)}, serialport.FrameGap(9600, 8, "N", 1))
		if err := tr.open(); err != nil {
			t.Fatal(err)
		}
		defer tr.close()
		dev, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		defer dev.Close()
		testFrames(t, tr, dev, false)
	})
}

// testFrames runs TestRTUTransportFrames on an open transport whose far end
// is dev. flushes tells whether the transport can drop unread input before
// a request (a serial port can, a socket cannot).
func testFrames(t *testing.T, tr *rtuTransport, dev interface {
	io.ReadWriter
	SetReadDeadline(time.Time) error
}, flushes bool) {
	log := slog.New(slog.DiscardHandler)

	// exchange reads two holding registers of unit 1, the device end
	// answering with reply (nothing when nil), then writing late.
	exchange := func(reply, late []byte) ([]byte, error) {
		t.Helper()
		devErr := make(chan error, 1)
		go func() {
			if err := dev.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
				devErr <- err
				return
			}
			req := make([]byte, 8)
			if _, err := io.ReadFull(dev, req); err != nil {
				devErr <- fmt.Errorf("device: read request: %w", err)
				return
			}
			_, err := dev.Write(reply)
			devErr <- err
		}()
		data, err := holdingRegisters.read(tr.client(1, 200*time.Millisecond, log), 0, 2)
		if broken := tr.settle(err); broken {
			t.Fatalf("the port was closed after %v", err)
		}
		if derr := <-devErr; derr != nil {
			t.Fatal(derr)
		}
		if late != nil {
			if _, err := dev.Write(late); err != nil {
				t.Fatal(err)
			}
		}
		return data, err
	}
	good := frame(t, 1, fcReadHolding, 4, 0, 42, 0, 43)
	stale := frame(t, 1, fcReadHolding, 4, 0, 1, 0, 2)
	for _, c := range []struct {
		name        string
		reply, late []byte
		want        error
	}{
		{"good", good, nil, nil},
		{"bad CRC", corrupt(good, -2), nil, ErrCRC},
		{"another unit", frame(t, 2, fcReadHolding, 4, 0, 42, 0, 43), nil, ErrWrongUnit},
		{"cut short", good[:5], nil, ErrBadFrame},
		{"another function", frame(t, 1, fcReadInput, 4, 0, 42, 0, 43), nil, ErrBadFrame},
		{"byte count too small", frame(t, 1, fcReadHolding, 2, 0, 42), nil, ErrBadFrame},
		{"noise after the reply", append(append([]byte(nil), good...), 0xff, 0x03, 0x04), nil, nil},
		{"silence", nil, nil, ErrNoResponse},
		{"silence, then a late answer", nil, stale, ErrNoResponse},
	} {
		if c.late != nil && flushes {
			// socat relays the late bytes to the PTY at its own pace, so
			// whether they come before the next request is up to chance;
			// over loopback TCP they are there once written.
			continue
		}
		t.Run(c.name, func(t *testing.T) {
			data, err := exchange(c.reply, c.late)
			if !errors.Is(err, c.want) || (c.want == nil) != (err == nil) {
				t.Errorf("error %v, want %v", err, c.want)
			}
			if errors.Is(err, ErrNoResponse) && !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Errorf("%v does not match os.ErrDeadlineExceeded", err)
			}
			if err == nil && fmt.Sprint(data) != fmt.Sprint([]byte{0, 42, 0, 43}) {
				t.Errorf("data % x", data)
			}
			if c.name == "noise after the reply" && !flushes {
				// Nothing marks the socket dirty: the noise spoils the
				// next exchange, and the drain after that clears it.
				if _, err := exchange(good, nil); err == nil {
					t.Error("the exchange after the noise succeeded")
				}
			}
			data, err = exchange(good, nil)
			if err != nil || fmt.Sprint(data) != fmt.Sprint([]byte{0, 42, 0, 43}) {
				t.Errorf("next exchange: % x, %v; want 00 2a 00 2b", data, err)
			}
		})
	}

	// A Modbus exception is an answer: typed, and nothing to drain.
	_, err := exchange(frame(t, 1, fcReadHolding|0x80, gmb.ExceptionCodeIllegalDataAddress), nil)
	var exc *gmb.ModbusError
	if !errors.As(err, &exc) || exc.ExceptionCode != gmb.ExceptionCodeIllegalDataAddress || tr.dirty {
		t.Errorf("exception: %v (dirty %v)", err, tr.dirty)
	}
}

// scriptWire is a wire whose far end sends reply and then nothing, for the
// fuzz target.
type scriptWire struct{ reply []byte }

func (w *scriptWire) Read(b []byte) (int, error) {
	if len(w.reply) == 0 {
		return 0, os.ErrDeadlineExceeded
	}
	n := copy(b, w.reply)
	w.reply = w.reply[n:]
	return n, nil
}

func (w *scriptWire) Write(b []byte) (int, error) { return len(b), nil }
func (w *scriptWire) SetDeadline(time.Time) error { return nil }

// FuzzRTUReply feeds arbitrary replies to a read of three holding
// registers of unit 1 and of three coils: no reply may panic the client or
// come back as data of the wrong length.
func FuzzRTUReply(f *testing.F) {
	f.Add(frame(f, 1, fcReadHolding, 6, 0, 1, 0, 2, 0, 3), false)
	f.Add(frame(f, 1, fcReadCoils, 1, 5), true)
	f.Add(frame(f, 1, fcReadHolding|0x80, 2), false)
	f.Add(frame(f, 2, fcReadHolding, 6, 0, 1, 0, 2, 0, 3), false)
	f.Add(frame(f, 1, fcReadHolding, 255), false)
	f.Add([]byte{1, fcReadHolding}, false)
	for _, code := range []byte{1, 2, 3, 4, 6, 0x0b, 0xff} {
		f.Add(frame(f, 1, fcReadHolding|0x80, code), false)
		f.Add(frame(f, 1, fcReadCoils|0x80, code), true)
	}
	f.Add(frame(f, 1, fcReadHolding|0x80), false)                                             // an exception without its code
	f.Add(frame(f, 1, fcReadInput, 6, 0, 1, 0, 2, 0, 3), false)                               // another function's answer
	f.Add(frame(f, 1, fcReadHolding, 4, 0, 1, 0, 2), false)                                   // two registers, not three
	f.Add(frame(f, 1, fcReadHolding, 6, 0, 1, 0, 2), false)                                   // byte count beyond the data
	f.Add(frame(f, 1, fcReadCoils, 2, 5, 0), true)                                            // a byte too many for three coils
	f.Add(frame(f, 1, fcReadCoils, 0), true)                                                  // no coil bytes
	f.Add(frame(f, 1, fcReadHolding, 6, 0, 1, 0, 2, 0, 3)[:6], false)                         // truncated
	f.Add(corrupt(frame(f, 1, fcReadHolding, 6, 0, 1, 0, 2, 0, 3), -1), false)                // bad CRC
	f.Add(append([]byte{0, 0, 0}, frame(f, 1, fcReadHolding, 6, 0, 1, 0, 2, 0, 3)...), false) // line noise first
	log := slog.New(slog.DiscardHandler)
	f.Fuzz(func(t *testing.T, reply []byte, bits bool) {
		tr := newRTUTransport(nil, 0)
		tr.w = &scriptWire{reply: reply}
		tbl, want := holdingRegisters, 6
		if bits {
			tbl, want = coils, 1
		}
		data, err := tbl.read(tr.client(1, time.Second, log), 0, 3)
		if err == nil && len(data) != want {
			t.Fatalf("reply % x: %d bytes of data, want %d", reply, len(data), want)
		}
	})
}
