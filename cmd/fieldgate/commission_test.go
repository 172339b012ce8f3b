package main

import (
	"flag"
	"io"
	"reflect"
	"testing"
)

// The commissioning commands run against real servers in test/; these are
// their argument parsers.

func TestParseArgs(t *testing.T) {
	for _, c := range []struct {
		args      []string
		rest      []string
		unit      int
		table     string
		dryRun    bool
		wantError bool
	}{
		{[]string{"tcp://x:502", "--unit", "3"}, []string{"tcp://x:502"}, 3, "", false, false},
		{[]string{"--unit=4", "a/b", "-table", "coil", "c"}, []string{"a/b", "c"}, 4, "coil", false, false},
		{[]string{"a/b", "-5"}, []string{"a/b", "-5"}, 0, "", false, false},
		{[]string{"-dry", "a/b", "-1e3"}, []string{"a/b", "-1e3"}, 0, "", true, false},
		{[]string{"--unit", "2", "--", "-x", "--unit"}, []string{"-x", "--unit"}, 2, "", false, false},
		{[]string{"a/b", "--nope"}, nil, 0, "", false, true},
	} {
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		unit := fs.Int("unit", 0, "")
		table := fs.String("table", "", "")
		dry := fs.Bool("dry", false, "")
		rest, err := parseArgs(fs, c.args)
		if (err != nil) != c.wantError {
			t.Errorf("%q: error %v", c.args, err)
			continue
		}
		if c.wantError {
			continue
		}
		if !reflect.DeepEqual(rest, c.rest) || *unit != c.unit || *table != c.table || *dry != c.dryRun {
			t.Errorf("%q: %q unit %d table %q dry %t; want %q %d %q %t", c.args, rest, *unit, *table, *dry, c.rest, c.unit, c.table, c.dryRun)
		}
	}
}

func TestParseUnits(t *testing.T) {
	for _, c := range []struct {
		s    string
		rtu  bool
		want []byte
		list string // as unitList shows it; "" for an error
	}{
		{"1-3", true, []byte{1, 2, 3}, "1-3"},
		{"5", true, []byte{5}, "5"},
		{"1,3,10-12, 3", true, []byte{1, 3, 10, 11, 12}, "1, 3, 10-12"},
		{"0-2", false, []byte{0, 1, 2}, "0-2"},
		{"0-2", true, nil, ""},
		{"240-248", true, nil, ""},
		{"250-255", false, []byte{250, 251, 252, 253, 254, 255}, "250-255"},
		{"3-1", true, nil, ""},
		{"a", true, nil, ""},
		{"", true, nil, ""},
	} {
		got, err := parseUnits(c.s, c.rtu)
		if c.list == "" {
			if err == nil {
				t.Errorf("parseUnits(%q, rtu %t) = %v, want an error", c.s, c.rtu, got)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, c.want) {
			t.Errorf("parseUnits(%q, rtu %t) = %v, %v; want %v", c.s, c.rtu, got, err, c.want)
		}
		if l := unitList(got); l != c.list {
			t.Errorf("unitList(%v) = %q, want %q", got, l, c.list)
		}
	}
}
