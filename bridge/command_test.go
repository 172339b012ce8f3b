package bridge

import (
	"context"
	"errors"
	"log/slog"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/fieldgate/fieldgate/internal/ratelog"
	"github.com/fieldgate/fieldgate/internal/reading"
)

func TestParseCommand(t *testing.T) {
	ts := time.Date(2026, 11, 21, 23, 0, 0, 123e6, time.UTC)
	tests := []struct {
		name    string
		payload string
		want    Command
		wantErr error
	}{
		{"object", `{"value": 21.5, "id": "a1", "ts": "2026-11-21T23:00:00.123Z"}`,
			Command{Value: reading.Float(21.5), ID: "a1", TS: ts}, nil},
		{"object value only", `{"value":true}`, Command{Value: reading.Bool(true)}, nil},
		{"object numeric id", `{"value":1,"id":42}`, Command{Value: reading.Int(1), ID: "42"}, nil},
		{"object extra keys ignored", `{"value":"on","by":"operator"}`, Command{Value: reading.String("on")}, nil},
		{"object ts with offset", `{"value":0,"ts":"2026-11-22T00:00:00.123+01:00"}`,
			Command{Value: reading.Int(0), TS: ts}, nil},
		{"int", `1`, Command{Value: reading.Int(1)}, nil},
		{"negative int", ` -7 `, Command{Value: reading.Int(-7)}, nil},
		{"uint beyond int64", `18446744073709551615`, Command{Value: reading.Uint(math.MaxUint64)}, nil},
		{"integer beyond uint64 is a float", `18446744073709551616`, Command{Value: reading.Float(18446744073709551616)}, nil},
		{"float", `21.5`, Command{Value: reading.Float(21.5)}, nil},
		{"exponent is a float", `1e3`, Command{Value: reading.Float(1000)}, nil},
		{"bool", "false\n", Command{Value: reading.Bool(false)}, nil},
		{"json string", `"auto"`, Command{Value: reading.String("auto")}, nil},
		{"text", "ON\r\n", Command{Value: reading.String("ON")}, nil},
		{"text that looks numeric", "1.5.3", Command{Value: reading.String("1.5.3")}, nil},
		{"unterminated quote is text", `"abc`, Command{Value: reading.String(`"abc`)}, nil},

		{"empty", "  \n", Command{}, ErrMalformed},
		{"bad object", `{"value":`, Command{}, ErrMalformed},
		{"object without value", `{"id":"x"}`, Command{ID: "x"}, ErrMalformed},
		{"null value", `{"value":null,"id":"x"}`, Command{ID: "x"}, ErrMalformed},
		{"object value", `{"value":{"a":1}}`, Command{}, ErrMalformed},
		{"array", `[1,2]`, Command{}, ErrMalformed},
		{"bad array", `[1,`, Command{}, ErrMalformed},
		{"bare null", `null`, Command{}, ErrMalformed},
		{"bad id", `{"value":1,"id":true}`, Command{}, ErrMalformed},
		{"bad ts", `{"value":1,"id":"x","ts":"yesterday"}`, Command{ID: "x"}, ErrMalformed},
		{"ts not a string", `{"value":1,"ts":1700000000}`, Command{}, ErrMalformed},
		{"number out of range", `1e999`, Command{}, ErrMalformed},
		{"not utf-8", "\xff\xfe", Command{}, ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseCommand([]byte(tt.payload))
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if got.Value != tt.want.Value || got.ID != tt.want.ID || !got.TS.Equal(tt.want.TS) {
				t.Errorf("got %+v (%s), want %+v (%s)", got, got.Value.Kind(), tt.want, tt.want.Value.Kind())
			}
		})
	}
}

func TestCheckCommand(t *testing.T) {
	now := time.Date(2026, 11, 21, 23, 0, 0, 0, time.UTC)
	at := func(d time.Duration) string {
		return `{"value":1,"id":"c","ts":"` + now.Add(d).Format(time.RFC3339Nano) + `"}`
	}
	tests := []struct {
		name     string
		payload  string
		retained bool
		wantErr  error
		wantID   string
	}{
		{"fresh", at(-29 * time.Second), false, nil, "c"},
		{"no ts", `{"value":1}`, false, nil, ""},
		{"expired", at(-31 * time.Second), false, ErrExpired, "c"},
		{"future ts accepted", at(time.Hour), false, nil, "c"},
		{"retained", `{"value":1,"id":"r"}`, true, ErrRetained, "r"},
		{"retained and malformed", `{"id":"r"}`, true, ErrMalformed, "r"},
		{"4 KiB accepted", `"` + strings.Repeat("x", maxCommandSize-2) + `"`, false, nil, ""},
		{"too large", `"` + strings.Repeat("x", maxCommandSize-1) + `"`, false, ErrTooLarge, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := checkCommand([]byte(tt.payload), tt.retained, now, 30*time.Second)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if c.ID != tt.wantID {
				t.Errorf("id = %q, want %q", c.ID, tt.wantID)
			}
		})
	}
}

