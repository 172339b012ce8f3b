package test

import (
	"slices"
	"testing"

	"github.com/fieldgate/fieldgate/test/peers"
)

// TestPollingKeepsEveryCycleDuringADrain: the buffer decouples polling from
// publishing, so the drain of an outage's backlog costs no poll cycle. The
// device's server counts its reads while the backlog goes out over a link
// slower than the polling, and every reading polled, before the drain and
// during it, arrives in seq order.
func TestPollingKeepsEveryCycleDuringADrain(t *testing.T) {
	broker := peers.StartMochi(t)
	broker.Stop()
	link := peers.StartProxy(t, broker.Addr)
	bank, dev := device(t)
	bank.SetHolding(0, 1)
	startGateway(t, writeConfig(t, config(t.TempDir(), upstream("local", link.URL()), dev.Addr, "50ms", onePoint)))

	if !bank.WaitReads(60, wait) {
		t.Fatal("gateway did not poll while the broker was down")
	}
	backlog := uint64(bank.Reads()) // one reading a read, seqs from 1
	// About 100 bytes a reading at 500 bytes/s: the backlog takes over 10 s,
	// the 20 polls counted below take 1 s at the device's pace.
	link.Throttle(500)
	broker.Start()
	broker.Received.Await(t, wait, "the drain's first reading", func(ms []peers.Message) bool {
		return len(seqs(t, prefix, ms)) > 0
	})
	during := bank.Reads()
	if !bank.WaitReads(during+20, wait) {
		t.Fatal("polling stopped during the drain")
	}
	if got := seqs(t, prefix, broker.Received.All()); slices.Contains(got, backlog) {
		t.Fatalf("the backlog (to seq %d) had drained before 20 polls were counted during the drain", backlog)
	}
	link.Throttle(0)
	polled := uint64(bank.Reads())
	broker.Received.Await(t, wait, "every reading polled", func(ms []peers.Message) bool {
		got := seqs(t, prefix, ms)
		return len(got) > 0 && slices.Max(got) >= polled
	})
	checkNoGap(t, seqs(t, prefix, broker.Received.All()))
}
