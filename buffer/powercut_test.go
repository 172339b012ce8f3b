package buffer

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/fieldgate/fieldgate/internal/durable/crashfs"
	"github.com/fieldgate/fieldgate/internal/reading"
)

const (
	cutDir  = "/var/lib/fieldgate"
	cutBoot = "/proc/boot_id"
)

// cutRun drives one buffer through a chain of simulated power cuts and
// knows, for every seq ever handed out, what was appended under it.
type cutRun struct {
	t      *testing.T
	rng    *rand.Rand
	opts   Options
	fs     *crashfs.FS
	b      *Buffer
	logs   *logBuf
	oracle map[uint64]reading.Reading
	// appended lists each record as Append numbered it, for working out
	// which were durable at a cut.
	appended  []appendedRecord
	handedOut uint64 // one past the highest seq handed out
	cursor    uint64 // upstream "u"'s cursor as acked
	k         int    // poll cycles so far, for distinct values
	// For the log: readings that never became durable and were lost at a
	// cut, and records recovery skipped as corrupt.
	lost, corrupt uint64
}

type appendedRecord struct {
	first, last uint64
	gen         uint64 // b.written after the record
	seg         uint64 // the first seq of the segment it went to
}

// TestPowerCuts runs the buffer's write path over a file layer that forgets
// everything not yet fsynced and tears the last write at a random byte,
// and cuts the power hundreds of times per fsync mode in the middle of
// appends, acks and reads, with readings that carry whole frames inside
// their strings. After every cut the buffer must open; every record that
// was fsynced (with fsync = "always": every acknowledged Append) must be
// there; nothing it returns may be corrupt or foreign; no seq is handed
// out twice; and what was skipped is logged.
func TestPowerCuts(t *testing.T) {
	cuts := 400
	if testing.Short() {
		cuts = 40
	}
	modes(t, func(t *testing.T, opts Options) {
		seed := uint64(time.Now().UnixNano())
		t.Logf("seed %d", seed)
		r := &cutRun{t: t, rng: rand.New(rand.NewPCG(seed, 7)), fs: crashfs.New(seed), oracle: map[uint64]reading.Reading{}}
		opts.FS, opts.BootIDPath = r.fs, cutBoot
		opts.SegmentSize, opts.MaxSize = minSegSize, 16*minSegSize
		opts.FsyncInterval = time.Millisecond
		r.opts = opts
		if err := r.fs.WriteFile(cutBoot, []byte("boot-0\n")); err != nil {
			t.Fatal(err)
		}
		r.open()
		for i := range cuts {
			r.work(1 + r.rng.IntN(40))
			r.cut(i + 1)
		}
		closeBuf(t, r.b)
		t.Logf("%d cuts: %d poll cycles appended, %d readings not yet durable lost at the cuts, %d corrupt records skipped",
			cuts, r.k, r.lost, r.corrupt)
	})
}

func (r *cutRun) open() {
	r.t.Helper()
	var log = r.opts.Logger
	log, r.logs = testLogger()
	opts := r.opts
	opts.Logger = log
	b, err := Open(cutDir, []string{"u"}, opts)
	if err != nil {
		r.t.Fatalf("Open after a power cut: %v\n%s", err, r.logs)
	}
	r.b = b
}

// work appends, acks and reads at random.
func (r *cutRun) work(ops int) {
	r.t.Helper()
	for range ops {
		switch n := r.rng.IntN(10); {
		case n < 7:
			r.append()
		case n < 9 && r.cursor < r.handedOut:
			next := r.cursor + 1 + r.rng.Uint64N(r.handedOut-r.cursor)
			if err := r.b.Ack("u", next); err != nil && !errors.Is(err, ErrAckRange) {
				r.t.Fatalf("Ack: %v", err)
			}
			r.cursor = max(r.cursor, r.b.Cursor("u"))
		default:
			if _, err := r.b.Read("u", r.rng.Uint64N(r.handedOut+1), 1+r.rng.IntN(300)); err != nil {
				r.t.Fatalf("Read: %v", err)
			}
		}
	}
}

