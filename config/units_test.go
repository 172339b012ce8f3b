package config

import (
	"testing"
	"time"
)

func TestParseSize(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want Size
		err  bool
	}{
		{in: "1024", want: 1024},
		{in: "0", want: 0},
		{in: "64MiB", want: 64 << 20},
		{in: "512KiB", want: 512 << 10},
		{in: "2GiB", want: 2 << 30},
		{in: "1TiB", want: 1 << 40},
		{in: "100kB", want: 100_000},
		{in: "100KB", want: 100_000},
		{in: "1GB", want: 1_000_000_000},
		{in: "5 MB", want: 5_000_000},
		{in: "3TB", want: 3_000_000_000_000},
		{in: "10B", want: 10},
		{in: "1.5GiB", want: 3 << 29},
		{in: "64mib", want: 64 << 20},
		{in: " 7 ", want: 7},
		{in: "", err: true},
		{in: "MiB", err: true},
		{in: "-1", err: true},
		{in: "-1MiB", err: true},
		{in: "12XB", err: true},
		{in: "1 2MiB", err: true},
		{in: "0x10", err: true},
		{in: "NaN", err: true},
		{in: "InfMiB", err: true},
		{in: "9223372036854775807", want: 1<<63 - 1},
		{in: "8589934592GiB", err: true},
		{in: "1e30B", err: true},
	} {
		got, err := ParseSize(tt.in)
		if (err != nil) != tt.err || got != tt.want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d, error %v", tt.in, got, err, tt.want, tt.err)
		}
	}
}

func TestSizeText(t *testing.T) {
	for _, tt := range []struct {
		size Size
		want string
	}{
		{0, "0B"}, {1, "1B"}, {1000, "1kB"}, {1024, "1KiB"}, {256 << 20, "256MiB"},
		{1_000_000_000, "1GB"}, {1500, "1500B"}, {3 << 29, "1536MiB"}, {1 << 40, "1TiB"},
	} {
		if got := tt.size.String(); got != tt.want {
			t.Errorf("Size(%d).String() = %q, want %q", int64(tt.size), got, tt.want)
		}
		if back, err := ParseSize(tt.want); err != nil || back != tt.size {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", tt.want, back, err, tt.size)
		}
	}
}

func TestSizeTOML(t *testing.T) {
	for _, tt := range []struct {
		in   any
		want Size
		err  bool
	}{
		{in: int64(4096), want: 4096},
		{in: "4KiB", want: 4096},
		{in: int64(-1), err: true},
		{in: 1.5, err: true},
		{in: true, err: true},
	} {
		var s Size
		err := s.UnmarshalTOML(tt.in)
		if (err != nil) != tt.err || s != tt.want {
			t.Errorf("UnmarshalTOML(%v) = %d, %v; want %d, error %v", tt.in, s, err, tt.want, tt.err)
		}
	}
}

func TestDurationText(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want time.Duration
		err  bool
	}{
		{in: "250ms", want: 250 * time.Millisecond},
		{in: "1s", want: time.Second},
		{in: "5m", want: 5 * time.Minute},
		{in: "1h30m", want: 90 * time.Minute},
		{in: "0", want: 0},
		{in: "0s", want: 0},
		{in: "-1s", err: true},
		{in: "1", err: true},
		{in: "5 sec", err: true},
		{in: "", err: true},
	} {
		var d Duration
		err := d.UnmarshalText([]byte(tt.in))
		if (err != nil) != tt.err || d.D() != tt.want {
			t.Errorf("UnmarshalText(%q) = %v, %v; want %v, error %v", tt.in, d, err, tt.want, tt.err)
		}
		if err == nil {
			b, _ := d.MarshalText()
			var back Duration
			if err := back.UnmarshalText(b); err != nil || back != d {
				t.Errorf("round trip of %q via %q: %v, %v", tt.in, b, back, err)
			}
		}
	}
}

func TestExpand(t *testing.T) {
	for _, tt := range []struct {
		in, want string
		err      bool
	}{
		{in: "plain", want: "plain"},
		{in: "${BROKER}:8883", want: "broker.example.com:8883"},
		{in: "a${EMPTY}b${CLOUD_PASSWORD}", want: "abhunter2"},
		{in: "$HOME and $ alone", want: "$HOME and $ alone"},
		{in: "$${BROKER}", want: "${BROKER}"},
		{in: "p$$w${EMPTY}", want: "p$$w"},
		{in: `quote " and newline` + "\n${CLOUD_PASSWORD}", want: "quote \" and newline\nhunter2"},
		{in: "${NOPE}", err: true},
		{in: "${}", err: true},
		{in: "${1X}", err: true},
		{in: "${BROKER", err: true},
	} {
		got, err := expand(tt.in, env)
		if (err != nil) != tt.err || got != tt.want {
			t.Errorf("expand(%q) = %q, %v; want %q, error %v", tt.in, got, err, tt.want, tt.err)
		}
	}
}
