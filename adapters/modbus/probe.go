package modbus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/goburrow/modbus"

	"github.com/fieldgate/fieldgate/config"
)

// Commissioning requests, for `fieldgate scan` and `fieldgate read`: a Bus
// makes one-off requests through the same transports, and on a shared bus
// the same owner, as the adapters.

// Device identification (FC 43, MEI type 14), which goburrow has no method
// for: unitClient sends it as a raw PDU through the transport's packager,
// so over RTU it is framed, timed and checked like every other request.
const (
	fcMEI       = 0x2B // encapsulated interface transport
	meiDeviceID = 0x0E // read device identification
	// Read device ID codes: a stream of the basic objects (0–2) or of the
	// regular ones (0–6).
	readBasicID   = 0x01
	readRegularID = 0x02
	// maxIDRequests bounds the requests one identification takes when the
	// unit says more follows, so a device that never stops saying so
	// cannot hold the bus.
	maxIDRequests = 8
)

// unitClient is goburrow's Client for one unit, with the packager and
// transporter behind it, so that it can send requests goburrow has no
// method for.
type unitClient struct {
	modbus.Client
	pk modbus.Packager
	tr modbus.Transporter
}

// send sends one request and returns the answer's data (after the function
// code), checked as goburrow checks its own: the packager verifies the
// frame, and an exception comes back as a *modbus.ModbusError.
func (c unitClient) send(fc byte, data []byte) ([]byte, error) {
	req, err := c.pk.Encode(&modbus.ProtocolDataUnit{FunctionCode: fc, Data: data})
	if err != nil {
		return nil, err
	}
	resp, err := c.tr.Send(req)
	if err != nil {
		return nil, err
	}
	if err := c.pk.Verify(req, resp); err != nil {
		return nil, err
	}
	pdu, err := c.pk.Decode(resp)
	if err != nil {
		return nil, err
	}
	switch {
	case pdu.FunctionCode == fc|0x80 && len(pdu.Data) == 1:
		return nil, &modbus.ModbusError{FunctionCode: pdu.FunctionCode, ExceptionCode: pdu.Data[0]}
	case pdu.FunctionCode != fc:
		return nil, fmt.Errorf("%w: function code %d in the reply to function %d", ErrBadFrame, pdu.FunctionCode, fc)
	}
	return pdu.Data, nil
}

// Bus is a connection to the Modbus device or bus a url names, for one-off
// requests. It attaches to the same link as the adapters of this process:
// on a serial port or an rtu+tcp converter, the bus they share, one request
// at a time with the inter-frame silence kept. It reconnects at once after
// a fault, so each request gets its own chance.
type Bus struct {
	m   *member
	rtu bool
}

// OpenBus attaches to the bus url names (tcp://, rtu:// with line's
// settings, rtu+tcp://); timeout bounds each request once it is on the
// wire, and connecting. Close it when done.
func OpenBus(url string, line config.Line, timeout time.Duration, log *slog.Logger) (*Bus, error) {
	if timeout <= 0 {
		return nil, errors.New("timeout must be positive")
	}
	ep, err := newEndpoint(&Config{URL: url, Timeout: config.Duration(timeout), Line: line})
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m, err := buses.attach(ep, log, timeout, pace{})
	if err != nil {
		return nil, err
	}
	return &Bus{m: m, rtu: ep.key != ""}, nil
}

// Close leaves the bus; the last to leave closes the port or socket.
func (b *Bus) Close() { b.m.detach() }

// RTU reports whether requests travel as RTU frames, whose unit ids are
// 1–247 (0 is broadcast, which no unit answers); Modbus TCP takes 0–255.
func (b *Bus) RTU() bool { return b.rtu }

// ReadRegisters reads count holding or input registers of unit from addr,
// once, and returns them as on the wire: two bytes each, high byte first.
func (b *Bus) ReadRegisters(ctx context.Context, unit byte, tableName string, addr, count int) ([]byte, error) {
	t, err := checkRange(tableName, addr, count)
	if err != nil {
		return nil, err
	}
	if t.bits() {
		return nil, fmt.Errorf("a %s holds bits, not registers", t)
	}
	data, _, err := b.m.read(ctx, unit, false, t, addr, count)
	return data, err
}

