package serial

import (
	"errors"
	"log/slog"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/fieldgate/fieldgate/internal/reading"

	"github.com/fieldgate/fieldgate/adapters"
	"github.com/fieldgate/fieldgate/config"
)

func TestRender(t *testing.T) {
	for _, c := range []struct {
		typ, format, delim string
		v                  reading.Value
		want               string // the command; empty when refused
		wantErr            error
		typed              reading.Value
	}{
		{"float64", "S{value}\r\n", "\n", reading.Float(21.5), "S21.5\r\n", nil, reading.Float(21.5)},
		{"float64", "S{value}\r\n", "\n", reading.Float(1e6), "S1000000\r\n", nil, reading.Float(1e6)},
		{"float64", "S{value}\r\n", "\n", reading.Int(-3), "S-3\r\n", nil, reading.Float(-3)},
		{"float64", "S{value}\r\n", "\n", reading.String(" 0.25 "), "S0.25\r\n", nil, reading.Float(0.25)},
		{"float64", "S{value}", "\n", reading.String("abc"), "", adapters.ErrBadValue, reading.Value{}},
		{"float64", "S{value}", "\n", reading.String("NaN"), "", adapters.ErrBadValue, reading.Value{}},
		{"float64", "S{value}", "\n", reading.Bool(true), "", adapters.ErrBadValue, reading.Value{}},
		{"int64", "C{value}\n", "\n", reading.String("42"), "C42\n", nil, reading.Int(42)},
		{"int64", "C{value}\n", "\n", reading.Float(7), "C7\n", nil, reading.Int(7)},
		{"int64", "C{value}\n", "\n", reading.Int(-9223372036854775808), "C-9223372036854775808\n", nil, reading.Int(-9223372036854775808)},
		{"int64", "C{value}\n", "\n", reading.Uint(1 << 63), "", adapters.ErrBadValue, reading.Value{}},
		{"int64", "C{value}\n", "\n", reading.Float(1.5), "", adapters.ErrBadValue, reading.Value{}},
		{"int64", "C{value}\n", "\n", reading.Float(1e19), "", adapters.ErrBadValue, reading.Value{}},
		{"int64", "C{value}\n", "\n", reading.String("2.0"), "C2\n", nil, reading.Int(2)},
		{"bool", "E{value}\n", "\n", reading.String("ON"), "Etrue\n", nil, reading.Bool(true)},
		{"bool", "E{value}\n", "\n", reading.Int(0), "Efalse\n", nil, reading.Bool(false)},
		{"bool", "E{value}\n", "\n", reading.String("maybe"), "", adapters.ErrBadValue, reading.Value{}},
		{"string", "L{value}\n", "\n", reading.String("héllo wörld"), "Lhéllo wörld\n", nil, reading.String("héllo wörld")},
		{"string", "L{value}\n", "\n", reading.Float(2.5), "L2.5\n", nil, reading.String("2.5")},
		{"string", "{value}{value}", "\n", reading.String("{value}"), "{value}{value}", nil, reading.String("{value}")},
		{"string", "TARE\r\n", "\n", reading.String("x"), "TARE\r\n", nil, reading.String("x")},
		{"string", "L{value}\n", "\n", reading.String("a\nb"), "", adapters.ErrBadValue, reading.Value{}},
		{"string", "L{value}\n", "\n", reading.String("a\r"), "", adapters.ErrBadValue, reading.Value{}},
		{"string", "L{value}\n", "\n", reading.String("\x1b[2J"), "", adapters.ErrBadValue, reading.Value{}},
		{"string", "L{value}\n", "\n", reading.String("a\x00"), "", adapters.ErrBadValue, reading.Value{}},
		{"string", "L{value}\n", "\n", reading.String("a\u0085"), "", adapters.ErrBadValue, reading.Value{}},
		{"string", "L{value}\n", "\n", reading.String("\xff"), "", adapters.ErrBadValue, reading.Value{}},
		{"string", "L{value};", ";", reading.String("a;b"), "", adapters.ErrBadValue, reading.Value{}},
		{"string", "L{value}\n", "\n", reading.String(strings.Repeat("x", 254)), "L" + strings.Repeat("x", 254) + "\n", nil, reading.String(strings.Repeat("x", 254))},
		{"string", "L{value}\n", "\n", reading.String(strings.Repeat("x", 255)), "", adapters.ErrBadValue, reading.Value{}},
		{"string", "L{value}\n", "\n", reading.Value{}, "", adapters.ErrBadValue, reading.Value{}},
		{"string", "", "\n", reading.String("x"), "", adapters.ErrNotWritable, reading.Value{}},
	} {
		p := &point{name: "p", typ: c.typ, format: c.format}
		typed, cmd, err := p.render(c.v, c.delim)
		if !errors.Is(err, c.wantErr) || string(cmd) != c.want || typed != c.typed {
			t.Errorf("%s %q ← %v (%s): got %q, %v, %v; want %q, %v, %v",
				c.typ, c.format, c.v, c.v.Kind(), cmd, typed, err, c.want, c.typed, c.wantErr)
		}
	}
}

