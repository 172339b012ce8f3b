package main

import (
	"os"
	"strconv"
	"strings"
	"testing"
)

// TestReleaseStartupPages checks that the executable's pages leave the
// resident set and that the process runs on, faulting back what it uses.
func TestReleaseStartupPages(t *testing.T) {
	before := rssFile(t)
	if err := releaseStartupPages(); err != nil {
		t.Fatal(err)
	}
	after := rssFile(t)
	t.Logf("file-backed resident set %d KiB before, %d KiB after", before, after)
	if after >= before {
		t.Errorf("file-backed resident set %d KiB after the release, want below the %d KiB before", after, before)
	}
	if err := releaseStartupPages(); err != nil {
		t.Fatalf("a second release: %v", err)
	}
}

// rssFile is the process's file-backed resident set in KiB.
func rssFile(t *testing.T) int {
	t.Helper()
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(status)) {
		if v, ok := strings.CutPrefix(line, "RssFile:"); ok {
			kb, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			if err != nil {
				t.Fatalf("RssFile: %q", v)
			}
			return kb
		}
	}
	t.Fatal("no RssFile in /proc/self/status")
	return 0
}
