package serialport

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/fieldgate/fieldgate/config"
	"github.com/fieldgate/fieldgate/test/peers"
)

var line8N1 = config.Line{BaudRate: 9600, DataBits: 8, Parity: "N", StopBits: 1}

func TestFrameGap(t *testing.T) {
	for _, c := range []struct {
		baud, data int
		parity     string
		stop       int
		want       time.Duration
	}{
		{9600, 8, "N", 1, 3645834},   // 10 bits: 35/9600 s, rounded up
		{9600, 8, "E", 1, 4010417},   // 11 bits
		{9600, 8, "o", 2, 4375000},   // 12 bits, parity in lower case
		{9600, 8, "", 1, 3645834},    // empty parity is none
		{1200, 7, "E", 1, 29166667},  // 10 bits
		{19200, 8, "E", 1, 2005209},  // the last computed rate
		{19201, 8, "N", 1, 1750000},  // fixed above 19200
		{115200, 8, "N", 1, 1750000}, // fixed
		{0, 8, "N", 1, 1750000},      // nonsense baud: fixed, no division by zero
		{300, 8, "N", 2, 128333334},  // 11 bits at 300 baud
		{19200, 8, "N", 1, 1822917},  // 10 bits
	} {
		if got := FrameGap(c.baud, c.data, c.parity, c.stop); got != c.want {
			t.Errorf("FrameGap(%d, %d, %q, %d) = %v, want %v", c.baud, c.data, c.parity, c.stop, got, c.want)
		}
	}
}

func TestCheckLine(t *testing.T) {
	for _, c := range []struct {
		line config.Line
		ok   bool
	}{
		{line8N1, true},
		{config.Line{BaudRate: 19200, DataBits: 7, Parity: "e", StopBits: 2}, true},
		{config.Line{BaudRate: 9600, DataBits: 8, Parity: "O", StopBits: 1}, true},
		{config.Line{BaudRate: 0, DataBits: 8, Parity: "N", StopBits: 1}, false},
		{config.Line{BaudRate: 9600, DataBits: 9, Parity: "N", StopBits: 1}, false},
		{config.Line{BaudRate: 9600, DataBits: 4, Parity: "N", StopBits: 1}, false},
		{config.Line{BaudRate: 9600, DataBits: 8, Parity: "X", StopBits: 1}, false},
		{config.Line{BaudRate: 9600, DataBits: 8, Parity: "", StopBits: 1}, false},
		{config.Line{BaudRate: 9600, DataBits: 8, Parity: "N", StopBits: 3}, false},
		{config.Line{BaudRate: 9600, DataBits: 8, Parity: "N", StopBits: 0}, false},
	} {
		if err := CheckLine(c.line); (err == nil) != c.ok {
			t.Errorf("CheckLine(%+v) = %v, want ok=%v", c.line, err, c.ok)
		}
	}
}

// readN reads exactly n bytes from r within a bounded time.
func readN(t *testing.T, r interface {
	io.Reader
	SetReadDeadline(time.Time) error
}, n int) string {
	t.Helper()
	if err := r.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		t.Fatalf("read %d bytes: %v", n, err)
	}
	return string(b)
}

// portConn adapts Port to readN, whose SetReadDeadline returns an error.
type portConn struct{ *Port }

func (p portConn) SetReadDeadline(t time.Time) error { p.Port.SetReadDeadline(t); return nil }

func TestPortOverPTY(t *testing.T) {
	s := peers.StartSocat(t, t.TempDir())
	dev := s.Device()
	p, err := Open(s.A, config.Line{BaudRate: 19200, DataBits: 8, Parity: "E", StopBits: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()

	if _, err := p.Write([]byte("ping\r\n")); err != nil {
		t.Fatal(err)
	}
	if got := readN(t, dev, 6); got != "ping\r\n" {
		t.Errorf("device got %q", got)
	}
	if _, err := dev.Write([]byte{0, 0xff, '\n', 0x11}); err != nil {
		t.Fatal(err)
	}
	if got := readN(t, portConn{p}, 4); got != "\x00\xff\n\x11" {
		t.Errorf("port got %q, want the raw bytes unchanged", got)
	}

	// Nothing to read: the deadline ends the read, and not before it.
	start := time.Now()
	p.SetReadDeadline(start.Add(100 * time.Millisecond))
	n, err := p.Read(make([]byte, 8))
	if n != 0 || !errors.Is(err, ErrTimeout) || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Read = %d, %v; want ErrTimeout", n, err)
	}
	if el := time.Since(start); el < 100*time.Millisecond {
		t.Errorf("timed out after %v, before the deadline", el)
	}

	// A late answer is discarded by ResetInput. socat passes a write on in
	// one piece, so once its first byte is here the rest is buffered.
	if _, err := dev.Write([]byte("stale")); err != nil {
		t.Fatal(err)
	}
	if got := readN(t, portConn{p}, 1); got != "s" {
		t.Fatalf("port got %q", got)
	}
	if err := p.ResetInput(); err != nil {
		t.Fatal(err)
	}
	if _, err := dev.Write([]byte("fresh")); err != nil {
		t.Fatal(err)
	}
	if got := readN(t, portConn{p}, 5); got != "fresh" {
		t.Errorf("after ResetInput port got %q, want fresh", got)
	}
}

func TestOpenMissing(t *testing.T) {
	_, err := Open(filepath.Join(t.TempDir(), "ttyUSB9"), line8N1)
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Open of a missing device = %v, want fs.ErrNotExist", err)
	}
	if _, err := Open("/dev/null", config.Line{}); err == nil {
		t.Error("Open with zero line settings succeeded")
	}
}

