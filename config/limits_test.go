package config_test

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/fieldgate/fieldgate/config"
)

const gwHeader = "[gateway]\nid = \"gw\"\n"

// adversarial are files built to make a loader without limits slow or big:
// deep nesting (the TOML parser recurses and copies per level), long dotted
// keys (quadratic in the parser and the position scanner), huge strings,
// arrays, numbers of keys and tables, and of errors. Those "at the limit"
// are about as large as the limits allow, with keys all different so the
// parser reads them all: they measure the worst case.
func adversarial() map[string]string {
	deep := func(open, close string, depth int) string {
		return strings.Repeat(open, depth) + "1" + strings.Repeat(close, depth)
	}
	return map[string]string{
		"nested arrays, too deep":         gwHeader + "x = " + deep("[", "]", 200000),
		"nested tables, too deep":         gwHeader + "x = " + deep("{a=", "}", 100000),
		"nested arrays at the limit":      fill(config.MaxDepth+1, func(i int) string { return fmt.Sprintf("x%d = %s\n", i, deep("[", "]", config.MaxDepth)) }),
		"nested tables at the limit":      fill(1+config.MaxDepth+config.MaxDepth*(config.MaxDepth+1)/2, func(i int) string { return fmt.Sprintf("x%d = %s\n", i, deep("{a=", "}", config.MaxDepth)) }),
		"dotted key, too long":            gwHeader + strings.Repeat("a.", 100000) + "b = 1\n",
		"dotted table name, too long":     gwHeader + "[" + strings.Repeat("a.", 100000) + "b]\n",
		"dotted keys at the limit":        fill(config.MaxKeyParts, func(i int) string { return strings.Repeat("k.", config.MaxKeyParts-1) + fmt.Sprintf("k%d = 1\n", i) }),
		"dotted table names at the limit": fill(config.MaxKeyParts, func(i int) string { return "[" + strings.Repeat("t.", config.MaxKeyParts-1) + fmt.Sprintf("t%d]\n", i) }),
		"long keys at the limit":          fill(1, func(i int) string { return fmt.Sprintf("%0*d = 1\n", config.MaxKeyLen, i) }),
		"array elements, too many":        gwHeader + "x = [" + strings.Repeat("1,", 500000) + "]\n",
		"array at the item limit":         gwHeader + "x = [" + strings.Repeat("1,", config.MaxItems-10) + "]\n",
		"keys, too many":                  gwHeader + strings.Repeat("k=1\n", 200000),
		"keys at the item limit":          fill(1, func(i int) string { return fmt.Sprintf("k%d=1\n", i) }),
		"tables at the size limit":        gwHeader + strings.Repeat("[[upstream]]\n", (1<<20-100)/13),
		"upstreams with errors":           fill(2, func(i int) string { return "[[upstream]]\nqos=9\n" }),
		"string, too long":                gwHeader + "x = \"" + strings.Repeat("a", 100000) + "\"\n",
		"strings at the limit":            fill(1, func(i int) string { return fmt.Sprintf("x%d = '%s'\n", i, strings.Repeat("a", 65000)) }),
		"multi-line strings":              fill(1, func(i int) string { return fmt.Sprintf("x%d = \"\"\"\n%s\"\"\"\n", i, strings.Repeat("[{", 100)) }),
		"file, too large":                 strings.Repeat("#", 1<<20+1),
		"points with errors":              gwHeader + "[[modbus]]\nname = \"m\"\nurl = \"tcp://h:1\"\n" + strings.Repeat("[[modbus.point]]\nname = \"p\"\ntype = \"x\"\n", config.MaxItems/4-10),
	}
}

// fill makes a file of the gateway table and line(0), line(1), … for as
// long as the file stays within the size limit and its items, items per
// line as the limit weighs them, within the item limit.
func fill(items int, line func(i int) string) string {
	var b strings.Builder
	b.WriteString(gwHeader)
	for i := 0; (i+2)*items < config.MaxItems-10; i++ {
		l := line(i)
		if b.Len()+len(l) > 1<<20 {
			break
		}
		b.WriteString(l)
	}
	return b.String()
}

var noFiles = func(string) ([]byte, error) { return nil, fs.ErrNotExist }

// TestAdversarialFiles loads each adversarial file: each must end, with
// positioned Errors that are few enough to read.
func TestAdversarialFiles(t *testing.T) {
	for name, src := range adversarial() {
		t.Run(name, func(t *testing.T) {
			_, err := config.Parse("f.toml", []byte(src), env, noFiles)
			var es config.Errors
			if !errors.As(err, &es) {
				t.Fatalf("got %v, want config errors", err)
			}
			if len(es) > config.MaxErrors+1 {
				t.Errorf("%d errors, want at most %d and a count of the rest", len(es), config.MaxErrors+1)
			}
			t.Logf("%s: %d errors, first: %.120v", name, len(es), es[0])
		})
	}
}

