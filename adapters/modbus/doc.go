// Package modbus is fieldgate's Modbus adapter: it polls one unit's coils,
// discrete inputs, input registers and holding registers, and writes coils
// and holding registers on command. It registers itself as kind "modbus".
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
// Each poll reads every point with as few requests as it can: the points of
// a table are taken in address order and merged into one request while the
// hole before the next point is at most max_gap addresses and the request
// stays within 125 registers (2000 bits for coils and discrete inputs).
// Points that overlap, such as two bits of one register, share the read.
// A failed request does not drop the others' readings; the adapter's status
// carries the error.
//
// # Connection
//
// One goroutine owns the connection and executes polls and writes one at a
// time, so a write waits for at most the request in flight. After any fault
// except a Modbus exception the connection is closed and reopened, at once
// the first time and then with back-off growing from 1 s to 30 s.
package modbus