// clock is a fake time source for the Keeper's back-off.
type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }

// TestKeeperUnplug pulls the cable while the port is open and plugs it back:
// reads fail, the Keeper backs off while the device is missing, and reopens
// the same path once it is back, on a fake clock.
func TestKeeperUnplug(t *testing.T) {
	s := peers.StartSocat(t, t.TempDir())
	dev := s.Device()
	c := &clock{t: time.Unix(1e9, 0)}
	k := NewKeeper(s.A, line8N1)
	k.now = c.now
	defer k.Close()

	p, err := k.Port()
	if err != nil {
		t.Fatal(err)
	}
	if !k.Next().IsZero() {
		t.Errorf("Next = %v while open", k.Next())
	}
	if _, err := dev.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	if got := readN(t, portConn{p}, 1); got != "x" {
		t.Fatalf("port got %q", got)
	}

	c.advance(time.Hour) // a long healthy spell: the back-off starts over
	s.Stop()
	p.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err = p.Read(make([]byte, 8))
	if !errors.Is(err, io.EOF) && !errors.Is(err, syscall.EIO) {
		t.Fatalf("Read after unplug = %v, want EOF or EIO", err)
	}
	k.Fault(err)

	// Each failure in a row doubles the span of the wait, up to MaxRetry;
	// the wait is drawn from the upper half of its span.
	for i, span := range []time.Duration{1, 2, 4, 8, 16, 30, 30} {
		span *= time.Second
		got := k.Next().Sub(c.t)
		if got < span/2 || got > span {
			t.Fatalf("wait %d = %v, want within [%v, %v]", i, got, span/2, span)
		}
		c.advance(got - time.Millisecond)
		if _, err := k.Port(); err == nil {
			t.Fatal("Port opened before the back-off passed")
		}
		c.advance(time.Millisecond)
		if _, err := k.Port(); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("Port with the device missing = %v, want fs.ErrNotExist", err)
		}
	}

	s.Start()
	dev = s.Device()
	if _, err := k.Port(); err == nil {
		t.Fatal("Port opened before the back-off passed, though the device is back")
	}
	c.advance(MaxRetry)
	if p, err = k.Port(); err != nil {
		t.Fatalf("reopen after replug: %v", err)
	}
	if _, err := p.Write([]byte("back")); err != nil {
		t.Fatal(err)
	}
	if got := readN(t, dev, 4); got != "back" {
		t.Errorf("device got %q after replug", got)
	}

	// A port that faults soon after opening keeps backing off.
	c.advance(time.Second)
	flapping := errors.New("flapping")
	k.Fault(flapping)
	if got := k.Next().Sub(c.t); got < MaxRetry/2 || got > MaxRetry {
		t.Errorf("wait after a quick fault = %v, want within [%v, %v]", got, MaxRetry/2, MaxRetry)
	}
	if _, err := k.Port(); !errors.Is(err, flapping) {
		t.Errorf("Port while backing off = %v, want the fault", err)
	}
}

// TestWriteToPortThatStopsDraining: a port that takes nothing more fails the
// write at its deadline with ErrNotDraining instead of blocking its owner;
// the path cannot be reopened while the write is stuck in the kernel, and
// can once the port drains again.
func TestWriteToPortThatStopsDraining(t *testing.T) {
	s := peers.StartSocat(t, t.TempDir())
	p, err := Open(s.A, line8N1)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	unclog := s.Clog()
	p.SetWriteDeadline(time.Now().Add(300 * time.Millisecond))
	start := time.Now()
	_, err = p.Write(make([]byte, 64))
	if took := time.Since(start); !errors.Is(err, ErrNotDraining) || took > 5*time.Second {
		t.Fatalf("Write to a clogged port = %v after %v, want ErrNotDraining at its deadline", err, took)
	}
	_ = p.Close()
	if _, err := Open(s.A, line8N1); !errors.Is(err, ErrNotDraining) {
		t.Fatalf("reopening while the write is stuck = %v, want ErrNotDraining", err)
	}
	stuck.mu.Lock()
	returned := stuck.paths[s.A]
	stuck.mu.Unlock()
	unclog()
	select {
	case <-returned:
	case <-time.After(20 * time.Second):
		t.Fatal("the stuck write never returned after the port drained")
	}
	q, err := Open(s.A, line8N1)
	if err != nil {
		t.Fatalf("reopening once the port drained: %v", err)
	}
	_ = q.Close()
}