func TestResultPayload(t *testing.T) {
	tests := []struct {
		res  result
		want string
	}{
		{result{id: "a1", written: reading.Float(21.5)}, `{"id":"a1","ok":true,"value":21.5}`},
		{result{written: reading.Bool(true)}, `{"id":"","ok":true,"value":true}`},
		{result{id: `q"`, err: ErrBusy}, `{"id":"q\"","ok":false,"error":"busy: too many commands waiting"}`},
	}
	for _, tt := range tests {
		if got := string(tt.res.payload()); got != tt.want {
			t.Errorf("payload = %s, want %s", got, tt.want)
		}
	}
}

// TestExecute runs the command worker on its queue: a command whose
// command_max_age passed while it waited is refused without reaching the
// Commander, and a stop wins over a queued command.
func TestExecute(t *testing.T) {
	cmd := &commander{}
	ctx, cancel := context.WithCancel(context.Background())
	logger := slog.New(slog.DiscardHandler)
	r := &commandWorker{cmd: cmd, logger: logger, quiet: ratelog.New(logger, time.Second), ctx: ctx,
		jobs: make(chan job, 2), results: make(chan result, 2)}
	now := time.Now()
	r.jobs <- job{"boiler", "temp", Command{Value: reading.Int(1), ID: "stale"}, now.Add(-time.Second)}
	r.jobs <- job{"boiler", "temp", Command{Value: reading.Int(2), ID: "fresh"}, now.Add(time.Hour)}
	done := make(chan struct{})
	go func() { defer close(done); r.execute() }()
	for _, want := range []struct {
		id  string
		err error
	}{{"stale", ErrExpired}, {"fresh", nil}} {
		select {
		case res := <-r.results:
			if res.id != want.id || !errors.Is(res.err, want.err) {
				t.Errorf("result %q: %v, want %q: %v", res.id, res.err, want.id, want.err)
			}
		case <-time.After(wait):
			t.Fatalf("no result for %q within %v", want.id, wait)
		}
	}
	cancel()
	select {
	case <-done:
	case <-time.After(wait):
		t.Fatalf("execute did not return within %v of the stop", wait)
	}

	for range 20 { // select picks at random, so try often enough to see it
		r.jobs <- job{"boiler", "temp", Command{Value: reading.Int(3)}, now.Add(time.Hour)}
		r.execute() // ctx is done: returns at once
		select {
		case <-r.jobs:
		default:
		}
	}
	if got := cmd.called(); len(got) != 1 || got[0] != "boiler/temp 2 int" {
		t.Errorf("Commander calls %q, want only the fresh command before the stop", got)
	}
}

// FuzzParseCommand checks that no payload panics the parser, that every
// accepted command has a value, and that a value re-encoded as JSON parses
// back to the same number, boolean or string.
func FuzzParseCommand(f *testing.F) {
	for _, s := range []string{
		`{"value": 21.5, "id": "a1", "ts": "2026-11-21T23:00:00.123Z"}`,
		`{"value":"on"}`, `{"id":"x"}`, `{"value":`, `[1]`, `1`, `-9223372036854775808`,
		`18446744073709551616`, `1e308`, `true`, `"text"`, "off", "\xff", "",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		c, err := ParseCommand(payload)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		if c.Value.Kind() == reading.KindInvalid {
			t.Fatalf("accepted %q without a value", payload)
		}
		again, err := ParseCommand(c.Value.AppendJSON(nil))
		if c.Value.Kind() == reading.KindString && c.Value.Str() == "" {
			return // "" re-encodes as a JSON string, fine, but empty text is refused
		}
		if err != nil {
			t.Fatalf("value %s of %q does not parse back: %v", c.Value, payload, err)
		}
		if !sameValue(c.Value, again.Value) {
			t.Fatalf("value %s (%s) of %q parses back as %s (%s)", c.Value, c.Value.Kind(), payload, again.Value, again.Value.Kind())
		}
	})
}

// sameValue compares numbers by value (an integral float re-encodes as an
// integer literal) and everything else exactly.
func sameValue(a, b reading.Value) bool {
	fa, okA := a.Float64()
	fb, okB := b.Float64()
	if okA && okB && a.Kind() != reading.KindBool && b.Kind() != reading.KindBool {
		return fa == fb
	}
	return a == b
}

// BenchmarkParseCommand parses the command payloads a broker delivers:
// a JSON object with value, id and ts, and a bare value.
func BenchmarkParseCommand(b *testing.B) {
	for _, p := range []string{`{"value": 21.5, "id": "a1", "ts": "2026-11-21T23:00:00.123Z"}`, `on`} {
		b.Run(p[:2], func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := ParseCommand([]byte(p)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
