package config

import (
	"strings"
	"testing"
)

// TestBuiltinTablesReportAtTheirKey: the problems of a built-in table (a
// device profile's point) are reported at the key that brought it in,
// labelled with what the table is, once per key; Has answers from the keys
// the table sets.
func TestBuiltinTablesReportAtTheirKey(t *testing.T) {
	const src = "[[modbus]]\nname = \"p\"\nprofile = \"x\"\n"
	l := &loader{file: "fieldgate.toml", at: locate(src), defined: map[string]bool{}, reported: map[string]bool{}}
	b := l.table(node{}.elem("modbus", 0, "p")).Builtin("profile", `"x" point "bad"`, func(k string) bool { return k == "type" || k == "length" })
	typ := "flaot32"
	b.Choice(&typ, "type", "uint16", "uint16", "float32")
	b.Errorf("length", "has length %t, has bit %t", b.Has("length"), b.Has("bit"))
	b.Errorf("length", "reported once per key")
	got := strings.Split(l.errs.Error(), "\n")
	want := []string{
		`fieldgate.toml:3:1: modbus "p" profile "x" point "bad": unknown type "flaot32"`,
		`fieldgate.toml:3:1: modbus "p" profile "x" point "bad": has length true, has bit false`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("errors\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
