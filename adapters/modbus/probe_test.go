package modbus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"reflect"
	"testing"
	"time"

	gmb "github.com/goburrow/modbus"

	"github.com/fieldgate/fieldgate/internal/reading"
	"github.com/fieldgate/fieldgate/test/modbussim"
	"github.com/fieldgate/fieldgate/test/peers"
	"github.com/fieldgate/fieldgate/test/rtuserver"
)

// idData encodes the data of a device identification reply (after the
// function code), the inverse of parseDeviceID.
func idData(code, conformity byte, more bool, next byte, objs ...DeviceObject) []byte {
	b := []byte{meiDeviceID, code, conformity, 0, next, byte(len(objs))}
	if more {
		b[3] = 0xFF
	}
	for _, o := range objs {
		b = append(append(b, o.ID, byte(len(o.Value))), o.Value...)
	}
	return b
}

var testIdentity = []DeviceObject{{0, "fieldgate"}, {1, "FG-SIM"}, {2, "1.2"}, {4, "Simulated meter"}}

// TestDeviceIDReplyLen reads device identification replies the way
// readReply does, asking replyLen for the length each time it has read
// what it asked for: it must reach the whole frame and never ask for more.
func TestDeviceIDReplyLen(t *testing.T) {
	req := frame(t, 1, fcMEI, meiDeviceID, readRegularID, 0)
	for _, c := range []struct {
		name  string
		reply []byte
	}{
		{"no objects", frame(t, 1, fcMEI, idData(readRegularID, 0x82, false, 0)...)},
		{"objects", frame(t, 1, fcMEI, idData(readRegularID, 0x82, false, 0, testIdentity...)...)},
		{"an empty object", frame(t, 1, fcMEI, idData(readRegularID, 0x82, true, 5, DeviceObject{0, ""}, DeviceObject{1, "x"})...)},
		{"exception", frame(t, 1, fcMEI|0x80, gmb.ExceptionCodeIllegalFunction)},
	} {
		want := 3
		for {
			n, err := replyLen(req, c.reply[:want])
			if err != nil {
				t.Fatalf("%s: replyLen(% x): %v", c.name, c.reply[:want], err)
			}
			if n > len(c.reply) {
				t.Fatalf("%s: replyLen(% x) = %d, beyond the %d-byte frame", c.name, c.reply[:want], n, len(c.reply))
			}
			if n == want {
				break
			}
			want = n
		}
		if want != len(c.reply) {
			t.Errorf("%s: the reply ends at %d bytes, want %d", c.name, want, len(c.reply))
		}
	}
	for _, head := range [][]byte{
		{1, fcMEI, 0x0D}, // another MEI type
		{1, fcMEI, meiDeviceID, 2, 0x82, 0, 0, 1, 0, 255}, // an object beyond the frame
	} {
		if _, err := replyLen(req, head); !errors.Is(err, ErrBadFrame) {
			t.Errorf("replyLen(% x): %v, want ErrBadFrame", head, err)
		}
	}
}

func TestParseDeviceID(t *testing.T) {
	good := idData(readRegularID, 0x82, false, 0, testIdentity...)
	for _, c := range []struct {
		name string
		data []byte
		code byte
		want deviceIDReply
		err  error
	}{
		{"regular", good, readRegularID, deviceIDReply{conformity: 0x82, objects: testIdentity}, nil},
		{"more follow", idData(readBasicID, 0x01, true, 2, testIdentity[:2]...), readBasicID,
			deviceIDReply{conformity: 0x01, more: true, next: 2, objects: testIdentity[:2]}, nil},
		{"no objects", idData(readRegularID, 0x81, false, 0), readRegularID, deviceIDReply{conformity: 0x81}, nil},
		{"short", good[:5], readRegularID, deviceIDReply{}, ErrBadFrame},
		{"another MEI type", append([]byte{0x0D}, good[1:]...), readRegularID, deviceIDReply{}, ErrBadFrame},
		{"another read code", good, readBasicID, deviceIDReply{}, ErrBadFrame},
		{"more follows neither 0 nor 0xff", append(append([]byte(nil), good[:3]...), append([]byte{1}, good[4:]...)...), readRegularID, deviceIDReply{}, ErrBadFrame},
		{"an object cut short", good[:len(good)-1], readRegularID, deviceIDReply{}, ErrBadFrame},
		{"bytes after the objects", append(append([]byte(nil), good...), 0), readRegularID, deviceIDReply{}, ErrBadFrame},
	} {
		got, err := parseDeviceID(c.data, c.code)
		if !errors.Is(err, c.err) || (c.err == nil) != (err == nil) {
			t.Errorf("%s: error %v, want %v", c.name, err, c.err)
			continue
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: %+v, want %+v", c.name, got, c.want)
		}
	}
}

