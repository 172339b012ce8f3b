package profiles

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
)

// file is a profile decoded strictly: every key a profile may hold, and no
// more, so that Undecoded reports a typo or a key the config would refuse.
type file struct {
	Name   string  `toml:"name"`
	Maker  string  `toml:"maker"`
	Model  string  `toml:"model"`
	Kind   string  `toml:"kind"`
	Source string  `toml:"source"`
	Notes  string  `toml:"notes"`
	Point  []point `toml:"point"`
}

type point struct {
	Name      string   `toml:"name"`
	Table     string   `toml:"table"`
	Address   *int     `toml:"address"`
	Type      string   `toml:"type"`
	ByteOrder string   `toml:"byte_order"`
	Scale     *float64 `toml:"scale"`
	Offset    float64  `toml:"offset"`
	Unit      string   `toml:"unit"`
	Writable  bool     `toml:"writable"`
	Length    int      `toml:"length"`
	Bit       *int     `toml:"bit"`
}

var (
	profileName = regexp.MustCompile(`^[a-z0-9]+(-[a-z0-9]+)*$`)
	pointName   = regexp.MustCompile(`^[a-z0-9_]+$`)
	kinds       = []string{"meter", "inverter", "battery", "drive", "charger", "other"}
	byteOrders  = []string{"ABCD", "CDAB", "BADC", "DCBA"}
	// widths is each type's size in registers; string takes its length.
	widths = map[string]int{
		"bool": 1, "int16": 1, "uint16": 1, "int32": 2, "uint32": 2, "float32": 2,
		"int64": 4, "uint64": 4, "float64": 4, "string": 0,
	}
	// units are those named in the package comment: the convention
	// Home Assistant understands, so a typo ("Kwh") fails here.
	units = []string{"V", "A", "W", "kW", "kWh", "Wh", "Hz", "VA", "var", "kvarh", "kVAh",
		"%", "°C", "°", "rpm", "Nm", "s", "ms", "h"}
)

// decode parses a profile strictly.
func decode(t *testing.T, p Profile) file {
	t.Helper()
	var f file
	md, err := toml.Decode(string(p.TOML), &f)
	if err != nil {
		t.Fatalf("%s.toml: %v", p.Name, err)
	}
	if u := md.Undecoded(); len(u) > 0 {
		t.Errorf("%s.toml: unknown keys %v", p.Name, u)
	}
	return f
}

func TestEveryProfileIsValid(t *testing.T) {
	for _, p := range All() {
		t.Run(p.Name, func(t *testing.T) {
			f := decode(t, p)
			for _, err := range checkFile(p.Name, f) {
				t.Errorf("%s.toml: %v", p.Name, err)
			}
			if p.Points != len(f.Point) || p.Maker != f.Maker || p.Kind != f.Kind || p.Source != f.Source {
				t.Errorf("%s.toml: metadata read as %+v, decoded strictly as %d points, maker %q, kind %q",
					p.Name, p, len(f.Point), f.Maker, f.Kind)
			}
		})
	}
}

// checkFile returns every defect of one profile: metadata, then each point
// alone, then the points together.
func checkFile(fileName string, f file) []error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if f.Name != fileName {
		bad("name %q differs from the file name %q", f.Name, fileName)
	}
	if !profileName.MatchString(f.Name) {
		bad("name %q is not lower-case words joined by hyphens", f.Name)
	}
	for k, v := range map[string]string{"maker": f.Maker, "model": f.Model, "source": f.Source} {
		if strings.TrimSpace(v) == "" {
			bad("%s is empty", k)
		}
	}
	if !slices.Contains(kinds, f.Kind) {
		bad("kind %q is not one of %v", f.Kind, kinds)
	}
	if len(f.Point) == 0 {
		bad("no points")
	}
	seen := map[string]bool{}
	for _, pt := range f.Point {
		if seen[pt.Name] {
			bad("point %q: defined twice", pt.Name)
		}
		seen[pt.Name] = true
		for _, err := range checkPoint(pt) {
			bad("point %q: %v", pt.Name, err)
		}
	}
	for _, err := range overlaps(f.Point) {
		bad("%v", err)
	}
	return errs
}

// width returns how many registers (or bits) a point occupies, defaulting
// its type as the config does.
func width(pt point) int {
	switch {
	case pt.Table == "coil" || pt.Table == "discrete_input":
		return 1
	case pt.Type == "string":
		return pt.Length
	case pt.Type == "":
		return 1
	}
	return widths[pt.Type]
}

