package sparkplug

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/fieldgate/fieldgate/internal/statefile"
)

// nextBdSeq opens the file, takes one number and closes it, as a gateway
// that connects once per run would.
func nextBdSeq(t *testing.T, path string) uint8 {
	t.Helper()
	b, err := OpenBdSeq(statefile.New(path, BdSeqFormat))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	n, err := b.Next()
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestBdSeqStartsAtZeroAndCountsEveryConnectAcrossRestarts(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sparkplug-scada.bdseq")
	for want := range 3 {
		if got := nextBdSeq(t, path); got != uint8(want) {
			t.Fatalf("run %d: bdSeq %d, want %d", want, got, want)
		}
	}
	b, err := OpenBdSeq(statefile.New(path, BdSeqFormat))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	for want := 3; want < 600; want++ { // reconnects within one run, across the wrap
		if got, err := b.Next(); err != nil || got != uint8(want%256) {
			t.Fatalf("connect %d: bdSeq %d, %v; want %d", want, got, err, want%256)
		}
	}
}

func TestBdSeqRefusesACorruptFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bdseq")
	if err := os.WriteFile(path, []byte("not a state file"), 0o600); err != nil {
		t.Fatal(err)
	}
	f := statefile.New(path, BdSeqFormat)
	if _, err := OpenBdSeq(f); !errors.Is(err, statefile.ErrCorrupt) {
		t.Fatalf("OpenBdSeq on garbage: %v, want ErrCorrupt", err)
	}
	if _, err := f.SetAside(); err != nil {
		t.Fatal(err)
	}
	if got := nextBdSeq(t, path); got != 0 {
		t.Fatalf("after setting it aside, bdSeq %d", got)
	}
}

func TestBdSeqInMemory(t *testing.T) {
	b, err := OpenBdSeq(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	for want := range 3 {
		if got, err := b.Next(); err != nil || got != uint8(want) {
			t.Fatalf("connect %d: bdSeq %d, %v", want, got, err)
		}
	}
}
