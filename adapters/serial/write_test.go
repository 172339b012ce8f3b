package serial

import (
	"errors"
	"log/slog"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/fieldgate/fieldgate/adapters"
	"github.com/fieldgate/fieldgate/config"
)

func TestRender(t *testing.T) {
	for _, c := range []struct {
		typ, format, delim string
		v                  adapters.Value
		want               string // the command; empty when refused
		wantErr            error
		typed              adapters.Value
	}{
		{"float64", "S{value}\r\n", "\n", adapters.Float(21.5), "S21.5\r\n", nil, adapters.Float(21.5)},
		{"float64", "S{value}\r\n", "\n", adapters.Float(1e6), "S1000000\r\n", nil, adapters.Float(1e6)},
		{"float64", "S{value}\r\n", "\n", adapters.Int(-3), "S-3\r\n", nil, adapters.Float(-3)},
		{"float64", "S{value}\r\n", "\n", adapters.String(" 0.25 "), "S0.25\r\n", nil, adapters.Float(0.25)},
		{"float64", "S{value}", "\n", adapters.String("abc"), "", adapters.ErrBadValue, adapters.Value{}},
		{"float64", "S{value}", "\n", adapters.String("NaN"), "", adapters.ErrBadValue, adapters.Value{}},
		{"float64", "S{value}", "\n", adapters.Bool(true), "", adapters.ErrBadValue, adapters.Value{}},
		{"int64", "C{value}\n", "\n", adapters.String("42"), "C42\n", nil, adapters.Int(42)},
		{"int64", "C{value}\n", "\n", adapters.Float(7), "C7\n", nil, adapters.Int(7)},
		{"int64", "C{value}\n", "\n", adapters.Int(-9223372036854775808), "C-9223372036854775808\n", nil, adapters.Int(-9223372036854775808)},
		{"int64", "C{value}\n", "\n", adapters.Uint(1 << 63), "", adapters.ErrBadValue, adapters.Value{}},
		{"int64", "C{value}\n", "\n", adapters.Float(1.5), "", adapters.ErrBadValue, adapters.Value{}},
		{"int64", "C{value}\n", "\n", adapters.Float(1e19), "", adapters.ErrBadValue, adapters.Value{}},
		{"int64", "C{value}\n", "\n", adapters.String("2.0"), "C2\n", nil, adapters.Int(2)},
		{"bool", "E{value}\n", "\n", adapters.String("ON"), "Etrue\n", nil, adapters.Bool(true)},
		{"bool", "E{value}\n", "\n", adapters.Int(0), "Efalse\n", nil, adapters.Bool(false)},
		{"bool", "E{value}\n", "\n", adapters.String("maybe"), "", adapters.ErrBadValue, adapters.Value{}},
		{"string", "L{value}\n", "\n", adapters.String("héllo wörld"), "Lhéllo wörld\n", nil, adapters.String("héllo wörld")},
		{"string", "L{value}\n", "\n", adapters.Float(2.5), "L2.5\n", nil, adapters.String("2.5")},
		{"string", "{value}{value}", "\n", adapters.String("{value}"), "{value}{value}", nil, adapters.String("{value}")},
		{"string", "TARE\r\n", "\n", adapters.String("x"), "TARE\r\n", nil, adapters.String("x")},
		{"string", "L{value}\n", "\n", adapters.String("a\nb"), "", adapters.ErrBadValue, adapters.Value{}},
		{"string", "L{value}\n", "\n", adapters.String("a\r"), "", adapters.ErrBadValue, adapters.Value{}},
		{"string", "L{value}\n", "\n", adapters.String("\x1b[2J"), "", adapters.ErrBadValue, adapters.Value{}},
		{"string", "L{value}\n", "\n", adapters.String("a\x00"), "", adapters.ErrBadValue, adapters.Value{}},
		{"string", "L{value}\n", "\n", adapters.String("a\u0085"), "", adapters.ErrBadValue, adapters.Value{}},
		{"string", "L{value}\n", "\n", adapters.String("\xff"), "", adapters.ErrBadValue, adapters.Value{}},
		{"string", "L{value};", ";", adapters.String("a;b"), "", adapters.ErrBadValue, adapters.Value{}},
		{"string", "L{value}\n", "\n", adapters.String(strings.Repeat("x", 254)), "L" + strings.Repeat("x", 254) + "\n", nil, adapters.String(strings.Repeat("x", 254))},
		{"string", "L{value}\n", "\n", adapters.String(strings.Repeat("x", 255)), "", adapters.ErrBadValue, adapters.Value{}},
		{"string", "L{value}\n", "\n", adapters.Value{}, "", adapters.ErrBadValue, adapters.Value{}},
		{"string", "", "\n", adapters.String("x"), "", adapters.ErrNotWritable, adapters.Value{}},
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
		_, cmd, err := p.render(adapters.String(s), ";")
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
		want   adapters.Value
		ok     bool
	}{
		{"float64", " -12.5 ", adapters.Float(-12.5), true},
		{"float64", "1e3", adapters.Float(1000), true},
		{"float64", "12,5", adapters.Value{}, false},
		{"int64", "+42", adapters.Int(42), true},
		{"int64", "99999999999999999999", adapters.Value{}, false},
		{"int64", "4.0", adapters.Value{}, false},
		{"bool", "On", adapters.Bool(true), true},
		{"bool", "FALSE", adapters.Bool(false), true},
		{"bool", "1", adapters.Bool(true), true},
		{"bool", "0", adapters.Bool(false), true},
		{"bool", "yes", adapters.Value{}, false},
		{"string", " ok \r", adapters.String("ok"), true},
		{"string", "", adapters.String(""), true},
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
	good := func() *config.Serial {
		return &config.Serial{
			Name: "scale", Port: "/dev/ttyUSB1", Mode: "line", Delimiter: "\n",
			Line:    config.Line{BaudRate: 9600, DataBits: 8, Parity: "N", StopBits: 1},
			Timeout: config.Duration(1e9),
			Points:  []config.SerialPoint{{Name: "w", Pattern: `W:(\S+)`, Type: "float64"}},
		}
	}
	if _, err := New(good(), slog.Default()); err != nil {
		t.Fatalf("good config: %v", err)
	}
	for name, mod := range map[string]func(*config.Serial){
		"no port":       func(c *config.Serial) { c.Port = "" },
		"bad parity":    func(c *config.Serial) { c.Parity = "X" },
		"bad mode":      func(c *config.Serial) { c.Mode = "stream" },
		"query no req":  func(c *config.Serial) { c.Mode, c.Interval = "query", config.Duration(1e9) },
		"query no ivl":  func(c *config.Serial) { c.Mode, c.Request = "query", "R\n" },
		"no delimiter":  func(c *config.Serial) { c.Delimiter = "" },
		"no timeout":    func(c *config.Serial) { c.Timeout = 0 },
		"bad regexp":    func(c *config.Serial) { c.Points[0].Pattern = `W:(` },
		"no group":      func(c *config.Serial) { c.Points[0].Pattern = `W:\S+` },
		"bad type":      func(c *config.Serial) { c.Points[0].Type = "float32" },
		"empty type":    func(c *config.Serial) { c.Points[0].Type = "" },
		"two problems":  func(c *config.Serial) { c.Port, c.Points[0].Type = "", "x" },
		"nameless mode": func(c *config.Serial) { c.Mode = "" },
	} {
		c := good()
		mod(c)
		if _, err := New(c, slog.Default()); err == nil || !strings.HasPrefix(err.Error(), `serial "scale": `) {
			t.Errorf("%s: New = %v, want an error naming the adapter", name, err)
		}
	}
}