// FuzzRender checks that no value can add framing to a command: whatever is
// accepted appears verbatim between the template's parts and holds no control
// character or delimiter.
func FuzzRender(f *testing.F) {
	for _, s := range []string{"abc", "a\nb", "a;b", "\r", "{value}", "é", "\xff", strings.Repeat("z", 300)} {
		f.Add(s)
	}
	p := &point{name: "p", typ: "string", format: "<{value}>;"}
	f.Fuzz(func(t *testing.T, s string) {
		_, cmd, err := p.render(reading.String(s), ";")
		if err != nil {
			if !errors.Is(err, adapters.ErrBadValue) {
				t.Fatalf("refusal %v does not wrap ErrBadValue", err)
			}
			return
		}
		if string(cmd) != "<"+s+">;" || len(cmd) > maxCommand || !utf8.ValidString(s) ||
			strings.ContainsRune(s, ';') || strings.IndexFunc(s, unicode.IsControl) >= 0 {
			t.Fatalf("accepted %q as %q", s, cmd)
		}
	})
}

func TestParse(t *testing.T) {
	for _, c := range []struct {
		typ, s string
		want   reading.Value
		ok     bool
	}{
		{"float64", " -12.5 ", reading.Float(-12.5), true},
		{"float64", "1e3", reading.Float(1000), true},
		{"float64", "12,5", reading.Value{}, false},
		{"int64", "+42", reading.Int(42), true},
		{"int64", "99999999999999999999", reading.Value{}, false},
		{"int64", "4.0", reading.Value{}, false},
		{"bool", "On", reading.Bool(true), true},
		{"bool", "FALSE", reading.Bool(false), true},
		{"bool", "1", reading.Bool(true), true},
		{"bool", "0", reading.Bool(false), true},
		{"bool", "yes", reading.Value{}, false},
		{"string", " ok \r", reading.String("ok"), true},
		{"string", "", reading.String(""), true},
	} {
		v, err := parse(c.typ, c.s)
		if (err == nil) != c.ok || v != c.want {
			t.Errorf("parse(%s, %q) = %v, %v; want %v, ok=%v", c.typ, c.s, v, err, c.want, c.ok)
		}
		if err != nil && (!errors.Is(err, errParse) || !strings.Contains(err.Error(), c.s)) {
			t.Errorf("parse(%s, %q) error %q should wrap errParse and name the text", c.typ, c.s, err)
		}
	}
}

func TestNewRejects(t *testing.T) {
	good := func() *Config {
		return &Config{
			Name: "scale", Port: "/dev/ttyUSB1", Mode: "line", Delimiter: "\n",
			Line:    config.Line{BaudRate: 9600, DataBits: 8, Parity: "N", StopBits: 1},
			Timeout: config.Duration(1e9),
			Points:  []PointConfig{{Name: "w", Pattern: `W:(\S+)`, Type: "float64"}},
		}
	}
	if _, err := New(good(), adapters.Env{Log: slog.Default()}); err != nil {
		t.Fatalf("good config: %v", err)
	}
	for name, mod := range map[string]func(*Config){
		"no port":       func(c *Config) { c.Port = "" },
		"bad parity":    func(c *Config) { c.Parity = "X" },
		"bad mode":      func(c *Config) { c.Mode = "stream" },
		"query no req":  func(c *Config) { c.Mode, c.Interval = "query", config.Duration(1e9) },
		"query no ivl":  func(c *Config) { c.Mode, c.Request = "query", "R\n" },
		"no delimiter":  func(c *Config) { c.Delimiter = "" },
		"no timeout":    func(c *Config) { c.Timeout = 0 },
		"bad regexp":    func(c *Config) { c.Points[0].Pattern = `W:(` },
		"no group":      func(c *Config) { c.Points[0].Pattern = `W:\S+` },
		"bad type":      func(c *Config) { c.Points[0].Type = "float32" },
		"empty type":    func(c *Config) { c.Points[0].Type = "" },
		"two problems":  func(c *Config) { c.Port, c.Points[0].Type = "", "x" },
		"nameless mode": func(c *Config) { c.Mode = "" },
	} {
		c := good()
		mod(c)
		if _, err := New(c, adapters.Env{Log: slog.Default()}); err == nil || !strings.HasPrefix(err.Error(), `serial "scale": `) {
			t.Errorf("%s: New = %v, want an error naming the adapter", name, err)
		}
	}
}
