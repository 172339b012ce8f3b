package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/fieldgate/fieldgate/adapters/modbus"
	"github.com/fieldgate/fieldgate/config"
)

// scan is `fieldgate scan URL`: it asks each unit of a range for holding
// register 0 (input register 0 when that is refused) and prints each unit
// that answered, with its device identification and its SunSpec models.
// Every silent unit costs one timeout, so a silent bus takes about units ×
// timeout.
func scan(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("scan", flag.ContinueOnError)
	fs.SetOutput(stderr)
	unitsArg := fs.String("units", "1-247", "unit `ids` to probe: 1-247, 5, 1,3,10-12")
	timeout := fs.Duration("timeout", 300*time.Millisecond, "how long to wait for each answer")
	line := lineFlags(fs)
	pos, err := parseArgs(fs, args)
	if err != nil {
		return exitBadConfig
	}
	if len(pos) != 1 {
		fmt.Fprintln(stderr, "usage: fieldgate scan URL [--units 1-247] [--timeout 300ms] [--baud 9600 --parity N --data-bits 8 --stop-bits 1]")
		return exitBadConfig
	}
	url := pos[0]
	bus, err := modbus.OpenBus(url, *line, *timeout, cliLogger(stderr))
	if err != nil {
		fmt.Fprintf(stderr, "fieldgate scan: %v\n", err)
		return exitBadConfig
	}
	defer bus.Close()
	units, err := parseUnits(*unitsArg, bus.RTU())
	if err != nil {
		fmt.Fprintf(stderr, "fieldgate scan: --units: %v\n", err)
		return exitBadConfig
	}
	where := url
	if strings.HasPrefix(url, "rtu://") {
		where += " (" + lineText(line) + ")"
	}
	fmt.Fprintf(stderr, "scanning %s of %s, waiting %s for each answer: about %s if none answers\n",
		config.Count(len(units), "unit"), where, *timeout, (time.Duration(len(units)) * *timeout).Round(100*time.Millisecond))

	ctx, stop := interruptible()
	defer stop()
	begin := time.Now()
	var found, garbled []byte
	probed := 0
	fmt.Fprintf(stdout, "%4s  %s\n", "UNIT", "ANSWER")
	for _, u := range units {
		if ctx.Err() != nil {
			break
		}
		p, err := probeUnit(ctx, bus, u)
		if err != nil {
			if ctx.Err() == nil {
				fmt.Fprintf(stderr, "fieldgate scan: cannot reach %s: %v\n", url, err)
			}
			break
		}
		probed++
		switch {
		case p.garbled:
			garbled = append(garbled, u)
		case p.present:
			found = append(found, u)
		default:
			continue
		}
		fmt.Fprintf(stdout, "%4d  %s\n", u, p.answer)
		if p.present {
			for _, d := range unitDetails {
				fmt.Fprintf(stdout, "%4s  %s: %s\n", "", d.name, d.probe(ctx, bus, u, *timeout))
			}
		}
	}
	took := time.Since(begin).Round(time.Millisecond)
	if probed < len(units) {
		fmt.Fprintf(stdout, "%d of %s probed in %s: ", probed, config.Count(len(units), "unit"), took)
	} else {
		fmt.Fprintf(stdout, "%s probed in %s: ", config.Count(len(units), "unit"), took)
	}
	if len(found) == 0 {
		fmt.Fprint(stdout, "no unit answered")
	} else {
		fmt.Fprintf(stdout, "%d answered (%s)", len(found), unitList(found))
	}
	if len(garbled) > 0 {
		fmt.Fprintf(stdout, "; garbled answers from %s: another baud rate or parity, or two units on one address?", unitList(garbled))
	}
	fmt.Fprintln(stdout)
	if len(found) == 0 {
		return exitRuntime
	}
	return exitOK
}

// unitDetail is a line scan prints under each unit that answered: what
// probe finds out about it.
type unitDetail struct {
	name  string
	probe func(ctx context.Context, bus *modbus.Bus, unit byte, timeout time.Duration) string
}

// unitDetails are the lines under each unit, in order.
var unitDetails = []unitDetail{{"identification", identification}, {"sunspec", sunspecModels}}

// unitProbe is what one unit answered, if anything.
type unitProbe struct {
	present bool   // the unit answered with data or an exception
	garbled bool   // something answered, but not a well-formed reply
	answer  string // what it answered, for the table
}

// Probes: the first register of each register table.
const (
	probeFirst  = modbus.HoldingRegister
	probeSecond = modbus.InputRegister
)

// probeUnit asks unit for holding register 0 and, when it refuses with an
// exception, for input register 0. An exception is an answer: the unit is
// there, unless it is a gateway's 10 or 11, which say it is not. The error
// is not nil only when the bus cannot be reached at all, or ctx ended.
func probeUnit(ctx context.Context, bus *modbus.Bus, unit byte) (unitProbe, error) {
	first, err := bus.ReadRegisters(ctx, unit, probeFirst, 0, 1)
	if err == nil {
		return unitProbe{present: true, answer: registerText(probeFirst, first)}, nil
	}
	if modbus.Unreachable(err) || ctx.Err() != nil {
		return unitProbe{}, err
	}
	code, ok := modbus.ExceptionCode(err)
	switch {
	case ok && modbus.GatewayAbsent(code):
		return unitProbe{}, nil
	case !ok && garbledReply(err):
		return unitProbe{garbled: true, answer: "garbled: " + err.Error()}, nil
	case !ok:
		return unitProbe{}, nil // silent
	}
	second, err := bus.ReadRegisters(ctx, unit, probeSecond, 0, 1)
	if modbus.Unreachable(err) || ctx.Err() != nil {
		return unitProbe{}, err
	}
	refusal := fmt.Sprintf("%s 0: exception %s", probeFirst, modbus.ExceptionText(code))
	switch code2, ok := modbus.ExceptionCode(err); {
	case err == nil:
		return unitProbe{present: true, answer: registerText(probeSecond, second) + "; " + refusal}, nil
	case ok && code2 == code:
		return unitProbe{present: true, answer: fmt.Sprintf("%s 0 and %s 0: exception %s", probeFirst, probeSecond, modbus.ExceptionText(code))}, nil
	case ok:
		return unitProbe{present: true, answer: fmt.Sprintf("%s; %s 0: exception %s", refusal, probeSecond, modbus.ExceptionText(code2))}, nil
	}
	return unitProbe{present: true, answer: fmt.Sprintf("%s; %s 0: %s", refusal, probeSecond, failureText(err))}, nil
}