// ReadBits reads count coils or discrete inputs of unit from addr, once.
func (b *Bus) ReadBits(ctx context.Context, unit byte, tableName string, addr, count int) ([]bool, error) {
	t, err := checkRange(tableName, addr, count)
	if err != nil {
		return nil, err
	}
	if !t.bits() {
		return nil, fmt.Errorf("a %s holds registers, not bits", t)
	}
	data, _, err := b.m.read(ctx, unit, false, t, addr, count)
	if err != nil {
		return nil, err
	}
	bits := make([]bool, count)
	for i := range bits {
		bits[i] = data[i/8]>>(i%8)&1 == 1
	}
	return bits, nil
}

// checkRange checks a read of count addresses of a table from addr.
func checkRange(tableName string, addr, count int) (table, error) {
	t, ok := parseTable(tableName)
	switch {
	case !ok:
		return 0, fmt.Errorf("unknown table %q (want %s, %s, %s or %s)", tableName, Coil, DiscreteInput, InputRegister, HoldingRegister)
	case count < 1 || count > t.limit():
		return 0, fmt.Errorf("count %d: one request reads 1–%d of a %s", count, t.limit(), t)
	case addr < 0 || addr+count > 1<<16:
		return 0, fmt.Errorf("address %d (+%d) is outside 0–65535", addr, count)
	}
	return t, nil
}

// DeviceID is a unit's identification (FC 43/14): its objects in the order
// it sent them.
type DeviceID struct {
	// Conformity is the unit's conformity level: 1 basic, 2 regular, 3
	// extended identification; 0x80 added when it also answers requests
	// for single objects.
	Conformity byte
	Objects    []DeviceObject
}

// DeviceObject is one object of a device identification.
type DeviceObject struct {
	ID    byte
	Value string // as sent: usually ASCII text, but nothing guarantees it
}

// deviceObjectNames are the standard objects' names.
var deviceObjectNames = [...]string{
	"vendor", "product_code", "revision", "vendor_url", "product_name", "model_name", "application_name",
}

// Name returns the object's name: vendor, product_code, revision,
// vendor_url, product_name, model_name, application_name, or for the
// other ids "object_0xNN".
func (o DeviceObject) Name() string {
	if int(o.ID) < len(deviceObjectNames) {
		return deviceObjectNames[o.ID]
	}
	return fmt.Sprintf("object_0x%02x", o.ID)
}

// Identify reads unit's device identification (FC 43/14): the stream of
// its regular objects (vendor, product code, revision, vendor URL, product
// name, model name, application name), or the basic ones (the first three)
// when it refuses the regular stream. A unit that has none answers with an
// exception (commonly 1, illegal function), returned as the error.
func (b *Bus) Identify(ctx context.Context, unit byte) (DeviceID, error) {
	id, err := b.identify(ctx, unit, readRegularID)
	if code, ok := ExceptionCode(err); ok && (code == modbus.ExceptionCodeIllegalDataAddress || code == modbus.ExceptionCodeIllegalDataValue) {
		id, err = b.identify(ctx, unit, readBasicID)
	}
	if err != nil {
		return DeviceID{}, fmt.Errorf("unit %d: read device identification: %w", unit, err)
	}
	return id, nil
}

// identify reads one stream of identification objects, in as many requests
// as the unit needs: it says when more follow, and from which object.
func (b *Bus) identify(ctx context.Context, unit, code byte) (DeviceID, error) {
	var id DeviceID
	obj := byte(0)
	for range maxIDRequests {
		var data []byte
		err := b.m.do(ctx, unit, false, func(c modbus.Client) error {
			uc, ok := c.(unitClient)
			if !ok {
				return fmt.Errorf("the transport's client (%T) cannot send function %d", c, fcMEI)
			}
			var err error
			data, err = uc.send(fcMEI, []byte{meiDeviceID, code, obj})
			return err
		})
		if err != nil {
			return DeviceID{}, err
		}
		r, err := parseDeviceID(data, code)
		if err != nil {
			return DeviceID{}, err
		}
		id.Conformity = r.conformity
		id.Objects = append(id.Objects, r.objects...)
		if !r.more {
			return id, nil
		}
		if r.next <= obj {
			return DeviceID{}, fmt.Errorf("%w: device identification: more objects follow from %d, after a request from %d", ErrBadFrame, r.next, obj)
		}
		obj = r.next
	}
	return DeviceID{}, fmt.Errorf("%w: device identification: more objects still follow after %d requests", ErrBadFrame, maxIDRequests)
}

