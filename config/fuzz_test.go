package config_test

import (
	"errors"
	"io/fs"
	"os"
	"strings"
	"testing"

	_ "github.com/fieldgate/fieldgate/adapters/all"
	"github.com/fieldgate/fieldgate/adapters/modbus"
	"github.com/fieldgate/fieldgate/config"
)

// FuzzLoad feeds the loader arbitrary files: it must never panic, a file it
// accepts must come back complete, and a file it refuses must be described
// by positioned Errors.
func FuzzLoad(f *testing.F) {
	full, err := os.ReadFile("../examples/full.toml")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(full)
	for _, cut := range []int{1, 100, 700, 1500, 3000, len(full) - 10} {
		f.Add(full[:min(cut, len(full))])
	}
	for _, broken := range [][2]string{
		{`type = "float32"`, `type = "flaot32"`},
		{`"${CLOUD_PASSWORD}"`, `"${UNSET}"`},
		{`"30s"`, `30`},
		{`"256MiB"`, `"256 potatoes"`},
		{`name = "meter"`, `name = "boiler"`},
		{`name = "pump"`, `name = "status"`},
		{`[[serial.point]]`, `[[serial.point]`},
		{`pattern = 'W:\s*([-0-9.]+)'`, `pattern = "("`},
		{`url = "tcp://192.168.1.10:502"`, `url = "tcp://x"` + "\nbogus = 1"},
	} {
		f.Add([]byte(strings.Replace(string(full), broken[0], broken[1], 1)))
	}
	f.Add([]byte("[gateway]\nid = \"gw\"\n[[modbus]]\nname = \"m\"\nurl = \"rtu:///dev/x\"\npoint = [{ name = \"p\", table = \"coil\", bit = 99, \"x\\u0000y\" = 1 }]\n"))
	f.Add([]byte("a.b.c = 1\n[a]\n[[x.y]]\n[x]\n"))
	f.Add([]byte(`x="\`))
	// Shapes near and past the limits on nesting, keys and strings, with
	// brackets and quotes inside strings and comments.
	for _, s := range []string{
		"x = " + strings.Repeat("[", 8) + "1" + strings.Repeat("]", 8),
		"x = " + strings.Repeat("[", 9) + "1" + strings.Repeat("]", 9),
		"x = " + strings.Repeat("{a=", 8) + "1" + strings.Repeat("}", 8),
		"x = [{a=[{b=[{c=[{d=1}]}]}]}]",
		strings.Repeat("a.", 7) + "b = 1",
		"[" + strings.Repeat("a.", 8) + "b]",
		"['a.b'.\"c]\".d]\ne = 1",
		strings.Repeat("k", 257) + " = 1",
		"x = '" + strings.Repeat("s", 70000) + "'",
		"x = \"\"\"a\"\"\"\", [[[[[[[[[1]]]]]]]]]",
		"x = [\"[[[[[[[[[\", '{{{{{{{{{', \"\"\"\n]]]]\"\"\"] # [[[[[[[[[",
		"x = \"a\\\n[[[[[[[[[[\"",
		"password = hunter2secret",
		"[[upstream]]\nname = \"a\"\nurl = mqtt://u:secret@b:1883",
	} {
		f.Add([]byte("[gateway]\nid = \"gw\"\n" + s + "\n"))
	}

	noFiles := func(string) ([]byte, error) { return nil, fs.ErrNotExist }
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := config.Parse("f.toml", data, env, noFiles)
		if err != nil {
			var es config.Errors
			if !errors.As(err, &es) || len(es) == 0 {
				t.Fatalf("error %v is not a non-empty Errors", err)
			}
			for _, e := range es {
				if e.File != "f.toml" || e.Line < 0 || e.Col < 0 || (e.Line == 0 && e.Col != 0) || e.Msg == "" {
					t.Fatalf("badly placed error %#v", e)
				}
			}
			return
		}
		for _, u := range c.Upstream {
			if u.QoS == nil || u.Commands == nil || len(u.URLs) == 0 || u.ClientID == "" {
				t.Fatalf("upstream %q not completed: %+v", u.Name, u)
			}
		}
		for _, a := range c.Adapters {
			m, ok := a.Config.(*modbus.Config)
			if !ok {
				continue
			}
			for _, p := range m.Points {
				if p.Scale == nil || p.Registers() < 1 || p.Address+p.Registers()-1 > 65535 {
					t.Fatalf("modbus point %q not completed: %+v", p.Name, p)
				}
			}
		}
		_ = c.Summary()
		_ = c.Points()
	})
}