func checkPoint(pt point) []error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	switch {
	case !pointName.MatchString(pt.Name):
		bad("name is not [a-z0-9_]+")
	case pt.Name == "status":
		bad("name is reserved for the adapter's status topic")
	}
	bitTable := pt.Table == "coil" || pt.Table == "discrete_input"
	switch {
	case bitTable:
		if pt.Type != "" && pt.Type != "bool" {
			bad("type %q in a bit table", pt.Type)
		}
	case pt.Table == "input_register" || pt.Table == "holding_register":
		if _, ok := widths[pt.Type]; pt.Type != "" && !ok {
			bad("unknown type %q", pt.Type)
		}
	default:
		bad("unknown table %q", pt.Table)
	}
	if pt.ByteOrder != "" && !slices.Contains(byteOrders, pt.ByteOrder) {
		bad("unknown byte_order %q", pt.ByteOrder)
	}
	if pt.Address == nil {
		bad("no address")
	} else if *pt.Address < 0 || *pt.Address+max(width(pt), 1)-1 > 65535 {
		bad("address %d (width %d) outside 0..65535", *pt.Address, width(pt))
	}
	if pt.Type == "string" && (pt.Length < 1 || pt.Length > 123) {
		bad("string length %d outside 1..123", pt.Length)
	}
	if pt.Type != "string" && pt.Length != 0 {
		bad("length on a %q", pt.Type)
	}
	if pt.Bit != nil && (bitTable || pt.Type != "bool" || *pt.Bit < 0 || *pt.Bit > 15) {
		bad("bit %d needs a bool in a register table and 0..15", *pt.Bit)
	}
	if pt.Scale != nil && *pt.Scale == 0 {
		bad("scale 0")
	}
	if (pt.Type == "string" || pt.Type == "bool" || bitTable) && (pt.Scale != nil || pt.Offset != 0) {
		bad("scale or offset on a bool or string")
	}
	if pt.Unit != "" && !slices.Contains(units, pt.Unit) {
		bad("unit %q is not one of %v", pt.Unit, units)
	}
	if pt.Writable && pt.Table != "coil" && pt.Table != "holding_register" {
		bad("writable in table %q", pt.Table)
	}
	return errs
}

// overlaps reports points of one table whose registers intersect. Points
// taking single bits may share a register with each other, not a bit.
func overlaps(pts []point) []error {
	type owner struct {
		name string
		bit  int // -1: the whole register
	}
	var errs []error
	used := map[string]map[int][]owner{}
	for _, pt := range pts {
		if pt.Address == nil {
			continue
		}
		if used[pt.Table] == nil {
			used[pt.Table] = map[int][]owner{}
		}
		me := owner{pt.Name, -1}
		if pt.Bit != nil {
			me.bit = *pt.Bit
		}
		for a := *pt.Address; a < *pt.Address+width(pt); a++ {
			for _, o := range used[pt.Table][a] {
				if o.bit < 0 || me.bit < 0 || o.bit == me.bit {
					errs = append(errs, fmt.Errorf("points %q and %q overlap at %s %d", o.name, pt.Name, pt.Table, a))
				}
			}
			used[pt.Table][a] = append(used[pt.Table][a], me)
		}
	}
	return errs
}

