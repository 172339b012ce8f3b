package modbus

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fieldgate/fieldgate/adapters"
	"github.com/fieldgate/fieldgate/adapters/modbus/profiles"
	"github.com/fieldgate/fieldgate/config"
	"github.com/fieldgate/fieldgate/internal/reading"
	"github.com/fieldgate/fieldgate/test/modbussim"
)

// loadConfig loads text, after a gateway table, as the file fieldgate.toml
// and returns its first adapter's config.
func loadConfig(t *testing.T, text string) (*Config, error) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "fieldgate.toml")
	if err := os.WriteFile(path, []byte("[gateway]\nid = \"gw\"\n"+text), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		return nil, err
	}
	return cfg.Adapters[0].Config.(*Config), nil
}

func mustLoadConfig(t *testing.T, text string) *Config {
	t.Helper()
	c, err := loadConfig(t, text)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestProfileAddsPoints: a profile's points come first, a configured point
// of the same name replaces one, the others are added, and the summary
// says where they came from.
func TestProfileAddsPoints(t *testing.T) {
	c := mustLoadConfig(t, `
[[modbus]]
name = "meter"
url = "tcp://127.0.0.1:502"
profile = "eastron-sdm120"
  [[modbus.point]]
  name = "voltage"
  table = "input_register"
  address = 0
  type = "float32"
  unit = "V"
  on_change = true
  [[modbus.point]]
  name = "relay"
  table = "coil"
  address = 7
  writable = true
`)
	file, err := ProfilePoints("eastron-sdm120")
	if err != nil {
		t.Fatal(err)
	}
	info := c.PointInfo()
	if len(info) != len(file)+1 {
		t.Fatalf("%d points, want the profile's %d and relay", len(info), len(file))
	}
	for i, p := range file {
		if info[i].Name != p.Name || info[i].Unit != p.Unit || info[i].Adapter != "meter" {
			t.Errorf("point %d: %+v, want the profile's %s", i, info[i], p.Name)
		}
	}
	if last := info[len(info)-1]; last.Name != "relay" || !last.Writable || last.Type != "bool" {
		t.Errorf("configured point %+v", last)
	}
	if got := c.points()[0]; !got.OnChange {
		t.Errorf("voltage %+v: the configured point does not replace the profile's", got)
	}
	want := fmt.Sprintf("tcp://127.0.0.1:502 unit 1, %d points (%d from profile eastron-sdm120) every 1s", len(file)+1, len(file)-1)
	if got := c.Summary(); got != want {
		t.Errorf("summary %q, want %q", got, want)
	}
	if _, err := New(c, adapters.Env{}); err != nil {
		t.Errorf("New: %v", err)
	}
}

// TestProfileOrSunSpecNeedsNoPoints: no [[modbus.point]] is needed beside a
// profile or SunSpec discovery, but one of the three is.
func TestProfileOrSunSpecNeedsNoPoints(t *testing.T) {
	for _, extra := range []string{`profile = "abb-b23-b24"`, `sunspec = true`} {
		c := mustLoadConfig(t, "[[modbus]]\nname = \"m\"\nurl = \"tcp://127.0.0.1:502\"\n"+extra+"\n")
		if extra == "sunspec = true" && !strings.Contains(c.Summary(), "SunSpec") {
			t.Errorf("summary %q does not mention SunSpec", c.Summary())
		}
	}
	_, err := loadConfig(t, "[[modbus]]\nname = \"m\"\nurl = \"tcp://127.0.0.1:502\"\n")
	if err == nil || !strings.Contains(err.Error(), "no points") {
		t.Errorf("no points, no profile, no sunspec: %v", err)
	}
}

// TestUnknownProfile: the error is at the profile key and names the
// closest profiles.
func TestUnknownProfile(t *testing.T) {
	_, err := loadConfig(t, `
[[modbus]]
name = "meter"
url = "tcp://127.0.0.1:502"
profile = "eastron-sdm360"
`)
	var errs config.Errors
	if !errors.As(err, &errs) || len(errs) != 1 {
		t.Fatalf("error %v, want one config error", err)
	}
	e := errs[0]
	if e.Line != 7 || e.Key != `modbus "meter"` {
		t.Errorf("error at line %d, key %q; want line 7 (profile), modbus \"meter\"", e.Line, e.Key)
	}
	if !strings.Contains(e.Msg, `unknown profile "eastron-sdm360"; did you mean eastron-sdm630, `) {
		t.Errorf("message %q does not suggest eastron-sdm630 first", e.Msg)
	}
}

// TestProfilePointsAreChecked: a profile's points get the defaults and
// checks of configured points (config's Builtin reports their problems at
// the profile key; every built-in profile passes, as the end-to-end test
// shows by loading each).
func TestProfilePointsAreChecked(t *testing.T) {
	c := mustLoadConfig(t, "[[modbus]]\nname = \"m\"\nurl = \"tcp://127.0.0.1:502\"\nprofile = \"abb-b23-b24\"\n")
	if len(c.profile) == 0 {
		t.Fatal("no profile points")
	}
	for _, p := range c.profile {
		if p.Type == "" || p.ByteOrder == "" || p.Scale == nil {
			t.Errorf("profile point %+v: defaults not filled", p)
		}
	}
}

// TestEveryProfileEndToEnd serves each profile's register map from a
// simulator, every point holding a value of its own, encoded with its type,
// byte order and scale, and polls it with an adapter loaded from a config
// naming the profile: every point reads back its value.
func TestEveryProfileEndToEnd(t *testing.T) {
	for _, prof := range profiles.All() {
		t.Run(prof.Name, func(t *testing.T) {
			bank := modbussim.NewBank()
			srv := serve(t, bank, "127.0.0.1:0").Addr
			cfg := mustLoadConfig(t, fmt.Sprintf("[[modbus]]\nname = \"dev\"\nurl = \"tcp://%s\"\nprofile = %q\ninterval = \"1h\"\n", srv, prof.Name))
			want := fillBank(t, bank, cfg.points())
			_, rec := start(t, cfg)
			c := rec.NextCycle(t)
			if c.Err != nil {
				t.Fatalf("status: %v", c.Err)
			}
			if len(c.Readings) != len(want) {
				t.Errorf("%d readings, want %d", len(c.Readings), len(want))
			}
			for name, w := range want {
				got, ok := c.Value(name)
				if !ok || !near(got, w) {
					t.Errorf("%s = %v (%s), want %v (%s)", name, got, got.Kind(), w, w.Kind())
				}
			}
		})
	}
}

// fillBank puts a value of its own into every point's registers, encoded
// by the point's codec, and returns the values by point. Bits of one
// register are merged into it.
func fillBank(t *testing.T, bank *modbussim.Bank, pts []PointConfig) map[string]reading.Value {
	t.Helper()
	want := map[string]reading.Value{}
	regs := map[string]map[int]uint16{}
	for i, pc := range pts {
		if regs[pc.Table] == nil {
			regs[pc.Table] = map[int]uint16{}
		}
		on := i%2 == 0
		switch {
		case pc.Table == Coil || pc.Table == DiscreteInput:
			regs[pc.Table][pc.Address] = bit(on)
			want[pc.Name] = reading.Bool(on)
			continue
		case pc.Bit != nil:
			if on {
				regs[pc.Table][pc.Address] |= 1 << *pc.Bit
			}
			want[pc.Name] = reading.Bool(on)
			continue
		}
		c, err := newCodec(pc)
		if err != nil {
			t.Fatalf("%s: %v", pc.Name, err)
		}
		raw := float64(100 + i)
		var v reading.Value
		switch {
		case pc.Type == "bool":
			v = reading.Bool(on)
		case pc.Type == "string":
			s := fmt.Sprintf("P%d", i)
			v = reading.String(s[:min(len(s), 2*pc.Length)])
		case strings.HasPrefix(pc.Type, "float"):
			v = reading.Float((raw+0.5)**pc.Scale + pc.Offset)
		case c.identity() && strings.HasPrefix(pc.Type, "int"):
			v = reading.Int(int64(raw))
		case c.identity():
			v = reading.Uint(uint64(raw))
		default:
			v = reading.Float(raw**pc.Scale + pc.Offset)
		}
		wire, err := c.encode(v)
		if err != nil {
			t.Fatalf("%s: encoding %v: %v", pc.Name, v, err)
		}
		for j, r := range wireToRegs(wire) {
			regs[pc.Table][pc.Address+j] = r
		}
		want[pc.Name] = v
	}
	for table, m := range regs {
		for addr, r := range m {
			bank.Set(table, uint16(addr), r)
		}
	}
	return want
}

func bit(on bool) uint16 {
	if on {
		return 1
	}
	return 0
}

// near compares values of one kind, numbers to within float rounding.
func near(got, want reading.Value) bool {
	if want.Kind() != reading.KindFloat {
		return got == want
	}
	g, ok := got.Float64()
	w, _ := want.Float64()
	return ok && got.Kind() == reading.KindFloat && math.Abs(g-w) <= 1e-9*max(1, math.Abs(w))
}
