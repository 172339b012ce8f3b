package statefile

import (
	"bytes"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var testFormat = Format{Magic: [4]byte{'T', 'S', 'T', '1'}, Align: 512}

func newFile(t *testing.T, format Format) (*File, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "x.state")
	f := New(path, format)
	t.Cleanup(func() { _ = f.Close() })
	return f, path
}

func save(t *testing.T, f *File, payloads ...string) {
	t.Helper()
	for _, p := range payloads {
		if err := f.Save([]byte(p)); err != nil {
			t.Fatal(err)
		}
	}
}

// reload returns what a fresh Load of path finds, as after a restart.
func reload(t *testing.T, path string, format Format) (string, error) {
	t.Helper()
	f := New(path, format)
	defer f.Close()
	p, err := f.Load()
	return string(p), err
}

// TestFormatPinned pins the slots the buffer's seq.state and cursors.state
// and the GPIO counter files have always held, so files written by earlier
// versions still load.
func TestFormatPinned(t *testing.T) {
	tests := []struct {
		magic   string
		gen     uint64
		payload string
		want    string // hex
	}{
		{"FGS1", 1, "hello", "46475331010000000000000005000000b4a6fb7068656c6c6f"},
		{"FGS1", 7, "", "46475331070000000000000000000000cd9935bd"},
		{"FGC1", 3, "water 41\n", "4647433103000000000000000900000069a4e12677617465722034310a"},
	}
	for _, tt := range tests {
		format := Format{Magic: [4]byte([]byte(tt.magic)), Align: 4096}
		f := New("", format)
		if got := hex.EncodeToString(f.encode(tt.gen, []byte(tt.payload))); got != tt.want {
			t.Errorf("%s gen %d %q: %s, want %s", tt.magic, tt.gen, tt.payload, got, tt.want)
		}
		want, _ := hex.DecodeString(tt.want)
		if gen, p, ok := f.parse(append(want, make([]byte, 100)...)); !ok || gen != tt.gen || string(p) != tt.payload {
			t.Errorf("%s: parsed gen %d %q (%v)", tt.want, gen, p, ok)
		}
	}
}

func TestSaveLoad(t *testing.T) {
	f, path := newFile(t, testFormat)
	if _, err := f.Load(); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Load of a new file: %v, want fs.ErrNotExist", err)
	}
	save(t, f, "one", "two", "", "three")
	if got, err := reload(t, path, testFormat); err != nil || got != "three" {
		t.Fatalf("reloaded %q, %v; want three", got, err)
	}
	if st, err := os.Stat(path); err != nil || st.Size() != 2*512 {
		t.Errorf("file %v (%v), want two slots of 512 bytes", st, err)
	}

	// A payload that outgrows the slot replaces the file with larger slots,
	// which later saves overwrite in place again.
	long := strings.Repeat("x", 1000)
	save(t, f, long)
	if got, err := reload(t, path, testFormat); err != nil || got != long {
		t.Fatalf("after growing: %.10q, %v; want the long payload", got, err)
	}
	save(t, f, "four")
	if got, err := reload(t, path, testFormat); err != nil || got != "four" {
		t.Fatalf("after growing and saving in place: %q, %v; want four", got, err)
	}
	if st, err := os.Stat(path); err != nil || st.Size() != 2*1024 {
		t.Errorf("file %v (%v), want two slots of 1024 bytes", st, err)
	}

	// A file loaded from disk is written on in place.
	g := New(path, testFormat)
	defer g.Close()
	if p, err := g.Load(); err != nil || string(p) != "four" {
		t.Fatalf("Load: %q, %v", p, err)
	}
	save(t, g, "five")
	if got, err := reload(t, path, testFormat); err != nil || got != "five" {
		t.Fatalf("saved after Load: %q, %v; want five", got, err)
	}
}

// TestTornSave spoils the newest slot as a power cut during its write
// would: the state before it is loaded, and the next save goes on from it.
func TestTornSave(t *testing.T) {
	tests := []struct {
		name string
		tear func(slot []byte)
	}{
		{"flipped bit in the payload", func(s []byte) { s[headerLen+2] ^= 0x10 }},
		{"payload byte overwritten", func(s []byte) { s[headerLen+1] = 0xFF }},
		{"payload not written", func(s []byte) { clear(s[headerLen:]) }},
		{"header not written", func(s []byte) { clear(s[:headerLen]) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, path := newFile(t, testFormat)
			save(t, f, "one", "two", "three")
			newest := int64(f.gen%2) * f.slot
			slot := f.slot
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			tt.tear(data[newest : newest+slot])
			if err := os.WriteFile(path, data, 0o640); err != nil {
				t.Fatal(err)
			}
			g := New(path, testFormat)
			defer g.Close()
			if p, err := g.Load(); err != nil || string(p) != "two" {
				t.Fatalf("after a torn write: %q, %v; want the previous state", p, err)
			}
			save(t, g, "four")
			if got, err := reload(t, path, testFormat); err != nil || got != "four" {
				t.Errorf("saving on: %q, %v; want four", got, err)
			}
		})
	}
}

