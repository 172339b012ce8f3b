package crashfs

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"syscall"
	"testing"

	"github.com/fieldgate/fieldgate/internal/durable"
)

func read(t *testing.T, c *FS, name string) ([]byte, error) {
	t.Helper()
	return durable.ReadFile(c, name)
}

func create(t *testing.T, c *FS, name string) durable.File {
	t.Helper()
	f, err := c.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o640)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// TestCutKeepsWhatWasSynced: synced bytes survive every cut; unsynced
// writes survive as a prefix of themselves, in order, the last torn.
func TestCutKeepsWhatWasSynced(t *testing.T) {
	c := New(1)
	if err := c.MkdirAll("/d", 0o750); err != nil {
		t.Fatal(err)
	}
	f := create(t, c, "/d/f")
	if _, err := f.WriteAt([]byte("synced."), 0); err != nil {
		t.Fatal(err)
	}
	if err := f.Datasync(); err != nil {
		t.Fatal(err)
	}
	if err := c.SyncDir("/d"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("aaaa"), 7); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("bbbb"), 11); err != nil {
		t.Fatal(err)
	}
	full := "synced.aaaabbbb"
	seen := map[string]bool{}
	for range 200 {
		got, err := read(t, c.Cut(), "/d/f")
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.HasPrefix([]byte(full), got) || len(got) < len("synced.") {
			t.Fatalf("after a cut %q, want a prefix of %q keeping %q", got, full, "synced.")
		}
		seen[string(got)] = true
	}
	if !seen["synced."] || !seen[full] || len(seen) < 6 {
		t.Errorf("cuts left only %d outcomes: %v", len(seen), seen)
	}
}

// TestCutForgetsUnsyncedEntries: a file created, or removed, without a
// directory sync is gone, or back, after a cut.
func TestCutForgetsUnsyncedEntries(t *testing.T) {
	c := New(2)
	_ = c.MkdirAll("/d", 0o750)
	if err := c.WriteFile("/d/old", []byte("old")); err != nil {
		t.Fatal(err)
	}
	nf := create(t, c, "/d/new")
	_ = nf.Datasync()
	if err := c.Remove("/d/old"); err != nil {
		t.Fatal(err)
	}
	after := c.Cut()
	if _, err := read(t, after, "/d/new"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("an entry never synced survived: %v", err)
	}
	if got, err := read(t, after, "/d/old"); err != nil || string(got) != "old" {
		t.Errorf("an unsynced removal stuck: %q, %v", got, err)
	}
	_ = c.SyncDir("/d")
	after = c.Cut()
	if _, err := read(t, after, "/d/new"); err != nil {
		t.Errorf("a synced entry was lost: %v", err)
	}
	if _, err := read(t, after, "/d/old"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a synced removal was undone: %v", err)
	}
}

// TestFull: past the limit a write takes what fits and fails with ENOSPC;
// freeing space lets writes through again.
func TestFull(t *testing.T) {
	c := New(3)
	c.SetLimit(10)
	f := create(t, c, "/a")
	if n, err := f.WriteAt([]byte("0123456789abc"), 0); n != 10 || !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("WriteAt = %d, %v; want 10, ENOSPC", n, err)
	}
	if err := f.Truncate(4); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("xyz"), 4); err != nil {
		t.Errorf("a write that fits after space was freed: %v", err)
	}
	if c.Used() != 7 {
		t.Errorf("Used = %d, want 7", c.Used())
	}
}

func TestLock(t *testing.T) {
	c := New(4)
	l, err := c.Lock("/lock")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Lock("/lock"); !errors.Is(err, durable.ErrLocked) {
		t.Fatalf("second Lock: %v, want ErrLocked", err)
	}
	_ = l.Close()
	if _, err := c.Lock("/lock"); err != nil {
		t.Fatalf("Lock after Close: %v", err)
	}
}
