package buffer

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fieldgate/fieldgate/test/peers"
)

// TestDiskFull fills a real file system, a small tmpfs, long before
// max_size: appends go on, each evicting the oldest readings to make room
// (counted as dropped, logged once for the episode), a segment that could
// not be started leaves no file behind, and once space returns writes find
// room without a restart.
func TestDiskFull(t *testing.T) {
	modes(t, func(t *testing.T, opts Options) {
		dir := peers.Tmpfs(t, 512<<10)
		filler := filepath.Join(dir, "filler")
		if err := os.WriteFile(filler, make([]byte, 192<<10), 0o600); err != nil {
			t.Fatal(err)
		}
		log, lb := testLogger()
		opts.Logger, opts.MaxSize, opts.SegmentSize = log, 64<<20, 32<<10
		b := open(t, filepath.Join(dir, "buffer"), []string{"u"}, opts)
		defer closeBuf(t, b)

		k := 0
		appendOne := func() {
			t.Helper()
			if _, _, err := b.Append(batch(k, 20)); err != nil {
				t.Fatalf("Append %d on a full disk: %v", k, err)
			}
			k++
		}
		for deadline := time.Now().Add(30 * time.Second); b.Stats().Dropped == 0; {
			if time.Now().After(deadline) {
				t.Fatal("the disk never filled")
			}
			appendOne()
		}
		for range 2000 { // about 5 more segments' worth, each evicting one
			appendOne()
		}
		st := b.Stats()
		if n := strings.Count(lb.String(), "file system full"); n != 1 {
			t.Errorf("%d warnings of a full file system, want one per episode:\n%s", n, lb)
		}
		if st.Dropped != st.First-1 {
			t.Errorf("dropped %d, want the %d readings evicted", st.Dropped, st.First-1)
		}
		checkNoDebris(t, b)
		es := readAll(t, b, "u", 0, 1000)
		if len(es) == 0 || es[0].Seq != st.First || es[len(es)-1].Seq != st.Next-1 {
			t.Fatalf("read %d readings, want %d..%d", len(es), st.First, st.Next-1)
		}
		checkContiguous(t, es, st.First, 20)

		// Space returns: a whole segment finds room without evicting.
		if err := os.Remove(filler); err != nil {
			t.Fatal(err)
		}
		dropped := st.Dropped
		for !strings.Contains(lb.String(), "has room again") {
			appendOne()
		}
		for range 500 {
			appendOne()
		}
		if d := b.Stats().Dropped; d != dropped {
			t.Errorf("%d more readings dropped with room on the disk", d-dropped)
		}
	})
}

// checkNoDebris checks that every segment file in the directory is one the
// buffer knows, none left behind by a segment that could not be started.
func checkNoDebris(t *testing.T, b *Buffer) {
	t.Helper()
	segs, err := listSegments(b.fs, b.dir)
	if err != nil {
		t.Fatal(err)
	}
	b.mu.Lock()
	known := len(b.segs)
	b.mu.Unlock()
	if len(segs) != known {
		t.Errorf("%d segment files, the buffer knows %d", len(segs), known)
	}
}