// TestCheckFileRefusesDefects proves each check fires: one good profile,
// then one defect at a time.
func TestCheckFileRefusesDefects(t *testing.T) {
	const good = `
name = "x"
maker = "M"
model = "X"
kind = "meter"
source = "X Modbus map V1"
[[point]]
name = "energy_import"
table = "input_register"
address = 0
type = "uint64"
unit = "kWh"
[[point]]
name = "alarm_a"
table = "holding_register"
address = 4
type = "bool"
bit = 0
[[point]]
name = "alarm_b"
table = "holding_register"
address = 4
type = "bool"
bit = 1
[[point]]
name = "label"
table = "holding_register"
address = 5
type = "string"
length = 2
`
	if errs := checkText(t, good); len(errs) > 0 {
		t.Fatalf("good profile refused: %v", errs)
	}
	for _, c := range []struct{ name, from, to, want string }{
		{"file name", `name = "x"`, `name = "y"`, "differs from the file name"},
		{"kind", `"meter"`, `"toaster"`, "kind"},
		{"maker", `maker = "M"`, `maker = " "`, "maker is empty"},
		{"point name", `"alarm_b"`, `"Alarm-B"`, "not [a-z0-9_]+"},
		{"twice", `"alarm_b"`, `"alarm_a"`, "defined twice"},
		{"reserved", `"alarm_b"`, `"status"`, "reserved"},
		{"table", `"input_register"`, `"inputs"`, "unknown table"},
		{"type", `"uint64"`, `"flaot32"`, "unknown type"},
		{"byte order", `type = "uint64"`, `type = "uint64"` + "\nbyte_order = \"ABDC\"", "byte_order"},
		{"overlap", "address = 4\ntype = \"bool\"\nbit = 0", "address = 3\ntype = \"uint32\"", "overlap"},
		{"same bit", "bit = 1", "bit = 0", "overlap"},
		{"bit and register", "address = 5", "address = 4", "overlap"},
		{"address", "address = 0", "address = 65533", "outside 0..65535"},
		{"writable", `unit = "kWh"`, `unit = "kWh"` + "\nwritable = true", "writable"},
		{"unit", `"kWh"`, `"Kwh"`, "unit"},
		{"string length", "length = 2", "length = 0", "string length"},
		{"bit on int", "type = \"bool\"\nbit = 1", "type = \"uint16\"\nbit = 1", "needs a bool"},
		{"scale 0", `unit = "kWh"`, `unit = "kWh"` + "\nscale = 0.0", "scale 0"},
	} {
		text := strings.Replace(good, c.from, c.to, 1)
		if text == good {
			t.Fatalf("%s: %q not in the good profile", c.name, c.from)
		}
		if errs := checkText(t, text); !strings.Contains(fmt.Sprint(errs), c.want) {
			t.Errorf("%s: errors %v, want one saying %q", c.name, errs, c.want)
		}
	}
}

// checkText decodes a profile's text, failing the test on a syntax error,
// and returns its defects.
func checkText(t *testing.T, text string) []error {
	t.Helper()
	var f file
	if _, err := toml.Decode(text, &f); err != nil {
		t.Fatalf("%v in\n%s", err, text)
	}
	return checkFile("x", f)
}

// TestLibraryBreadth holds the library to covering the field: many devices,
// many makers, every common kind of equipment.
func TestLibraryBreadth(t *testing.T) {
	makers, byKind := map[string]bool{}, map[string]int{}
	all := All()
	for _, p := range all {
		makers[p.Maker] = true
		byKind[p.Kind]++
	}
	if len(all) < 28 || len(makers) < 12 || len(byKind) < 4 {
		t.Errorf("%d profiles from %d makers of %d kinds (%v); want at least 28, 12 and 4",
			len(all), len(makers), len(byKind), byKind)
	}
}

func TestAllIsSortedAndLookupFindsEach(t *testing.T) {
	all := All()
	if !slices.IsSortedFunc(all, func(a, b Profile) int { return strings.Compare(a.Name, b.Name) }) {
		t.Error("All is not sorted by name")
	}
	for _, p := range all {
		got, ok := Lookup(p.Name)
		if !ok || got.Name != p.Name || string(got.TOML) != string(p.TOML) {
			t.Errorf("Lookup(%q) = %q, %v", p.Name, got.Name, ok)
		}
	}
	if _, ok := Lookup("no-such-device"); ok {
		t.Error(`Lookup("no-such-device") found a profile`)
	}
}

func TestClosestSuggestsNearNames(t *testing.T) {
	for _, c := range []struct {
		typo, want string
	}{
		{"eastron-sdm63", "eastron-sdm630"},
		{"sdm630", "eastron-sdm630"},
		{"EASTRON-SDM120", "eastron-sdm120"},
		{"eastron-sdm360", "eastron-sdm630"}, // digits swapped
	} {
		got := Closest(c.typo, 3)
		if len(got) != 3 || got[0] != c.want {
			t.Errorf("Closest(%q, 3) = %v, want %q first", c.typo, got, c.want)
		}
	}
	if got := Closest("x", 0); len(got) != 0 {
		t.Errorf("Closest(x, 0) = %v", got)
	}
	if got := Closest("x", 1000); len(got) != len(All()) {
		t.Errorf("Closest(x, 1000) gave %d names, want all %d", len(got), len(All()))
	}
}

func TestDistance(t *testing.T) {
	for _, c := range []struct {
		a, b string
		want int
	}{
		{"", "", 0}, {"abc", "", 3}, {"", "abc", 3}, {"kitten", "sitting", 3}, {"sdm630", "sdm360", 1}, {"ca", "abc", 3}, {"abcd", "badc", 2},
	} {
		if got := distance(c.a, c.b); got != c.want {
			t.Errorf("distance(%q, %q) = %d, want %d", c.a, c.b, got, c.want)
		}
	}
}