// append appends one poll cycle, some of whose strings are whole frames
// a device might smuggle in: frames copied from the log (right key, wrong
// place), frames sealed with a guessed key for the right place, and
// format 1 frames, which need no key.
func (r *cutRun) append() {
	r.t.Helper()
	r.k++
	n := 1 + r.rng.IntN(30)
	rs := make([]reading.Reading, n)
	for i := range rs {
		rs[i] = reading.Reading{Adapter: "a" + fmt.Sprint(r.rng.IntN(3)), Point: fmt.Sprint("p", r.rng.IntN(50)),
			Time: t0.Add(time.Duration(r.k) * time.Second), Value: reading.Float(float64(r.k*1000 + i))}
		if r.rng.IntN(4) == 0 {
			rs[i].Value = reading.String(r.forgery())
		}
	}
	first, last, err := r.b.Append(rs)
	if err != nil {
		r.t.Fatalf("Append: %v", err)
	}
	if first < r.handedOut {
		r.t.Fatalf("Append numbered from %d, but %d was handed out already", first, r.handedOut-1)
	}
	r.b.mu.Lock()
	r.appended = append(r.appended, appendedRecord{first: first, last: last, gen: r.b.written, seg: r.b.tailSeg().first})
	r.b.mu.Unlock()
	for i, rd := range rs {
		rd.Time = readingTime(rd.Time.UnixMicro())
		r.oracle[first+uint64(i)] = rd
	}
	r.handedOut = last + 1
}

func (r *cutRun) forgery() string {
	rs := batch(r.k, 1+r.rng.IntN(3))
	seq := r.handedOut + 1 + r.rng.Uint64N(1<<20)
	switch r.rng.IntN(3) {
	case 0: // a real frame, from the log itself
		r.b.mu.Lock()
		s := r.b.tailSeg()
		frame := encodeRecord(nil, s.seal, s.size, seq, true, nil, []uint32{0}, rs[:1])
		r.b.mu.Unlock()
		return string(frame)
	case 1: // a guessed key, sealed for where the string may land
		r.b.mu.Lock()
		s := r.b.tailSeg()
		at := s.size + int64(r.rng.IntN(400))
		r.b.mu.Unlock()
		guess := &segment{first: s.first}
		guess.useFormat(2, []byte("guessed!"))
		return string(encodeRecord(nil, guess.seal, at, seq, true, nil, []uint32{0}, rs[:1]))
	}
	legacy := &segment{}
	legacy.useFormat(1, nil)
	return string(encodeRecord(nil, legacy.seal, 0, seq, true, nil, []uint32{0}, rs[:1]))
}

// cut cuts the power, reopens the buffer after a reboot and checks what
// recovery kept.
func (r *cutRun) cut(n int) {
	r.t.Helper()
	// Cut between whole operations of the buffer: the file layer tears
	// what was not synced, which is what a cut at any moment leaves.
	b := r.b
	b.syncMu.Lock()
	b.curMu.Lock()
	b.mu.Lock()
	synced, tail, first := b.synced, b.tailSeg().first, b.segs[0].first
	after := r.fs.Cut()
	b.mu.Unlock()
	b.curMu.Unlock()
	b.syncMu.Unlock()
	_ = b.Close() // its writes go to the file system before the cut

	var want []uint64 // every seq that was durable and not given up
	for _, a := range r.appended {
		if a.seg != tail || a.gen <= synced {
			for s := max(a.first, first, r.cursor); s <= a.last; s++ {
				want = append(want, s)
			}
		}
	}
	r.fs = after
	if err := r.fs.WriteFile(cutBoot, []byte(fmt.Sprintf("boot-%d\n", n))); err != nil {
		r.t.Fatal(err)
	}
	r.opts.FS = r.fs
	r.open()

	got := readAll(r.t, r.b, "u", 0, 1000)
	seen := make(map[uint64]bool, len(got))
	for i, e := range got {
		if i > 0 && e.Seq <= got[i-1].Seq {
			r.t.Fatalf("cut %d: seq %d after %d", n, e.Seq, got[i-1].Seq)
		}
		w, ok := r.oracle[e.Seq]
		if !ok || e.Reading != w {
			r.t.Fatalf("cut %d: seq %d read back as %+v, was appended as %+v (known %t)\n%s", n, e.Seq, e.Reading, w, ok, r.logs)
		}
		seen[e.Seq] = true
	}
	for _, s := range want {
		if !seen[s] {
			r.t.Fatalf("cut %d (fsync %s): seq %d was durable but is gone\n%s", n, r.opts.Fsync, s, r.logs)
		}
	}
	if st := r.b.Stats(); st.Next < r.handedOut {
		r.t.Fatalf("cut %d: next seq %d would reuse seqs up to %d", n, st.Next, r.handedOut-1)
	}
	if st := r.b.Stats(); st.Corrupt > 0 && !strings.Contains(r.logs.String(), "level=WARN") {
		r.t.Fatalf("cut %d: %d corrupt records skipped without a warning", n, st.Corrupt)
	}
	r.corrupt += r.b.Stats().Corrupt
	r.appended = r.appended[:0] // what survived is durable now, or lost for good
	for s := range r.oracle {
		if !seen[s] {
			if s >= max(first, r.cursor) {
				r.lost++
			}
			delete(r.oracle, s)
		}
	}
	for _, e := range got {
		r.appended = append(r.appended, appendedRecord{first: e.Seq, last: e.Seq, seg: 0})
	}
	r.cursor = max(r.cursor, r.b.Cursor("u"))
}