// deviceIDReply is one answer to a read device identification request.
type deviceIDReply struct {
	conformity byte
	more       bool // more objects follow, from next
	next       byte
	objects    []DeviceObject
}

// deviceIDHeader is the length of a device identification reply's data
// before its objects: MEI type, read code, conformity level, more follows,
// next object id, number of objects.
const deviceIDHeader = 6

// deviceIDLen returns the length of the data of a device identification
// reply as far as its first len(data) bytes tell: the header, then each
// object's id and length byte, then its value.
func deviceIDLen(data []byte) int {
	if len(data) < deviceIDHeader {
		return deviceIDHeader
	}
	n := deviceIDHeader
	for range int(data[5]) {
		if len(data) < n+2 {
			return n + 2
		}
		n += 2 + int(data[n+1])
		if len(data) < n {
			return n
		}
	}
	return n
}

// parseDeviceID checks and decodes the data of a reply to a read device
// identification request with read code code.
func parseDeviceID(data []byte, code byte) (deviceIDReply, error) {
	bad := func(format string, args ...any) (deviceIDReply, error) {
		return deviceIDReply{}, fmt.Errorf("%w: device identification: %s", ErrBadFrame, fmt.Sprintf(format, args...))
	}
	switch n := deviceIDLen(data); {
	case len(data) < deviceIDHeader:
		return bad("%d bytes", len(data))
	case data[0] != meiDeviceID:
		return bad("MEI type %d", data[0])
	case data[1] != code:
		return bad("read code %d in the reply to %d", data[1], code)
	case data[3] != 0 && data[3] != 0xFF:
		return bad("more follows is %#02x, not 0x00 or 0xff", data[3])
	case n != len(data):
		return bad("%d objects need %d bytes, the reply has %d", data[5], n, len(data))
	}
	r := deviceIDReply{conformity: data[2], more: data[3] == 0xFF, next: data[4]}
	for i := deviceIDHeader; i < len(data); {
		l := int(data[i+1])
		r.objects = append(r.objects, DeviceObject{ID: data[i], Value: string(data[i+2 : i+2+l])})
		i += 2 + l
	}
	return r, nil
}

// ExceptionCode returns the exception code of a Modbus exception, the
// unit's own refusal of a request, as opposed to no or a garbled answer.
func ExceptionCode(err error) (byte, bool) {
	var exc *modbus.ModbusError
	if errors.As(err, &exc) {
		return exc.ExceptionCode, true
	}
	return 0, false
}

// exceptionNames are the exception codes of the Modbus application
// protocol.
var exceptionNames = map[byte]string{
	1: "illegal function", 2: "illegal data address", 3: "illegal data value",
	4: "server device failure", 5: "acknowledge", 6: "server device busy",
	8: "memory parity error", 10: "gateway path unavailable",
	11: "gateway target device failed to respond",
}

// ExceptionText names an exception code: "2 (illegal data address)".
func ExceptionText(code byte) string {
	if n, ok := exceptionNames[code]; ok {
		return fmt.Sprintf("%d (%s)", code, n)
	}
	return fmt.Sprint(code)
}

// GatewayAbsent reports whether an exception is a Modbus TCP gateway's
// answer for a unit it could not reach (codes 10 and 11): the gateway
// answered, the unit did not.
func GatewayAbsent(code byte) bool {
	return code == modbus.ExceptionCodeGatewayPathUnavailable || code == modbus.ExceptionCodeGatewayTargetDeviceFailedToRespond
}

// Unreachable reports whether a request failed because the device or bus
// could not be reached at all (a port that does not open, a connection
// refused), which no other unit of it would fare better with.
func Unreachable(err error) bool {
	var oe *openError
	return errors.As(err, &oe) || errors.Is(err, errNotConnected)
}
