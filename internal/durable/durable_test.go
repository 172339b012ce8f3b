package durable

import "testing"

// TestReadFileOfProc: ReadFile reads to the end, not to the reported size,
// which files of /proc give as 0 (the kernel's boot id is one).
func TestReadFileOfProc(t *testing.T) {
	b, err := ReadFile(OS, "/proc/sys/kernel/random/boot_id")
	if err != nil {
		t.Fatal(err)
	}
	if len(b) < 32 {
		t.Fatalf("boot id %q: read short", b)
	}
}
