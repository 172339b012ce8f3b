package gpiovm

import (
	"bytes"
	"strconv"
	"testing"
)

// cpioEntry is what the test reads back from a newc archive.
type cpioEntry struct {
	name         string
	mode         uint64
	rmajor, rmin uint64
	data         string
}

// readNewc parses a newc archive the way the kernel's initramfs unpacker
// does: 110-byte hex headers, names and data padded to 4 bytes.
func readNewc(t *testing.T, b []byte) []cpioEntry {
	t.Helper()
	var out []cpioEntry
	off := 0
	align := func(n int) int { return (n + 3) &^ 3 }
	field := func(i int) uint64 {
		v, err := strconv.ParseUint(string(b[off+6+8*i:off+14+8*i]), 16, 32)
		if err != nil {
			t.Fatalf("header at %d field %d: %v", off, i, err)
		}
		return v
	}
	for {
		if off+110 > len(b) || string(b[off:off+6]) != "070701" {
			t.Fatalf("no newc header at offset %d", off)
		}
		mode, size, rmaj, rmin, namesize := field(1), int(field(6)), field(9), field(10), int(field(11))
		name := string(b[off+110 : off+110+namesize-1])
		if b[off+110+namesize-1] != 0 {
			t.Fatalf("%s: name not NUL-terminated", name)
		}
		data := align(off + 110 + namesize)
		off = align(data + size)
		if name == "TRAILER!!!" {
			if off != len(b) {
				t.Errorf("%d bytes after the trailer", len(b)-off)
			}
			return out
		}
		out = append(out, cpioEntry{name, mode, rmaj, rmin, string(b[data : data+size])})
	}
}

func TestWriteInitramfs(t *testing.T) {
	for _, init := range []string{"", "x", "\x7fELF and then some", "four"} {
		var buf bytes.Buffer
		if err := WriteInitramfs(&buf, []byte(init)); err != nil {
			t.Fatal(err)
		}
		want := []cpioEntry{
			{"dev", sIFDIR | 0o755, 0, 0, ""},
			{"dev/console", sIFCHR | 0o600, 5, 1, ""},
			{"proc", sIFDIR | 0o755, 0, 0, ""},
			{"sys", sIFDIR | 0o755, 0, 0, ""},
			{"tmp", sIFDIR | 0o1777, 0, 0, ""},
			{"init", sIFREG | 0o755, 0, 0, init},
		}
		got := readNewc(t, buf.Bytes())
		if len(got) != len(want) {
			t.Fatalf("entries %+v, want %+v", got, want)
		}
		for i := range want {
			if got[i] != want[i] {
				t.Errorf("entry %d = %+v, want %+v", i, got[i], want[i])
			}
		}
	}
}
