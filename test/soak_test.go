package test

import (
	"os"
	"testing"
	"time"

	"github.com/fieldgate/fieldgate/test/modbussim"
	"github.com/fieldgate/fieldgate/test/peers"
)

// soakSample is what the gateway reports of itself at one moment.
type soakSample struct {
	at              time.Duration // since the start
	rss, live       float64       // bytes; live: the heap the last GC left
	goroutines, fds float64
	backlog         float64 // readings
}

func sampleOf(t *testing.T, metrics string, start time.Time) soakSample {
	m := scrape(t, metrics)
	return soakSample{at: time.Since(start).Round(time.Second), rss: m["process_resident_memory_bytes"],
		live:       m["go_memstats_next_gc_bytes"] / 2, // GOGC=100: the next GC comes at twice what the last left
		goroutines: m["go_goroutines"], fds: m["process_open_fds"], backlog: m[`fieldgate_upstream_backlog{upstream="local"}`]}
}

// TestSoak runs the gateway for FIELDGATE_SOAK (`make soak`: 10 minutes;
// CI runs 2) polling 500 readings/s, with the broker down for 5 s of every
// 20 and the device down for 5 s of every 20, ten seconds later. At the
// same point of every period it samples the gateway's memory, goroutines
// and open files: the last sample must match the first (within 1 MiB of
// live heap and 4 MiB of RSS), and the broker must get every seq.
func TestSoak(t *testing.T) {
	length, err := time.ParseDuration(os.Getenv("FIELDGATE_SOAK"))
	if err != nil {
		t.Skip("set FIELDGATE_SOAK to a duration to soak (make soak)")
	}
	const period = 20 * time.Second
	bin, err := plainBinary()
	if err != nil {
		t.Fatal(err)
	}
	broker := peers.StartMochi(t)
	bank, dev := device(t)
	t.Cleanup(func() { _ = dev.Stop() }) // the device as restarted last
	text, metrics := observedConfig(t, upstream("local", broker.URL()), dev.Addr, "100ms", loadPoints(bank, 50), "interval")
	g := startBinary(t, bin, writeConfig(t, text))
	g.waitLog("serving metrics")

	start := time.Now()
	at := func(d time.Duration) { time.Sleep(time.Until(start.Add(d))) } // the schedule of faults, not synchronisation
	var samples []soakSample
	for p := range max(int(length/period), 2) {
		base := time.Duration(p) * period
		at(base)
		broker.Stop()
		at(base + 5*time.Second)
		broker.Start()
		at(base + 10*time.Second)
		if err := dev.Stop(); err != nil {
			t.Fatal(err)
		}
		at(base + 15*time.Second)
		if dev, err = modbussim.Start(dev.Addr, bank); err != nil {
			t.Fatal(err)
		}
		at(base + period - 500*time.Millisecond)
		s := sampleOf(t, metrics, start)
		t.Logf("%6v  RSS %5.1f MiB  live heap %4.1f MiB  goroutines %3.0f  fds %3.0f  backlog %5.0f",
			s.at, s.rss/(1<<20), s.live/(1<<20), s.goroutines, s.fds, s.backlog)
		samples = append(samples, s)
	}

	first, last := samples[0], samples[len(samples)-1]
	if last.goroutines > first.goroutines+2 {
		t.Errorf("goroutines grew from %.0f to %.0f", first.goroutines, last.goroutines)
	}
	if last.fds > first.fds+2 {
		t.Errorf("open files grew from %.0f to %.0f", first.fds, last.fds)
	}
	if last.live > first.live+1<<20 {
		t.Errorf("the live heap grew from %.1f to %.1f MiB", first.live/(1<<20), last.live/(1<<20))
	}
	if last.rss > first.rss+4<<20 {
		t.Errorf("RSS grew from %.1f to %.1f MiB", first.rss/(1<<20), last.rss/(1<<20))
	}

	if err := dev.Stop(); err != nil {
		t.Fatal(err)
	}
	next := awaitDelivered(t, metrics, "local")
	max := checkDelivery(t, broker.Received.All())
	if max != next-1 {
		t.Fatalf("the broker's highest seq is %d, the buffer's last %d", max, next-1)
	}
	t.Logf("every seq from 1 to %d delivered over %v", max, time.Since(start).Round(time.Second))
	if code := g.stop(); code != 0 {
		t.Errorf("clean stop exited %d", code)
	}
}
