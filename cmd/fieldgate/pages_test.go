package main

import (
	"os"
	"testing"

	"github.com/fieldgate/fieldgate/test/peers"
)

// TestReleaseStartupPages checks that the executable's pages leave the
// resident set and that the process runs on, faulting back what it uses.
func TestReleaseStartupPages(t *testing.T) {
	before := rssFile(t)
	if err := releaseStartupPages(); err != nil {
		t.Fatal(err)
	}
	after := rssFile(t)
	t.Logf("file-backed resident set %.1f MiB before, %.1f MiB after", before, after)
	if after >= before {
		t.Errorf("file-backed resident set %.1f MiB after the release, want below the %.1f MiB before", after, before)
	}
	if err := releaseStartupPages(); err != nil {
		t.Fatalf("a second release: %v", err)
	}
}

// rssFile is the process's file-backed resident set in MiB.
func rssFile(t *testing.T) float64 {
	t.Helper()
	sizes, err := peers.ProcStatus(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	mib, ok := sizes["RssFile"]
	if !ok {
		t.Fatal("no RssFile in /proc/self/status")
	}
	return mib
}
