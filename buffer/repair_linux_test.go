package buffer

import (
	"strings"
	"syscall"
	"testing"
)

// TestRepairWithoutRoomForEvidence: when the copy of a damaged segment
// cannot be written (here the kernel refuses writes past 8 KiB with EFBIG,
// as a full disk refuses them with ENOSPC), the failure is logged, no
// partial copy is left, and the repair goes ahead: the buffer opens with
// every frame that verifies. The limit is the process's, so this test is
// never parallel and lifts it as soon as Open returns.
func TestRepairWithoutRoomForEvidence(t *testing.T) {
	modes(t, func(t *testing.T, opts Options) {
		dir := t.TempDir()
		b := open(t, dir, []string{"u"}, opts)
		appendBatches(t, b, 0, 200, 5)
		next := b.Stats().Next
		closeBuf(t, b)
		_, tail := logEndOnDisk(t, dir)
		// State files are two 4 KiB slots, so 8 KiB leaves their saves room.
		const limit = 8 << 10
		if tail.size <= limit {
			t.Fatalf("tail of %d bytes would fit under the %d-byte limit", tail.size, limit)
		}
		smashHeader(t, tail.path, frameOffsets(t, tail.path))

		var old syscall.Rlimit
		if err := syscall.Getrlimit(syscall.RLIMIT_FSIZE, &old); err != nil {
			t.Fatal(err)
		}
		lim := old
		lim.Cur = limit
		if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &lim); err != nil {
			t.Fatal(err)
		}
		log, lb := testLogger()
		opts.Logger = log
		b, err := Open(dir, []string{"u"}, opts)
		if rerr := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &old); rerr != nil {
			t.Fatal(rerr)
		}
		if err != nil {
			t.Fatalf("Open with no room for evidence: %v", err)
		}
		defer closeBuf(t, b)
		out := lb.String()
		if !strings.Contains(out, "segment header damaged") || !strings.Contains(out, "evidence_error=") {
			t.Fatalf("want the repair warning with the copy's error:\n%s", out)
		}
		if got := evidenceFiles(t, dir); len(got) != 0 {
			t.Fatalf("partial copies left behind: %v", got)
		}
		es := readAll(t, b, "u", 0, 256)
		if uint64(len(es)) != next-1 {
			t.Fatalf("read %d readings, want all %d", len(es), next-1)
		}
		checkContiguous(t, es, 1, 5)
		if c := b.Stats().Corrupt; c != 1 {
			t.Fatalf("Corrupt = %d, want 1", c)
		}
		if h := readFile(t, tail.path)[:len(segHeaderV2)]; string(h) != segHeaderV2 {
			t.Fatalf("header %q not rewritten", h)
		}
	})
}