// BenchmarkAdversarialFiles measures the loader's time and memory on each
// adversarial file (make bench runs it once).
func BenchmarkAdversarialFiles(b *testing.B) {
	for name, src := range adversarial() {
		b.Run(strings.ReplaceAll(name, " ", "_"), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(src)))
			for range b.N {
				_, _ = config.Parse("f.toml", []byte(src), env, noFiles)
			}
		})
	}
}

// TestLimitsAllowRealFiles loads a large realistic file: 40 Modbus devices
// of 125 points each, in both table styles.
func TestLimitsAllowRealFiles(t *testing.T) {
	var b strings.Builder
	b.WriteString(gwHeader + "[[upstream]]\nname = \"cloud\"\nurl = \"mqtt://broker:1883\"\n")
	for d := range 40 {
		fmt.Fprintf(&b, "[[modbus]]\nname = \"dev%d\"\nurl = \"tcp://10.0.0.%d:502\"\n", d, d+1)
		if d%2 == 1 {
			b.WriteString("point = [\n")
		}
		for p := range 125 {
			if d%2 == 0 {
				fmt.Fprintf(&b, "  [[modbus.point]]\n  name = \"p%d\"\n  table = \"holding_register\"\n  address = %d\n  type = \"float32\"\n  unit = \"degC\"\n  scale = 0.1\n", p, 2*p)
			} else {
				fmt.Fprintf(&b, "  { name = \"p%d\", table = \"input_register\", address = %d },\n", p, p)
			}
		}
		if d%2 == 1 {
			b.WriteString("]\n")
		}
	}
	if b.Len() > 1<<20 {
		t.Fatalf("test file of %d bytes passes the size limit", b.Len())
	}
	if _, err := config.Parse("f.toml", []byte(b.String()), env, noFiles); err != nil {
		t.Fatal(err)
	}
}

// TestLimitsErrors checks each limit's message and place.
func TestLimitsErrors(t *testing.T) {
	tests := []struct{ name, src, want string }{
		{"depth", gwHeader + "x = [[[[{a=[[[[1]]]]}]]]]\n", "f.toml:3:15: arrays and inline tables nested more than 8 deep"},
		{"key parts", gwHeader + "a.b.c.d.e.f.g.h.i = 1\n", "f.toml:3:16: a key or table name of more than 8 parts"},
		{"table name parts", gwHeader + "[a.b.c.'d.e'.f.g.h.i.j]\n", "f.toml:3:21: a key or table name of more than 8 parts"},
		{"inline table key parts", gwHeader + "x = {a.b.c.d.e.f.g.h.i = 1}\n", "f.toml:3:21: a key or table name of more than 8 parts"},
		{"key length", gwHeader + strings.Repeat("k", 257) + " = 1\n", "f.toml:3:257: a key or table name longer than 256 bytes"},
		{"quoted key length", gwHeader + "\"" + strings.Repeat("k", 300) + "\" = 1\n", "f.toml:3:303: a key or table name longer than 256 bytes"},
		{"string", gwHeader + "[[upstream]]\npassword = \"" + strings.Repeat("p", 70000) + "\"\n", "f.toml:4:12: a string longer than 64KiB"},
		{"items", gwHeader + "x = [" + strings.Repeat("1,", 100000) + "]\n", "f.toml:3:99999: more than 50000 keys, tables and array elements (dotted and nested ones count once per level)"},
		{"size", strings.Repeat(" ", 1<<20+1), "f.toml: larger than 1MiB"},
		// Brackets in strings and comments are text, and a string may end
		// with quotes right before its delimiter.
		{"brackets in strings", gwHeader + "# [[[[[[[[[[[[[[[[[[[[\nx = ['[[[[[[[[[[[[[[[[[[[', \"[[[[[[[[[[[[[[[[[[[\\\"[\", \"\"\"\n[[[[[[[[[[[[[[[[[[[\"\"\"\"]\n", `f.toml:4:1: gateway: unknown key "x"`},
		{"quotes before the delimiter", gwHeader + "x = [\"\"\"a\"\"\"\", [[[[[[[[1]]]]]]]]]\n", "f.toml:3:23: arrays and inline tables nested more than 8 deep"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := config.Parse("f.toml", []byte(tt.src), env, noFiles)
			if err == nil || err.Error() != tt.want {
				t.Errorf("got %v, want %s", err, tt.want)
			}
		})
	}
}