// FuzzDeviceIDReply feeds arbitrary replies to a device identification
// request over RTU: no reply may panic the client, and what parses encodes
// back to the same bytes.
func FuzzDeviceIDReply(f *testing.F) {
	f.Add(frame(f, 1, fcMEI, idData(readRegularID, 0x82, false, 0, testIdentity...)...))
	f.Add(frame(f, 1, fcMEI, idData(readRegularID, 0x82, true, 3, testIdentity[:3]...)...))
	f.Add(frame(f, 1, fcMEI|0x80, 1))
	f.Add([]byte{1, fcMEI, meiDeviceID, 2, 0x82, 0, 0, 3, 0, 200})
	log := slog.New(slog.DiscardHandler)
	f.Fuzz(func(t *testing.T, reply []byte) {
		tr := newRTUTransport(nil, 0)
		tr.w = &scriptWire{reply: reply}
		data, err := tr.client(1, time.Second, log).(unitClient).send(fcMEI, []byte{meiDeviceID, readRegularID, 0})
		if err != nil {
			return
		}
		r, err := parseDeviceID(data, readRegularID)
		if err != nil {
			return
		}
		if back := idData(readRegularID, r.conformity, r.more, r.next, r.objects...); string(back) != string(data) {
			t.Fatalf("reply data % x parsed as %+v, which encodes as % x", data, r, back)
		}
	})
}

// TestInterpret writes a value in every byte order with the point codec
// and finds it among the interpretations of those registers under the same
// type and order.
func TestInterpret(t *testing.T) {
	for _, c := range []struct {
		typ string
		v   reading.Value
	}{
		{"int16", reading.Int(-2)},
		{"uint32", reading.Uint(0xA1B2C3D4)},
		{"float32", reading.Float(21.5)},
		{"int64", reading.Int(-1234567890123)},
		{"float64", reading.Float(-0.125)},
		{"string", reading.String("AB-1")},
	} {
		for _, order := range byteOrderNames {
			pc := PointConfig{Type: c.typ, ByteOrder: order, Length: 2}
			cd, err := newCodec(pc)
			if err != nil {
				t.Fatal(err)
			}
			wire, err := cd.encode(c.v)
			if err != nil {
				t.Fatal(err)
			}
			found := false
			for _, in := range Interpret(wire) {
				if in.Type == c.typ && in.ByteOrder == order {
					found = true
					if in.Value != c.v {
						t.Errorf("%s %s of % x: %v, want %v", c.typ, order, wire, in.Value, c.v)
					}
				}
			}
			if !found {
				t.Errorf("no %s %s among the interpretations of % x", c.typ, order, wire)
			}
		}
	}
	// Only the types that fit: one register is int16, uint16 and a string
	// of two characters, each in four orders.
	if n := len(Interpret([]byte{0x41, 0x42})); n != 3*4 {
		t.Errorf("one register: %d interpretations, want 12", n)
	}
	if n := len(Interpret(make([]byte, 8))); n != 9*4 {
		t.Errorf("four registers: %d interpretations, want 36", n)
	}
}

