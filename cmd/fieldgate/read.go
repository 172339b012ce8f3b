package main

import (
	"flag"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/fieldgate/fieldgate/adapters/modbus"
	"github.com/fieldgate/fieldgate/config"
	"github.com/fieldgate/fieldgate/internal/reading"
)

// read is `fieldgate read`: with a Modbus url it reads an address range
// once and shows every way to decode it; with ADAPTER[/POINT] it reads
// configured points once through their adapter.
func read(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("read", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("c", defaultConfig, "configuration `file` (ADAPTER[/POINT] form)")
	wait := fs.Duration("wait", 10*time.Second, "how long to wait for the points' readings (ADAPTER[/POINT] form)")
	unit := fs.Int("unit", 1, "unit id (url form)")
	tableName := fs.String("table", modbus.HoldingRegister, "coil, discrete_input, input_register or holding_register (url form)")
	addr := fs.Int("address", -1, "first 0-based `address` (url form)")
	count := fs.Int("count", 1, "how many addresses (url form)")
	timeout := fs.Duration("timeout", time.Second, "how long to wait for the answer (url form)")
	line := lineFlags(fs)
	pos, err := parseArgs(fs, args)
	if err != nil {
		return exitBadConfig
	}
	if len(pos) != 1 {
		fmt.Fprint(stderr, `usage: fieldgate read URL --unit N --table T --address A [--count C] [--timeout 1s] [--baud 9600 --parity N --data-bits 8 --stop-bits 1]
       fieldgate read [-c FILE] [--wait 10s] ADAPTER[/POINT]
`)
		return exitBadConfig
	}
	if strings.Contains(pos[0], "://") {
		if *addr < 0 {
			fmt.Fprintln(stderr, "fieldgate read: --address is required with a url")
			return exitBadConfig
		}
		return readAddresses(pos[0], *line, *timeout, *unit, *tableName, *addr, *count, stdout, stderr)
	}
	return readPoints(*path, pos[0], *wait, stdout, stderr)
}

// readAddresses reads count addresses of table from addr once and prints
// each: a bit as such, a register as every type that fits from it, in
// every byte order.
func readAddresses(url string, line config.Line, timeout time.Duration, unit int, tableName string, addr, count int, stdout, stderr io.Writer) int {
	bus, err := modbus.OpenBus(url, line, timeout, cliLogger(stderr))
	if err != nil {
		fmt.Fprintf(stderr, "fieldgate read: %v\n", err)
		return exitBadConfig
	}
	defer bus.Close()
	if lo, hi := unitRange(bus); unit < lo || unit > hi {
		fmt.Fprintf(stderr, "fieldgate read: --unit %d: unit ids run from %d to %d here\n", unit, lo, hi)
		return exitBadConfig
	}
	ctx, stop := interruptible()
	defer stop()
	fmt.Fprintf(stdout, "unit %d, %s %d-%d, at %s\n", unit, tableName, addr, addr+count-1, url)
	if tableName == modbus.Coil || tableName == modbus.DiscreteInput {
		bits, err := bus.ReadBits(ctx, byte(unit), tableName, addr, count)
		if err != nil {
			fmt.Fprintf(stderr, "fieldgate read: %v\n", err)
			return exitRuntime
		}
		for i, b := range bits {
			fmt.Fprintf(stdout, "address %d%s  %t\n", addr+i, modicon(tableName, addr+i), b)
		}
		return exitOK
	}
	regs, err := bus.ReadRegisters(ctx, byte(unit), tableName, addr, count)
	if err != nil {
		fmt.Fprintf(stderr, "fieldgate read: %v\n", err)
		return exitRuntime
	}
	for i := range count {
		printInterpretations(stdout, tableName, addr+i, regs[2*i:])
	}
	return exitOK
}

// unitRange is the unit ids the bus takes.
func unitRange(bus *modbus.Bus) (lo, hi int) {
	if bus.RTU() {
		return 1, 247
	}
	return 0, 255
}

// shownRegisters is how many registers from an address read shows raw and
// decodes as a string: enough for every 64-bit type and a short name.
const shownRegisters = 8

// printInterpretations prints the registers from address addr (regs, two
// bytes each, to the end of the read) as a table: a row per type, a column
// per byte order.
func printInterpretations(w io.Writer, tableName string, addr int, regs []byte) {
	regs = regs[:min(len(regs), 2*shownRegisters)]
	raw := make([]string, len(regs)/2)
	for i := range raw {
		raw[i] = fmt.Sprintf("%02x%02x", regs[2*i], regs[2*i+1])
	}
	fmt.Fprintf(w, "\naddress %d%s  raw %s\n", addr, modicon(tableName, addr), strings.Join(raw, " "))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	ins := modbus.Interpret(regs)
	var orders []string
	for _, in := range ins {
		if !slices.Contains(orders, in.ByteOrder) {
			orders = append(orders, in.ByteOrder)
		}
	}
	fmt.Fprintf(tw, "  \t%s\n", strings.Join(orders, "\t"))
	for i := 0; i < len(ins); i += len(orders) {
		cells := make([]string, len(orders))
		for j, in := range ins[i : i+len(orders)] {
			cells[j] = valueText(in.Value)
		}
		fmt.Fprintf(tw, "  %s\t%s\n", ins[i].Type, strings.Join(cells, "\t"))
	}
	tw.Flush()
}

// valueText shows a value as text, strings quoted as Go quotes them, so
// that NULs and stray bytes show (\x00).
func valueText(v reading.Value) string {
	if v.Kind() == reading.KindString {
		return strconv.Quote(v.Str())
	}
	return v.String()
}

// modicon is an address in the 1-based five-digit numbering of many
// register maps (holding register 0 is 40001), where it has one.
func modicon(tableName string, addr int) string {
	prefix := map[string]int{modbus.Coil: 0, modbus.DiscreteInput: 1, modbus.InputRegister: 3, modbus.HoldingRegister: 4}[tableName]
	if addr+1 > 9999 {
		return ""
	}
	return fmt.Sprintf(" (%d%04d)", prefix, addr+1)
}

// readPoints reads the points of a configured adapter once, through the
// adapter itself, and prints their readings: within wait, or what came
// and why not.
func readPoints(path, target string, wait time.Duration, stdout, stderr io.Writer) int {
	adapterName, point, err := splitTarget(target, true)
	if err != nil {
		fmt.Fprintf(stderr, "fieldgate read: %v\n", err)
		return exitBadConfig
	}
	cfg, err := config.Load(path)
	if err != nil {
		printConfigError(stderr, err)
		return exitBadConfig
	}
	spec, err := findAdapter(cfg, adapterName)
	if err != nil {
		fmt.Fprintf(stderr, "fieldgate read: %s: %v\n", path, err)
		return exitBadConfig
	}
	// A SunSpec device's points are known once the adapter has found them.
	discovers := false
	if mc, ok := spec.Config.(*modbus.Config); ok {
		discovers = mc.SunSpec
	}
	var names []string
	if !discovers {
		if names, err = pointNames(spec.Name, spec.Config.PointInfo(), point); err != nil {
			fmt.Fprintf(stderr, "fieldgate read: %s: %v\n", path, err)
			return exitBadConfig
		}
	}
	o, err := startOneShot(spec, cliLogger(stderr))
	if err != nil {
		fmt.Fprintf(stderr, "fieldgate read: %v\n", err)
		return exitRuntime
	}
	var fault error
	complete := o.await(wait, func(rs map[string]reading.Reading, status error, _ bool) bool {
		fault = status
		if status != nil {
			return true
		}
		if discovers && names == nil {
			if o.described == nil { // await holds o.mu
				return false
			}
			if names, fault = pointNames(spec.Name, append(spec.Config.PointInfo(), o.described...), point); fault != nil {
				return true
			}
		}
		return names != nil && !slices.ContainsFunc(names, func(n string) bool { _, ok := rs[n]; return !ok })
	})
	o.stop()
	o.mu.Lock()
	rs := maps.Clone(o.readings) // an adapter slow to stop may still emit
	described := o.described
	o.mu.Unlock()

	units := map[string]string{}
	for _, p := range append(spec.Config.PointInfo(), described...) {
		units[p.Name] = p.Unit
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	if slices.ContainsFunc(names, func(n string) bool { _, ok := rs[n]; return ok }) {
		fmt.Fprintln(tw, "POINT\tVALUE\tUNIT\tREAD AT")
	}
	var missing []string
	for _, n := range names {
		r, ok := rs[n]
		if !ok {
			missing = append(missing, n)
			continue
		}
		fmt.Fprintf(tw, "%s/%s\t%s\t%s\t%s\n", spec.Name, n, valueText(r.Value), units[n], r.Time.UTC().Format("2006-01-02T15:04:05.000Z"))
	}
	tw.Flush()
	switch {
	case fault != nil:
		fmt.Fprintf(stderr, "fieldgate read: %v\n", fault)
		return exitRuntime
	case !complete:
		fmt.Fprintf(stderr, "fieldgate read: no reading of %s within %s\n", strings.Join(missing, ", "), wait)
		return exitRuntime
	}
	return exitOK
}
