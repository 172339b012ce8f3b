package config

import (
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
)

// depthOf is the nesting of a decoded TOML value: tables and arrays inside
// each other.
func depthOf(v any) int {
	d := 0
	switch v := v.(type) {
	case map[string]any:
		for _, x := range v {
			d = max(d, depthOf(x))
		}
	case []map[string]any:
		for _, x := range v {
			d = max(d, depthOf(x))
		}
	case []any:
		for _, x := range v {
			d = max(d, depthOf(x))
		}
	default:
		return 0
	}
	return d + 1
}

// FuzzShape checks the limits' scan against the TOML parser: whatever the
// scan lets through and the parser reads must be nested no deeper than the
// limits allow (a table name's parts, a dotted key's parts, then arrays and
// inline tables), or the scan misread the text and the parser's quadratic
// work is unbounded.
func FuzzShape(f *testing.F) {
	for _, s := range []string{
		"a = 1", "[a.b]\nc.d = [{e.f = [1]}]", `x = ["""a"""", [[1]]]`, "x = '''a''''", `x = "a\"[["`,
		"[[a]]\n[[a.b]]\n[a.b.c]", `"a.b".c = {'d' = "}"}`, "x = [ # [[[\n [[1]] ]",
		strings.Repeat("a.", 7) + "b = " + strings.Repeat("[", 8) + strings.Repeat("]", 8),
	} {
		f.Add(s)
	}
	// Deep nesting behind every kind of string and escape the scan must
	// follow as the parser does.
	deep := strings.Repeat("[", 30) + strings.Repeat("]", 30)
	for _, prefix := range []string{`"a\\"`, `"a\"`, `'a\'`, `"""a\""""`, `'''a''''`, `"""a""""`, "'''\n'''", `"\u0022"`, "# x\n"} {
		f.Add("x = [" + prefix + ", " + deep + "]")
	}
	f.Fuzz(func(t *testing.T, src string) {
		if checkShape("f", src) != nil {
			return
		}
		var m map[string]any
		if _, err := toml.Decode(src, &m); err != nil {
			return
		}
		if d := depthOf(m); d > 2*maxKeyParts+maxDepth+1 {
			t.Fatalf("%q passed the scan but nests %d deep", src, d)
		}
	})
}