// openBus opens a bus for the test, closed when it ends.
func openBus(t *testing.T, url string, timeout time.Duration) *Bus {
	t.Helper()
	b, err := OpenBus(url, line8N1, timeout, slog.New(slog.NewTextHandler(t.Output(), nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return b
}

// TestBusTCP reads registers and bits of simonvetter's server, which has
// no device identification (exception 1), and, as a gateway, answers for
// absent units with exception 11.
func TestBusTCP(t *testing.T) {
	bank := modbussim.NewBank()
	bank.SetHolding(0, 0x4148, 0x0001)
	bank.SetCoil(3, true)
	bank.ServeUnits(1)
	b := openBus(t, "tcp://"+serve(t, bank, "127.0.0.1:0").Addr, time.Second)
	ctx := context.Background()
	if b.RTU() {
		t.Error("a tcp:// bus says it is RTU")
	}

	regs, err := b.ReadRegisters(ctx, 1, HoldingRegister, 0, 2)
	if err != nil || fmt.Sprintf("% x", regs) != "41 48 00 01" {
		t.Errorf("ReadRegisters: % x, %v; want 41 48 00 01", regs, err)
	}
	bits, err := b.ReadBits(ctx, 1, Coil, 2, 3)
	if err != nil || !reflect.DeepEqual(bits, []bool{false, true, false}) {
		t.Errorf("ReadBits: %v, %v", bits, err)
	}
	_, err = b.Identify(ctx, 1)
	if code, ok := ExceptionCode(err); !ok || code != gmb.ExceptionCodeIllegalFunction {
		t.Errorf("Identify: %v, want exception 1", err)
	}
	_, err = b.ReadRegisters(ctx, 2, HoldingRegister, 0, 1)
	if code, ok := ExceptionCode(err); !ok || !GatewayAbsent(code) {
		t.Errorf("unit 2 behind the gateway: %v, want exception 11", err)
	}
	for _, c := range []struct {
		table       string
		addr, count int
	}{
		{"holding", 0, 1}, {HoldingRegister, 0, 126}, {HoldingRegister, 65535, 2}, {Coil, 0, 2001},
	} {
		if _, err := b.ReadRegisters(ctx, 1, c.table, c.addr, c.count); err == nil {
			t.Errorf("ReadRegisters(%s, %d, %d) passed", c.table, c.addr, c.count)
		}
	}
	if _, err := b.ReadBits(ctx, 1, HoldingRegister, 0, 1); err == nil {
		t.Error("ReadBits of holding registers passed")
	}
}

// TestBusUnreachable: nothing listens at the address, so the first request
// fails at once as unreachable.
func TestBusUnreachable(t *testing.T) {
	b := openBus(t, "tcp://"+peers.FreeAddr(t), time.Second)
	begin := time.Now()
	_, err := b.ReadRegisters(context.Background(), 1, HoldingRegister, 0, 1)
	if !Unreachable(err) {
		t.Errorf("%v: not unreachable", err)
	}
	if took := time.Since(begin); took > time.Second {
		t.Errorf("took %s", took)
	}
}

// TestBusRTU identifies units of the pymodbus server on a serial line and
// through an rtu+tcp converter: unit 1 has an identity, unit 2 refuses
// with exception 1, unit 3 is not on the bus.
func TestBusRTU(t *testing.T) {
	rtuserver.Need(t)
	id := &rtuserver.Identity{Units: []int{1}, Objects: map[byte]string{}}
	for _, o := range testIdentity {
		id.Objects[o.ID] = o.Value
	}
	cable := peers.StartSocat(t, t.TempDir())
	rtuserver.Start(t, cable.B, line8N1, map[byte]rtuserver.Unit{1: {"hr": {"0": {7}}}, 2: {}}, id)
	addr := peers.FreeAddr(t)
	for _, c := range []struct{ name, url string }{{"serial", "rtu://" + cable.A}, {"tcp", "rtu+tcp://" + addr}} {
		t.Run(c.name, func(t *testing.T) {
			url := c.url
			if c.name == "tcp" {
				rtuserver.StartTCPBridge(t, addr, cable.A)
			}
			const timeout = 300 * time.Millisecond
			b := openBus(t, url, timeout)
			ctx := context.Background()
			if !b.RTU() {
				t.Errorf("%s: not RTU", url)
			}
			got, err := b.Identify(ctx, 1)
			if err != nil {
				t.Fatalf("unit 1: %v", err)
			}
			if !reflect.DeepEqual(got.Objects, testIdentity) {
				t.Errorf("unit 1: %+v, want %+v", got.Objects, testIdentity)
			}
			if regs, err := b.ReadRegisters(ctx, 1, HoldingRegister, 0, 1); err != nil || fmt.Sprintf("% x", regs) != "00 07" {
				t.Errorf("unit 1 holding 0: % x, %v", regs, err)
			}
			_, err = b.Identify(ctx, 2)
			if code, ok := ExceptionCode(err); !ok || code != gmb.ExceptionCodeIllegalFunction {
				t.Errorf("unit 2: %v, want exception 1", err)
			}
			begin := time.Now()
			_, err = b.Identify(ctx, 3)
			if !errors.Is(err, ErrNoResponse) || !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Errorf("unit 3: %v, want no response", err)
			}
			if took := time.Since(begin); took > timeout+time.Second {
				t.Errorf("unit 3 took %s with a timeout of %s", took, timeout)
			}
			// The bus works on after the silence.
			if _, err := b.Identify(ctx, 1); err != nil {
				t.Errorf("unit 1 again: %v", err)
			}
		})
	}
}