// registerText shows the first register read from table.
func registerText(table string, regs []byte) string {
	v := uint16(regs[0])<<8 | uint16(regs[1])
	return fmt.Sprintf("%s 0 = %d (0x%04x)", table, v, v)
}

// garbledReply reports whether err says a reply came but was not a
// well-formed one for the request: on a bus, a sign of wrong line settings
// or of two units sharing an address.
func garbledReply(err error) bool {
	return errors.Is(err, modbus.ErrCRC) || errors.Is(err, modbus.ErrWrongUnit) || errors.Is(err, modbus.ErrBadFrame)
}

// failureText says briefly why a request got no usable answer.
func failureText(err error) string {
	switch code, ok := modbus.ExceptionCode(err); {
	case ok:
		return "exception " + modbus.ExceptionText(code)
	case garbledReply(err):
		return "garbled: " + err.Error()
	}
	return "no answer"
}

// none says why a unit has no identification or no SunSpec models.
func none(err error, timeout time.Duration) string {
	why := failureText(err)
	if why == "no answer" {
		why += " within " + timeout.String()
	}
	return "none (" + why + ")"
}

// identification is the unit's device identification (FC 43/14), or why
// there is none.
func identification(ctx context.Context, bus *modbus.Bus, unit byte, timeout time.Duration) string {
	id, err := bus.Identify(ctx, unit)
	if err != nil {
		return none(err, timeout)
	}
	parts := make([]string, len(id.Objects))
	for i, o := range id.Objects {
		parts[i] = o.Name() + " " + strconv.Quote(o.Value)
	}
	return strings.Join(parts, ", ")
}

// sunspecModels names the SunSpec models in the unit's map and where the
// chain starts, or says why there are none.
func sunspecModels(ctx context.Context, bus *modbus.Bus, unit byte, timeout time.Duration) string {
	ms, err := modbus.DiscoverSunSpec(ctx, holdingReader{ctx, bus, unit})
	switch {
	case errors.Is(err, modbus.ErrNoSunSpec):
		return "none (no SunS marker at holding register 40000, 50000 or 0)"
	case err != nil:
		return none(err, timeout)
	case len(ms) == 0:
		return "a SunS marker, but no model after it"
	}
	parts := make([]string, len(ms))
	for i, m := range ms {
		parts[i] = fmt.Sprintf("%d %s", m.ID, cmp.Or(m.Name, "(not in the definitions)"))
	}
	return fmt.Sprintf("%s (from holding register %d)", strings.Join(parts, ", "), ms[0].Addr-2)
}

// holdingReader reads one unit's holding registers on a bus, for
// modbus.DiscoverSunSpec.
type holdingReader struct {
	ctx  context.Context
	bus  *modbus.Bus
	unit byte
}

func (r holdingReader) ReadHoldingRegisters(addr, n uint16) ([]byte, error) {
	return r.bus.ReadRegisters(r.ctx, r.unit, modbus.HoldingRegister, int(addr), int(n))
}

// parseUnits reads a list of unit ids and ranges ("1-247", "5",
// "1,3,10-12"), each within the ids the transport takes.
func parseUnits(s string, rtu bool) ([]byte, error) {
	lo, hi := 0, 255
	if rtu {
		lo, hi = 1, 247 // 0 is broadcast: no unit answers it
	}
	var units []byte
	seen := map[int]bool{}
	for part := range strings.SplitSeq(s, ",") {
		from, to, isRange := strings.Cut(strings.TrimSpace(part), "-")
		a, err := strconv.Atoi(from)
		b := a
		if err == nil && isRange {
			b, err = strconv.Atoi(to)
		}
		switch {
		case err != nil:
			return nil, fmt.Errorf("%q: want ids and ranges like 1-247 or 1,3,10-12", s)
		case a < lo || b > hi || a > b:
			return nil, fmt.Errorf("%q: unit ids run from %d to %d here", part, lo, hi)
		}
		for u := a; u <= b; u++ {
			if !seen[u] {
				seen[u] = true
				units = append(units, byte(u))
			}
		}
	}
	return units, nil
}

// unitList shows unit ids, ranges folded: 1-3, 7.
func unitList(units []byte) string {
	var parts []string
	for i := 0; i < len(units); {
		j := i
		for j+1 < len(units) && units[j+1] == units[j]+1 {
			j++
		}
		if j > i {
			parts = append(parts, fmt.Sprintf("%d-%d", units[i], units[j]))
		} else {
			parts = append(parts, strconv.Itoa(int(units[i])))
		}
		i = j + 1
	}
	return strings.Join(parts, ", ")
}
