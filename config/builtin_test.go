package config_test

import (
	"strings"
	"testing"

	"github.com/fieldgate/fieldgate/config"
	"github.com/fieldgate/fieldgate/internal/reading"
)

// builtinConfig is a test kind whose tables check a built-in table, as a
// Modbus adapter checks its profile's points.
type builtinConfig struct {
	Name    string `toml:"name"`
	Profile string `toml:"profile"`
}

func (c *builtinConfig) AdapterName() string        { return c.Name }
func (c *builtinConfig) PointInfo() []reading.Point { return nil }
func (c *builtinConfig) Summary() string            { return "" }

func (c *builtinConfig) Check(ck *config.Check) {
	b := ck.Builtin("profile", `"x" point "bad"`, func(k string) bool { return k == "type" || k == "length" })
	typ := "flaot32"
	b.Choice(&typ, "type", "uint16", "uint16", "float32")
	b.Errorf("length", "has length %t, has bit %t", b.Has("length"), b.Has("bit"))
	b.Errorf("length", "reported once per key")
}

func init() {
	config.RegisterKind("builtin_probe", func() config.AdapterConfig { return &builtinConfig{} })
}

// TestBuiltinTablesReportAtTheirKey: problems of a built-in table are
// reported at the key that brought it in, labelled with what it is, once
// per key; Has answers from the keys the table sets.
func TestBuiltinTablesReportAtTheirKey(t *testing.T) {
	_, err := load(t, t.TempDir(), "[gateway]\nid = \"gw\"\n[[builtin_probe]]\nname = \"p\"\nprofile = \"x\"\n")
	got := strings.Join(errLines(t, err), "\n")
	want := strings.Join([]string{
		`fieldgate.toml:5:1: builtin_probe "p" profile "x" point "bad": unknown type "flaot32"`,
		`fieldgate.toml:5:1: builtin_probe "p" profile "x" point "bad": has length true, has bit false`,
	}, "\n")
	if got != want {
		t.Errorf("errors\n%s\nwant\n%s", got, want)
	}
}