// TestManyErrorsCounted reports the first problems of a file with hundreds
// and counts the rest.
func TestManyErrorsCounted(t *testing.T) {
	var b strings.Builder
	b.WriteString(gwHeader)
	for i := range 500 {
		fmt.Fprintf(&b, "k%d = %d\n", i, i)
	}
	_, err := config.Parse("f.toml", []byte(b.String()), env, noFiles)
	var es config.Errors
	if !errors.As(err, &es) || len(es) != config.MaxErrors+1 {
		t.Fatalf("%d errors, want %d and a count", len(es), config.MaxErrors+1)
	}
	if got := es[len(es)-1].Error(); got != "f.toml: 400 more problems not shown" {
		t.Errorf("last error %q", got)
	}
}

// TestUpperBounds checks the integer and duration keys whose values would
// overflow or make no sense beyond a bound.
func TestUpperBounds(t *testing.T) {
	src := gwHeader + `
[[upstream]]
name = "cloud"
url = "mqtt://b:1883"
batch_max = 10001
keepalive = "18h12m16s"
[[modbus]]
name = "m"
url = "rtu:///dev/ttyUSB0"
baud_rate = 12000001
max_gap = 65536
point = [{ name = "p", table = "coil" }]
[[gpio]]
name = "g"
chip = "gpiochip0"
point = [{ name = "p", line = 65536, direction = "input" }]
`
	_, err := config.Parse("f.toml", []byte(src), env, noFiles)
	want := []string{
		`f.toml:7:1: upstream "cloud": batch_max 10001 out of range 1..10000`,
		`f.toml:8:1: upstream "cloud": keepalive must be at most 18h12m15s (MQTT counts it in 16 bits of seconds)`,
		`f.toml:12:1: modbus "m": baud_rate 12000001 out of range 1..12000000`,
		`f.toml:13:1: modbus "m": max_gap 65536 out of range 0..65535`,
		`f.toml:18:24: gpio "g" point "p": line 65536 out of range 0..65535`,
	}
	if err == nil || err.Error() != strings.Join(want, "\n") {
		t.Errorf("errors:\n%v\nwant:\n%s", err, strings.Join(want, "\n"))
	}
}

// TestNoSecretInSyntaxErrors breaks a password line in every way the TOML
// parser reports with a quote of the text, and an url with credentials:
// the secret never appears in the error, not even a quoted letter of it.
func TestNoSecretInSyntaxErrors(t *testing.T) {
	const secret = "Zq9xW7vKp3"
	lines := []string{
		"password = Zq9xW7vKp3",
		"password = Zq9xW7vKp3 # comment",
		"password = 12Zq9xW7vKp3",
		"password = trueZq9xW7vKp3",
		"password = 1979-05-27TZq9xW7vKp3",
		"password = 0xZq9xW7vKp3",
		`password = "Zq9xW7vKp3\q"`,
		`password = "Zq9xW7vKp3\u00zz"`,
		`password = "Zq9xW7vKp3`,
		`password = 'Zq9xW7vKp3`,
		`password = """Zq9xW7vKp3`,
		`password = "Zq9xW7vKp3" trailing`,
		"url = mqtt://gw:Zq9xW7vKp3@broker:1883",
		`urls = ["mqtt://b:1883", mqtt://gw:Zq9xW7vKp3@c:1883]`,
		"password = [Zq9xW7vKp3]",
		"password = { x = Zq9xW7vKp3 }",
	}
	for _, line := range lines {
		src := gwHeader + "[[upstream]]\nname = \"cloud\"\n" + line + "\n"
		_, err := config.Parse("f.toml", []byte(src), env, noFiles)
		if err == nil {
			t.Errorf("%s: accepted", line)
			continue
		}
		if leak := leaked(err.Error(), secret); leak != "" {
			t.Errorf("%s: error %q shows %q of the secret", line, err, leak)
		}
	}
}

// leaked returns a part of secret that msg shows: two characters or more
// anywhere, or one in quotes.
func leaked(msg, secret string) string {
	for i := range len(secret) - 1 {
		if strings.Contains(msg, secret[i:i+2]) {
			return secret[i : i+2]
		}
	}
	for _, q := range regexp.MustCompile(`["'](.)["']`).FindAllStringSubmatch(msg, -1) {
		if strings.Contains(secret, q[1]) {
			return q[0]
		}
	}
	return ""
}

// TestLoadLargeFile refuses a config file larger than the limit without
// reading it all: /dev/zero given by mistake ends at once.
func TestLoadLargeFile(t *testing.T) {
	_, err := config.Load("/dev/zero")
	if err == nil || err.Error() != "/dev/zero: /dev/zero: larger than 1MiB" {
		t.Errorf("got %v", err)
	}
	p := filepath.Join(t.TempDir(), "big.toml")
	if err := os.WriteFile(p, []byte(strings.Repeat("#", 1<<20)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := config.Load(p); err == nil || !strings.Contains(err.Error(), "larger than 1MiB") {
		t.Errorf("got %v", err)
	}
}