// TestDroppedCountsOnlyReadingsThatExisted: after a power cut seq jumps
// past the reservation; when the size cap later evicts the segments from
// before the cut, the drop counter counts the readings they held, not the
// seqs skipped.
func TestDroppedCountsOnlyReadingsThatExisted(t *testing.T) {
	opts := Options{BootIDPath: cutBoot, Fsync: FsyncAlways, SegmentSize: minSegSize, MaxSize: 8 * minSegSize}
	after, before := cutAfterFilling(t, opts) // 300 readings no upstream has
	opts.FS = after
	b := open(t, cutDir, []string{"u"}, opts)
	defer closeBuf(t, b)
	if st := b.Stats(); st.Next <= before || st.Next-before < reserveBlock/2 {
		t.Fatalf("next seq %d after the cut, want a jump past %d", st.Next, before)
	}
	for b.Stats().First < before { // until every reading from before is evicted
		if _, _, err := b.Append(batch(99, 10)); err != nil {
			t.Fatal(err)
		}
	}
	st := b.Stats()
	if st.Dropped != before-1 {
		t.Fatalf("dropped %d, want the %d readings that existed before the cut (not the %d seqs skipped)",
			st.Dropped, before-1, st.First-before)
	}
}

// TestOpenAfterAPowerCutWithTheDiskFull: the power cut comes during an
// outage that filled the disk; at the next start the new segment after the
// skipped seqs finds no room, and the oldest readings make it, as an Append
// would, rather than the buffer refusing to open.
func TestOpenAfterAPowerCutWithTheDiskFull(t *testing.T) {
	opts := Options{BootIDPath: cutBoot, Fsync: FsyncAlways, SegmentSize: minSegSize, MaxSize: 64 * minSegSize}
	after, _ := cutAfterFilling(t, opts)
	after.SetLimit(after.Used() + 8) // no room for a segment's header
	opts.FS = after
	b := open(t, cutDir, []string{"u"}, opts)
	defer func() { _ = b.Close() }() // the disk is still all but full: the state files may not fit
	if st := b.Stats(); st.Dropped == 0 {
		t.Errorf("opened on a full disk with nothing evicted: %+v", st)
	}
	if _, _, err := b.Append(batch(99, 10)); err != nil {
		t.Errorf("append after opening on a full disk: %v", err)
	}
}

// cutAfterFilling opens a buffer with opts on a file system booted as
// boot-A, appends 300 readings, all synced, and cuts the power; it returns
// the file system as the next boot, boot-B, finds it, and the buffer's
// next seq before the cut.
func cutAfterFilling(t *testing.T, opts Options) (*crashfs.FS, uint64) {
	t.Helper()
	c := crashfs.New(1)
	if err := c.WriteFile(cutBoot, []byte("boot-A\n")); err != nil {
		t.Fatal(err)
	}
	opts.FS = c
	b := open(t, cutDir, []string{"u"}, opts)
	appendBatches(t, b, 0, 30, 10)
	next := b.Stats().Next
	after := c.Cut()
	_ = b.Close()
	if err := after.WriteFile(cutBoot, []byte("boot-B\n")); err != nil {
		t.Fatal(err)
	}
	return after, next
}
