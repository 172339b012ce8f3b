package serial

import (
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/fieldgate/fieldgate/adapters"
	"github.com/fieldgate/fieldgate/adapters/adapterstest"
	"github.com/fieldgate/fieldgate/config"
	"github.com/fieldgate/fieldgate/internal/reading"
)

// matchPoints are points of every type, with patterns like real
// instruments' and catch-alls.
var matchPoints = []PointConfig{
	{Name: "temp", Pattern: `T=(-?[0-9.]+)`, Type: "float64"},
	{Name: "weight", Pattern: `W:\s*([-0-9.]+)\s*kg`, Type: "float64"},
	{Name: "count", Pattern: `\bN=(\S+)`, Type: "int64"},
	{Name: "on", Pattern: `ON=(\w+)`, Type: "bool"},
	{Name: "label", Pattern: `L="([^"]*)"`, Type: "string"},
	{Name: "any_float", Pattern: `^F(.*)$`, Type: "float64"},
	{Name: "any_int", Pattern: `^I(.*)$`, Type: "int64"},
	{Name: "any_bool", Pattern: `^B(.*)$`, Type: "bool"},
}

// kinds is the reading kind of each point type.
var kinds = map[string]reading.Kind{"float64": reading.KindFloat, "int64": reading.KindInt, "bool": reading.KindBool, "string": reading.KindString}

// FuzzLineMatch feeds arbitrary lines to the matching of a line-mode
// instrument's points: no line may panic it; each reading belongs to a point
// whose pattern matches and has the point's type; and the error, which
// becomes the adapter's status, names only the points that failed and their
// types, never the line's text, so that a noisy device changes the status
// once.
func FuzzLineMatch(f *testing.F) {
	for _, s := range []string{
		`T=21.5 N=-7 ON=off L="a b"`, "W:  12.40 kg", "N=99999999999999999999", "ON=maybe T=1",
		"F1e309", "Fnan", "F-Inf", "I9223372036854775808", "B on ", "T=1.2.3", `L="`, "N=", "",
		"\x00\xff", strings.Repeat("T=1 ", 1000),
	} {
		f.Add(s)
	}
	a, err := New(&Config{Name: "s", Port: "/dev/null", Mode: "line", Delimiter: "\n", Timeout: config.Duration(time.Second),
		Line: config.Line{BaudRate: 9600, DataBits: 8, Parity: "N", StopBits: 1}, Points: matchPoints},
		adapters.Env{Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		f.Fatal(err)
	}
	r := &run{Adapter: a, e: &adapterstest.Recorder{}}
	f.Fuzz(func(t *testing.T, line string) {
		rs, matched, err := r.parse(line, time.Now())
		var want []string // the status messages of the points that fail
		for _, pc := range matchPoints {
			m := a.byName[pc.Name].re.FindStringSubmatch(line)
			if m == nil {
				continue
			}
			if !matched {
				t.Fatalf("%q matches %s, but parse says nothing matched", line, pc.Name)
			}
			if _, perr := parse(pc.Type, m[1]); perr != nil {
				want = append(want, fmt.Sprintf("serial %q point %q: cannot parse as %s", "s", pc.Name, pc.Type))
			}
		}
		for _, rd := range rs {
			p := a.byName[rd.Point]
			if p == nil || !p.re.MatchString(line) || rd.Value.Kind() != kinds[p.typ] || rd.Adapter != "s" {
				t.Fatalf("%q gave reading %+v", line, rd)
			}
		}
		got := ""
		if err != nil {
			got = err.Error()
		}
		if got != strings.Join(want, "\n") {
			t.Fatalf("%q: error %q, want %q", line, got, strings.Join(want, "\n"))
		}
	})
}
