// Package modbus is fieldgate's Modbus adapter: it polls one unit's coils,
// discrete inputs, input registers and holding registers over Modbus TCP or
// RTU, and writes coils and holding registers on command. It registers
// itself as kind "modbus".
//
// # Byte orders
//
// A value's bytes, most significant first, are named A, B, C, D (and on to H
// for 64-bit values). Each register carries two bytes on the wire, high byte
// first. The order names how the device lays the value out, with the same
// convention as Telegraf's modbus input:
//
//	ABCD  big endian: registers and bytes in order             (64-bit: ABCDEFGH)
//	CDAB  word swap: registers in reverse order, bytes in order (GHEFCDAB)
//	BADC  byte swap: registers in order, bytes swapped in each  (BADCFEHG)
//	DCBA  little endian: both reversed                          (HGFEDCBA)
//
// A 16-bit value is one register, so ABCD and CDAB read it as AB, BADC and
// DCBA as BA. A bool with bit = n is bit n (0 the least significant) of the
// register read as a 16-bit value in the point's order. Strings are sequences of 16-bit units:
// registers always in order, two characters each, the first in the high byte
// (ABCD, CDAB) or in the low byte (BADC, DCBA); trailing NULs and spaces are
// dropped when read, and writes pad with NULs.
//
// Integers read with scale 1 and offset 0 keep their exact kind (int or
// uint, so uint64 survives); otherwise value = raw*scale + offset as a float.
// Writes invert that and round to the nearest integer, refusing values whose
// raw form does not fit the type; floats are written unrounded. A write is
// one request (FC5 for a coil, FC6 for one register, FC16 for more) followed
// by a read-back. A bool taken from one bit of a holding register is not
// writable (see Adapter.Write).
//
// # Coalescing
//
// Each poll reads the points due with as few requests as it can: the points
// of a table are taken in address order and merged into one request while
// the hole before the next point is at most max_gap addresses and the
// request stays within 125 registers (2000 bits for coils and discrete
// inputs). Points that overlap, such as two bits of one register, share the
// read. A failed request does not drop the others' readings; the adapter's
// status carries the error.
//
// # Scheduling
//
// Each point polls at its own interval, the adapter's unless the point sets
// one. Every point's ticks lie on one grid counted from the start of Run
// (start + k × interval), so points whose intervals divide each other fall
// due together: a 200 ms point and a 1 s point are both due at every whole
// second. A cycle starts at the earliest tick, reads every point due by
// then, coalesced as above (a slow point due beside a fast one shares its
// request), emits their readings, each with the time its answer arrived,
// and reports the status; then each point read moves to its next tick after
// the cycle's end. A cycle that overran a point's interval skips the ticks
// it missed rather than catching up in a burst, and logs it (a warning at
// most once a minute). A SunSpec point is read with its scale factor.
//
// # Profiles
//
// profile = "NAME" adds the points of a built-in register map (package
// profiles, `fieldgate profiles`). They are decoded in the [[modbus.point]]
// schema and pass the checks and defaults of configured points when the
// config loads; a configured point of the same name replaces a profile's,
// the others are added after the profile's.
//
// # SunSpec
//
// With sunspec = true the adapter discovers the device's SunSpec models
// (DiscoverSunSpec): the "SunS" marker at holding register 40000, 50000 or
// 0, then the chain of models to the end marker. It reads each model the
// SunSpec definitions know (package sunspec) and lays out its points:
// named <model>_<point> after the definitions (inverter_three_phase_W), a
// repeating group adding its instance's index from 1 (mppt_module_1_DCA,
// DERVoltVar_Crv_1_Pt_2_V), a model that occurs twice in the chain its
// occurrence's from 2 (lithium_ion_string_2_SoC). Units and writability
// (access RW) are the definitions'; a few unit spellings become the usual
// ones (C is °C, Pct and percentages of a rating are %). The header (ID,
// L), padding and scale factors are not published: a point with a scale
// factor is published as raw × 10^sf with the scale factor read in the same
// cycle (an integer when that is 0), and writes to it are divided by the
// scale factor as last polled. A point whose registers, or whose scale
// factor's, hold SunSpec's "not implemented" value (0x8000 for int16,
// 0xFFFF for uint16, 0 for accumulators, NaN, a string of NULs, …) at
// discovery is left out; one that reads so later is skipped that cycle.
// The points found are announced through the Emitter (Describe) before
// their first readings, and polled with the configured points at the
// adapter's interval; a configured point keeps its name against a SunSpec
// one. Discovery runs at the first cycle and again after each reconnection
// of the link; one that fails (no marker: the error says what each address
// held) marks the status error and is retried with the reconnection
// back-off, while the configured points are polled.
//
// # Connection
//
// The url names the transport: tcp://host:port is Modbus TCP;
// rtu:///dev/ttyUSB0 is Modbus RTU on a serial port, opened through
// adapters/internal/serialport with the block's baud_rate, data_bits,
// parity and stop_bits (a /dev/serial/by-id/… path keeps naming the same
// USB adapter across replugs); rtu+tcp://host:port is RTU frames over a TCP
// socket, for Ethernet–RS-485 converters in transparent mode.
//
// One goroutine owns each connection and executes requests one at a time,
// so a write waits for at most the request in flight. After a fault of the
// connection it is closed and reopened: a TCP socket at once the first time
// and then with back-off growing from 1 s to 30 s; a Modbus TCP request
// whose answer came late, or whose connection the device closed, is tried
// once more on the new connection, so one slow answer costs a retry, not
// the poll's block, and the late answer goes with the old connection
// instead of being read as the next one's; a serial port with
// serialport.Keeper's back-off, so an unplugged USB adapter marks the
// status error and is reopened at the same path once it is back.
//
// # RTU
//
// Requests are framed by goburrow/modbus's RTU packager; the transport
// keeps the 3.5-character silence between frames (1.75 ms above 19200
// baud), reads each reply by the length its function code and byte count
// announce (an exception is five bytes) until it is complete or the
// adapter's timeout has passed, and checks its CRC, then its unit. A reply
// with a bad CRC (ErrCRC), from another unit (ErrWrongUnit), cut short or
// not fitting the request (ErrBadFrame) is an error, never a reading; the
// line is then drained until it falls quiet, and before each request a
// serial port's unread input is dropped, so a late or broken answer is not
// taken for the next one. A unit that does not answer (ErrNoResponse) ends
// its poll cycle at once: its other requests would cost the bus a timeout
// each. None of these closes the port; only errors of the port itself
// (EOF, EIO: the adapter was unplugged) do. Unit 0, the broadcast address,
// is refused: it never answers.
//
// # Shared buses
//
// Every [[modbus]] block on the same serial device, or the same rtu+tcp
// address, attaches to one bus while its adapter runs: a process-wide
// registry counts the attached adapters, the first starts the bus's owner
// goroutine and the last stops it and closes the port. The owner serves
// the adapters round-robin, one request each in turn, writes (and their
// read-backs) before polls; so units 1, 2 and 3 on one RS-485 line never
// collide, a unit polled flat out gets no more of the bus than the others,
// a command waits for at most the request in flight (and other commands),
// and a dead unit costs the bus its own timeout per cycle and nothing
// more. Each adapter's timeout bounds its own requests. The blocks of a
// serial bus must agree on the line settings; the config loader checks
// that, and Run refuses an adapter whose bus is open with others (as during
// a reload that changes them, until the old adapters have stopped). Over
// rtu+tcp the converter owns the serial line, and the first adapter's
// settings only set the gap.
//
// After a write, the read-back is what the caller publishes, and it counts
// as the point's last published value for on_change: the next poll does
// not publish the same value again.
//
// # Commissioning
//
// Bus serves `fieldgate scan` and `fieldgate read`: one-off reads and
// device identification (FC 43/14), through the same transports and, on a
// shared bus, the same owner as the adapters. goburrow/modbus has no
// method for FC 43, so its request goes out as a raw PDU through the
// transport's own packager and transporter (unitClient); over RTU the
// reply's length is read object by object as it arrives. Interpret shows
// registers as every type in every byte order.
package modbus