// TestLoadCorrupt: a file with no valid slot is reported, and the next
// Save replaces it.
func TestLoadCorrupt(t *testing.T) {
	valid := func() []byte {
		f := New("", testFormat)
		d := make([]byte, 2*512)
		copy(d, f.encode(1, []byte("water 41\n")))
		copy(d[512:], f.encode(2, []byte("water 42\n")))
		return d
	}
	tests := []struct {
		name string
		data func() []byte
	}{
		{"empty", func() []byte { return nil }},
		{"garbage", func() []byte { return bytes.Repeat([]byte("fieldgate"), 100) }},
		{"both slots spoilt", func() []byte {
			d := valid()
			d[headerLen] ^= 1
			d[512+headerLen] ^= 1
			return d
		}},
		{"truncated in the record", func() []byte { return valid()[:headerLen+4] }},
		{"another format", func() []byte {
			d := valid()
			copy(d, "XXX1")
			copy(d[512:], "XXX1")
			return d
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, path := newFile(t, testFormat)
			if err := os.WriteFile(path, tt.data(), 0o640); err != nil {
				t.Fatal(err)
			}
			if p, err := f.Load(); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), path) {
				t.Fatalf("Load: %q, %v; want ErrCorrupt naming the file", p, err)
			}
			save(t, f, "fresh")
			if got, err := reload(t, path, testFormat); err != nil || got != "fresh" {
				t.Errorf("after saving: %q, %v; want fresh", got, err)
			}
		})
	}
}

// TestLoadRemovesTemp: a temporary file left by a crash during a
// replacement is removed, and the state before it loaded.
func TestLoadRemovesTemp(t *testing.T) {
	f, path := newFile(t, testFormat)
	save(t, f, "kept")
	if err := os.WriteFile(path+".tmp", []byte("half a replacement"), 0o640); err != nil {
		t.Fatal(err)
	}
	if got, err := reload(t, path, testFormat); err != nil || got != "kept" {
		t.Fatalf("Load: %q, %v", got, err)
	}
	if _, err := os.Stat(path + ".tmp"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("temporary file still there: %v", err)
	}
}

// TestSaveFails: an error names the file, and a save that works again
// after it makes the state durable.
func TestSaveFails(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "gone")
	path := filepath.Join(dir, "x.state")
	f := New(path, testFormat)
	defer f.Close()
	if err := f.Save([]byte("lost")); !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), dir) {
		t.Fatalf("Save into a missing directory: %v, want fs.ErrNotExist naming it", err)
	}
	if err := os.Mkdir(dir, 0o750); err != nil {
		t.Fatal(err)
	}
	save(t, f, "back")
	if got, err := reload(t, path, testFormat); err != nil || got != "back" {
		t.Errorf("after the directory came back: %q, %v", got, err)
	}
}

// BenchmarkSave measures one in-place save (a slot write and fdatasync) on
// the file system of the test's temporary directory.
func BenchmarkSave(b *testing.B) {
	f := New(filepath.Join(b.TempDir(), "x.state"), Format{Magic: [4]byte{'B', 'N', 'C', '1'}, Align: 4096})
	defer f.Close()
	payload := []byte("water 123456\ngas 7890\n")
	for b.Loop() {
		if err := f.Save(payload); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "saves/s")
}

// TestDirFileSetAside: a Dir hands out files by name; a file set aside
// keeps its bytes as .bad and the next Save starts a fresh one.
func TestDirFileSetAside(t *testing.T) {
	root := filepath.Join(t.TempDir(), "state")
	d, err := OpenDir(root)
	if err != nil {
		t.Fatal(err)
	}
	f := d.File("gpio-io.counters", testFormat)
	if want := filepath.Join(root, "gpio-io.counters"); f.Path() != want {
		t.Fatalf("Path %q, want %q", f.Path(), want)
	}
	save(t, f, "one", "two")
	before, err := os.ReadFile(f.Path())
	if err != nil {
		t.Fatal(err)
	}
	kept, err := f.SetAside()
	if err != nil || kept != f.Path()+".bad" {
		t.Fatalf("SetAside = %q, %v", kept, err)
	}
	if b, err := os.ReadFile(kept); err != nil || !bytes.Equal(b, before) {
		t.Errorf("the set-aside file does not hold the old bytes (%v)", err)
	}
	save(t, f, "three")
	if got, err := reload(t, f.Path(), testFormat); err != nil || got != "three" {
		t.Errorf("after SetAside and Save: %q, %v; want three", got, err)
	}
}
