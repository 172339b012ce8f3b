package test

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fieldgate/fieldgate/test/peers"
)

// TestDiskFullGateway fills the disk under the running gateway's buffer
// (a small tmpfs) while its broker is down (SPEC §4.1): it keeps polling and
// evicts the oldest readings, says so once, and when space returns and the
// broker comes back, delivers every reading it kept, with no restart.
func TestDiskFullGateway(t *testing.T) {
	disk := peers.Tmpfs(t, 512<<10)
	filler := filepath.Join(disk, "filler")
	if err := os.WriteFile(filler, make([]byte, 192<<10), 0o600); err != nil {
		t.Fatal(err)
	}
	bin, err := plainBinary()
	if err != nil {
		t.Fatal(err)
	}
	broker := peers.StartMochi(t)
	broker.Stop()
	bank, dev := device(t)
	text, metrics := observedConfig(t, upstream("local", broker.URL()), dev.Addr, "10ms", loadPoints(bank, 50), "interval")
	// The buffer on the small disk, its size cap beyond the disk's.
	text = regexp.MustCompile(`(?m)^dir = ".*"$`).ReplaceAllLiteralString(text,
		fmt.Sprintf("dir = %q\nmax_size = \"1MiB\"", filepath.Join(disk, "buffer")))
	g := startBinary(t, bin, writeConfig(t, text))
	g.waitLog("serving metrics")

	g.waitLog("file system full")
	reads := bank.Reads()
	if !bank.WaitReads(reads+100, wait) {
		t.Fatal("polling stopped on a full disk")
	}
	freed := time.Now()
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	room := g.waitLog("has room again")
	t.Logf("room again %v after space returned: %s", time.Since(freed).Round(time.Millisecond), room)
	if n := strings.Count(g.logs.String(), "file system full"); n != 1 {
		t.Errorf("%d warnings of a full file system, want one for the episode", n)
	}

	if err := dev.Stop(); err != nil {
		t.Fatal(err)
	}
	m := scrape(t, metrics)
	first, dropped := uint64(m["fieldgate_buffer_first_seq"]), m["fieldgate_buffer_dropped_total"]
	if dropped == 0 || uint64(dropped) != first-1 {
		t.Errorf("dropped %v, want the %d readings evicted before seq %d", dropped, first-1, first)
	}
	broker.Start()
	next := awaitDelivered(t, metrics, "local")
	ms := broker.Received.All()
	max := checkDeliveryFrom(t, ms, first)
	if max != next-1 {
		t.Fatalf("the broker's highest seq is %d, the buffer's last %d", max, next-1)
	}
	if s := slices.Min(seqs(t, prefix, ms)); s != first {
		t.Errorf("the broker got seq %d, the buffer's first after eviction is %d", s, first)
	}
	t.Logf("%.0f readings evicted, %d kept and delivered (seqs %d to %d)", dropped, max-first+1, first, max)
	if line := errorLine(g.logs); line != "" {
		t.Errorf("an error was logged: %s", line)
	}
}
