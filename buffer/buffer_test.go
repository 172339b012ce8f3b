package buffer

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fieldgate/fieldgate/internal/reading"

	"github.com/fieldgate/fieldgate/internal/statefile"
)

// logBuf collects log output so tests can check what was reported.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func testLogger() (*slog.Logger, *logBuf) {
	lb := &logBuf{}
	return slog.New(slog.NewTextHandler(lb, &slog.HandlerOptions{Level: slog.LevelDebug})), lb
}

func open(t testing.TB, dir string, ups []string, opts Options) *Buffer {
	t.Helper()
	b, err := Open(dir, ups, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return b
}

func closeBuf(t testing.TB, b *Buffer) {
	t.Helper()
	if err := b.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

var t0 = time.Date(2026, 11, 21, 23, 0, 0, 123456000, time.UTC)

// batch makes one poll cycle of n float readings; cycle k, reading i has
// value k*1000+i, so any entry can be checked against its seq.
func batch(k, n int) []reading.Reading {
	rs := make([]reading.Reading, n)
	for i := range rs {
		rs[i] = newReading(k, i)
	}
	return rs
}

func newReading(k, i int) reading.Reading {
	return reading.Reading{
		Adapter: "boiler",
		Point:   "p" + strconv.Itoa(i),
		Time:    t0.Add(time.Duration(k)*time.Second + time.Duration(i)*time.Millisecond),
		Value:   reading.Float(float64(k*1000 + i)),
	}
}

// checkBatchEntry checks an entry written by batch(k, n) with seqs from 1.
func checkBatchEntry(t testing.TB, e Entry, n int) {
	t.Helper()
	want := newReading(int(e.Seq-1)/n, int(e.Seq-1)%n)
	if e.Adapter != want.Adapter || e.Point != want.Point || !e.Time.Equal(want.Time) || e.Value != want.Value {
		t.Fatalf("seq %d: got %+v, want %+v", e.Seq, e.Reading, want)
	}
}

func appendBatches(t testing.TB, b *Buffer, from, count, n int) {
	t.Helper()
	for k := from; k < from+count; k++ {
		first, last, err := b.Append(batch(k, n))
		if err != nil {
			t.Fatalf("Append: %v", err)
		}
		if last-first+1 != uint64(n) {
			t.Fatalf("Append numbered %d..%d for %d readings", first, last, n)
		}
	}
}

// readAll reads everything from from on in chunks of chunk.
func readAll(t testing.TB, b *Buffer, up string, from uint64, chunk int) []Entry {
	t.Helper()
	var all []Entry
	for {
		es, err := b.Read(up, from, chunk)
		if err != nil {
			t.Fatalf("Read: %v", err)
		}
		if len(es) == 0 {
			return all
		}
		if len(es) > chunk {
			t.Fatalf("Read returned %d > max %d", len(es), chunk)
		}
		all = append(all, es...)
		from = es[len(es)-1].Seq + 1
	}
}

// checkContiguous checks entries are seqs first, first+1, … and match batch.
func checkContiguous(t testing.TB, es []Entry, first uint64, n int) {
	t.Helper()
	for i, e := range es {
		if e.Seq != first+uint64(i) {
			t.Fatalf("entry %d has seq %d, want %d", i, e.Seq, first+uint64(i))
		}
		checkBatchEntry(t, e, n)
	}
}

func TestParseFsync(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want FsyncMode
		err  bool
	}{
		{"always", FsyncAlways, false},
		{"interval", FsyncInterval, false},
		{"never", FsyncNever, false},
		{"Always", 0, true},
		{"", 0, true},
	} {
		got, err := ParseFsync(tc.in)
		if (err != nil) != tc.err || got != tc.want {
			t.Errorf("ParseFsync(%q) = %v, %v", tc.in, got, err)
		}
		if err != nil && !errors.Is(err, ErrBadFsync) {
			t.Errorf("ParseFsync(%q) error %v is not ErrBadFsync", tc.in, err)
		}
		if err == nil && got.String() != tc.in {
			t.Errorf("%v.String() = %q", got, got.String())
		}
	}
}

// modes runs a conformance case under every fsync mode.
func modes(t *testing.T, fn func(t *testing.T, opts Options)) {
	for _, m := range []FsyncMode{FsyncAlways, FsyncInterval, FsyncNever} {
		t.Run(m.String(), func(t *testing.T) {
			fn(t, Options{Fsync: m, FsyncInterval: 10 * time.Millisecond, BootIDPath: writeBootID(t, "boot-1")})
		})
	}
}

func writeBootID(t testing.TB, id string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "boot_id")
	if err := os.WriteFile(p, []byte(id+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestAppendReadAck(t *testing.T) {
	modes(t, func(t *testing.T, opts Options) {
		b := open(t, t.TempDir(), []string{"cloud"}, opts)
		defer closeBuf(t, b)
		if es, err := b.Read("cloud", 0, 10); err != nil || len(es) != 0 {
			t.Fatalf("empty Read = %v, %v", es, err)
		}
		if f, l, err := b.Append(nil); f != 0 || l != 0 || err != nil {
			t.Fatalf("Append(nil) = %d, %d, %v", f, l, err)
		}
		appendBatches(t, b, 0, 3, 5)
		if c := b.Cursor("cloud"); c != 1 {
			t.Fatalf("cursor %d, want 1", c)
		}
		es, err := b.Read("cloud", 0, 7) // from below the oldest is clamped
		if err != nil || len(es) != 7 {
			t.Fatalf("Read = %d entries, %v", len(es), err)
		}
		checkContiguous(t, es, 1, 5)
		es, _ = b.Read("cloud", 13, 100)
		checkContiguous(t, es, 13, 5)
		if len(es) != 3 {
			t.Fatalf("Read from 13 gave %d entries, want 3", len(es))
		}
		if es, _ := b.Read("cloud", 16, 100); len(es) != 0 {
			t.Fatalf("Read past the end gave %d entries", len(es))
		}
		if err := b.Ack("cloud", 8); err != nil {
			t.Fatal(err)
		}
		if err := b.Ack("cloud", 5); err != nil { // behind the cursor: no-op
			t.Fatal(err)
		}
		if c := b.Cursor("cloud"); c != 8 {
			t.Fatalf("cursor %d, want 8", c)
		}
		if err := b.Ack("cloud", 17); !errors.Is(err, ErrAckRange) {
			t.Fatalf("Ack past the end: %v", err)
		}
		if err := b.Ack("nope", 1); !errors.Is(err, ErrUnknownUpstream) {
			t.Fatalf("Ack unknown upstream: %v", err)
		}
		if _, err := b.Read("nope", 1, 1); !errors.Is(err, ErrUnknownUpstream) {
			t.Fatalf("Read unknown upstream: %v", err)
		}
		st := b.Stats()
		if st.First != 1 || st.Next != 16 || st.Cursors["cloud"] != 8 || st.Bytes <= segHeaderLen {
			t.Fatalf("Stats = %+v", st)
		}
	})
}

func TestReadFromDiskAcrossSegments(t *testing.T) {
	modes(t, func(t *testing.T, opts Options) {
		opts.SegmentSize = 16 << 10
		b := open(t, t.TempDir(), []string{"cloud"}, opts)
		defer closeBuf(t, b)
		const n = 50
		appendBatches(t, b, 0, 200, n) // 10000 readings: most are only on disk
		if len(b.segs) < 5 {
			t.Fatalf("%d segments, want several", len(b.segs))
		}
		for _, chunk := range []int{1, 37, 1000} {
			es := readAll(t, b, "cloud", 0, chunk)
			if len(es) != 200*n {
				t.Fatalf("chunk %d: read %d entries, want %d", chunk, len(es), 200*n)
			}
			checkContiguous(t, es, 1, n)
		}
		// Start in the middle of a record in the middle of a segment.
		es, _ := b.Read("cloud", 4321, 5)
		checkContiguous(t, es, 4321, n)
	})
}

// TestReadFromCache reads recent records, which the cache serves, in
// every chunk: within a record (shared with the cache), across records
// (copied) and past the newest; an append to what Read returned must not
// reach the entries the cache serves next.
func TestReadFromCache(t *testing.T) {
	b := open(t, t.TempDir(), []string{"cloud"}, Options{})
	defer closeBuf(t, b)
	const n = 50
	appendBatches(t, b, 0, 20, n)
	for _, chunk := range []int{1, 7, n, n + 1, 3 * n, 2000} {
		es := readAll(t, b, "cloud", 0, chunk)
		if len(es) != 20*n {
			t.Fatalf("chunk %d: read %d entries, want %d", chunk, len(es), 20*n)
		}
		checkContiguous(t, es, 1, n)
	}
	es, _ := b.Read("cloud", 3, 10) // within the first record
	_ = append(es, Entry{Seq: 999})
	es, _ = b.Read("cloud", 13, 1)
	checkContiguous(t, es, 13, n)
}

func TestValueKindsRoundTrip(t *testing.T) {
	vals := []reading.Value{
		reading.Float(21.5), reading.Float(math.Inf(-1)), reading.Float(math.NaN()),
		reading.Int(-1 << 62), reading.Int(7), reading.Uint(math.MaxUint64),
		reading.Bool(true), reading.Bool(false), reading.String(""), reading.String("héllo\x00"),
		{}, reading.FromBits(200, 12345),
	}
	var rs []reading.Reading
	for i, v := range vals {
		rs = append(rs, reading.Reading{Adapter: "a", Point: fmt.Sprint("k", i), Time: t0.Add(-time.Duration(i) * time.Hour), Value: v})
	}
	rs = append(rs, reading.Reading{Adapter: "", Point: "", Time: time.Time{}, Value: reading.Int(1)})
	dir := t.TempDir()
	b := open(t, dir, []string{"u"}, Options{})
	if _, _, err := b.Append(rs); err != nil {
		t.Fatal(err)
	}
	cached, _ := b.Read("u", 1, 100)
	closeBuf(t, b)
	b = open(t, dir, []string{"u"}, Options{})
	defer closeBuf(t, b)
	disk, _ := b.Read("u", 1, 100)
	if len(disk) != len(rs) || len(cached) != len(rs) {
		t.Fatalf("read %d from disk, %d cached, want %d", len(disk), len(cached), len(rs))
	}
	for i, r := range rs {
		for _, e := range []Entry{disk[i], cached[i]} {
			if e.Adapter != r.Adapter || e.Point != r.Point || !e.Time.Equal(r.Time) ||
				e.Value.Kind() != r.Value.Kind() || e.Value.Bits() != r.Value.Bits() || e.Value.Str() != r.Value.Str() {
				t.Errorf("reading %d: got %+v, want %+v", i, e.Reading, r)
			}
		}
		if disk[i].Time != cached[i].Time {
			t.Errorf("reading %d: disk time %v, cached %v", i, disk[i].Time, cached[i].Time)
		}
	}
}

func TestEncodedSizePerReading(t *testing.T) {
	const n = 200
	ids := make([]uint32, n)
	for i := range ids {
		ids[i] = uint32(i)
	}
	rec := encodeRecord(nil, testSegment().seal, segHeaderLen, 1<<30, false, nil, ids, batch(3, n))
	if per := float64(len(rec)) / n; per > 24 {
		t.Fatalf("%.1f bytes per float reading, target is at most 24", per)
	}
}

func TestTwoUpstreamsReleaseSpace(t *testing.T) {
	modes(t, func(t *testing.T, opts Options) {
		opts.SegmentSize = 8 << 10
		b := open(t, t.TempDir(), []string{"a", "b"}, opts)
		defer closeBuf(t, b)
		appendBatches(t, b, 0, 100, 20)
		full := b.Stats().Bytes
		next := b.Stats().Next
		if es := readAll(t, b, "a", 0, 500); len(es) != 2000 {
			t.Fatalf("a read %d", len(es))
		}
		if err := b.Ack("a", next); err != nil {
			t.Fatal(err)
		}
		if got := b.Stats().Bytes; got != full {
			t.Fatalf("bytes %d after only a acked, want %d kept for b", got, full)
		}
		if es, _ := b.Read("b", 0, 1); len(es) != 1 || es[0].Seq != 1 {
			t.Fatalf("b lost its backlog: %v", es)
		}
		if err := b.Ack("b", next/2); err != nil {
			t.Fatal(err)
		}
		half := b.Stats().Bytes
		if half >= full {
			t.Fatalf("bytes %d after b acked half, want below %d", half, full)
		}
		if err := b.Ack("b", next); err != nil {
			t.Fatal(err)
		}
		st := b.Stats()
		if st.Bytes > opts.SegmentSize+4096 || st.Dropped != 0 {
			t.Fatalf("after both acked: %+v, want at most one segment", st)
		}
		if es, _ := b.Read("a", b.Cursor("a"), 10); len(es) != 0 {
			t.Fatalf("read %d entries past the cursor", len(es))
		}
	})
}

func TestSizeCapDropsOldest(t *testing.T) {
	log, lb := testLogger()
	b := open(t, t.TempDir(), []string{"slow", "fast"}, Options{MaxSize: 64 << 10, SegmentSize: 8 << 10, Fsync: FsyncNever, Logger: log})
	defer closeBuf(t, b)
	for k := range 300 {
		appendBatches(t, b, k, 1, 20)
		_ = b.Ack("fast", b.Stats().Next) // fast keeps up; slow never acks
	}
	st := b.Stats()
	if st.Bytes > 64<<10 {
		t.Fatalf("bytes %d exceed the cap", st.Bytes)
	}
	if st.Dropped == 0 || st.Dropped != st.First-1 {
		t.Fatalf("Dropped %d, First %d: want every seq below First counted", st.Dropped, st.First)
	}
	if st.Cursors["slow"] != st.First {
		t.Fatalf("slow cursor %d, want moved to First %d", st.Cursors["slow"], st.First)
	}
	es := readAll(t, b, "slow", 0, 1000)
	checkContiguous(t, es, st.First, 20)
	if uint64(len(es)) != st.Next-st.First {
		t.Fatalf("read %d, want %d", len(es), st.Next-st.First)
	}
	out := lb.String()
	if !strings.Contains(out, "oldest readings dropped") || !strings.Contains(out, "upstreams_behind=[slow]") {
		t.Fatalf("no drop warning naming slow in log:\n%s", out)
	}
	if lines := strings.Count(out, "oldest readings dropped"); lines > 100 {
		t.Fatalf("%d drop log lines for %d readings dropped; want one per segment", lines, st.Dropped)
	}
}

func TestRestartContinuity(t *testing.T) {
	modes(t, func(t *testing.T, opts Options) {
		dir := t.TempDir()
		b := open(t, dir, []string{"a", "b"}, opts)
		appendBatches(t, b, 0, 10, 7)
		if err := b.Ack("a", 30); err != nil {
			t.Fatal(err)
		}
		closeBuf(t, b)
		if err := b.Close(); !errors.Is(err, ErrClosed) {
			t.Fatalf("second Close: %v", err)
		}
		if _, _, err := b.Append(batch(0, 1)); !errors.Is(err, ErrClosed) {
			t.Fatalf("Append after Close: %v", err)
		}

		// A reboot between a clean stop and the next start changes nothing.
		opts.BootIDPath = writeBootID(t, "boot-2")
		b = open(t, dir, []string{"a", "b", "c"}, opts)
		defer closeBuf(t, b)
		st := b.Stats()
		if st.Next != 71 || st.Cursors["a"] != 30 || st.Cursors["b"] != 1 || st.Cursors["c"] != 1 {
			t.Fatalf("after restart: %+v", st)
		}
		first, _, err := b.Append(batch(10, 7))
		if err != nil || first != 71 {
			t.Fatalf("Append after restart = %d, %v; want 71", first, err)
		}
		checkContiguous(t, readAll(t, b, "b", 0, 16), 1, 7)
	})
}

func TestSetUpstreams(t *testing.T) {
	b := open(t, t.TempDir(), []string{"a", "old"}, Options{SegmentSize: 8 << 10, Fsync: FsyncNever})
	defer closeBuf(t, b)
	appendBatches(t, b, 0, 50, 20)
	next := b.Stats().Next
	if err := b.Ack("a", next); err != nil {
		t.Fatal(err)
	}
	full := b.Stats().Bytes
	if err := b.SetUpstreams([]string{"a", "new"}); err != nil {
		t.Fatal(err)
	}
	st := b.Stats()
	if _, ok := st.Cursors["old"]; ok || st.Cursors["new"] != st.First || st.Cursors["a"] != next {
		t.Fatalf("cursors after reload: %+v", st.Cursors)
	}
	if st.Bytes != full {
		t.Fatalf("data released while new still needs it")
	}
	if err := b.SetUpstreams([]string{"a"}); err != nil {
		t.Fatal(err)
	}
	if b.Stats().Bytes >= full {
		t.Fatalf("removing the last lagging upstream released nothing")
	}
}

func TestChanged(t *testing.T) {
	b := open(t, t.TempDir(), []string{"u"}, Options{Fsync: FsyncNever})
	ch := b.Changed()
	select {
	case <-ch:
		t.Fatal("Changed closed before any Append")
	default:
	}
	done := make(chan uint64)
	go func() {
		<-ch
		es, _ := b.Read("u", 0, 10)
		done <- es[0].Seq
	}()
	appendBatches(t, b, 0, 1, 3)
	select {
	case seq := <-done:
		if seq != 1 {
			t.Fatalf("woken reader read seq %d", seq)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Changed not closed by Append")
	}
	ch = b.Changed()
	closeBuf(t, b)
	select {
	case <-ch:
	case <-time.After(5 * time.Second):
		t.Fatal("Changed not closed by Close")
	}
	if _, err := b.Read("u", 0, 1); !errors.Is(err, ErrClosed) {
		t.Fatalf("Read after Close: %v", err)
	}
}

func TestLockedDir(t *testing.T) {
	dir := t.TempDir()
	b := open(t, dir, nil, Options{})
	defer closeBuf(t, b)
	if _, err := Open(dir, nil, Options{}); !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open: %v, want ErrLocked", err)
	}
}

func TestConcurrentAppendRead(t *testing.T) {
	modes(t, func(t *testing.T, opts Options) {
		opts.SegmentSize = 32 << 10
		b := open(t, t.TempDir(), []string{"a", "b"}, opts)
		const writers, cycles, n = 4, 100, 10
		total := uint64(writers * cycles * n)
		var wg sync.WaitGroup
		for w := range writers {
			wg.Go(func() {
				for k := range cycles {
					rs := batch(k, n)
					for i := range rs {
						rs[i].Adapter = fmt.Sprint("w", w)
					}
					if _, _, err := b.Append(rs); err != nil {
						t.Error(err)
						return
					}
				}
			})
		}
		errs := make(chan error, 2)
		for _, up := range []string{"a", "b"} {
			wg.Go(func() {
				errs <- drain(b, up, total)
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		closeBuf(t, b)
	})
}

// drain reads and acks like a bridge until want readings have arrived,
// checking that seqs are contiguous and each cycle's readings stay together.
func drain(b *Buffer, up string, want uint64) error {
	deadline := time.After(30 * time.Second)
	next := uint64(1)
	for next <= want {
		ch := b.Changed()
		es, err := b.Read(up, next, 64)
		if err != nil {
			return err
		}
		for _, e := range es {
			if e.Seq != next {
				return fmt.Errorf("%s: seq %d, want %d", up, e.Seq, next)
			}
			next++
		}
		if err := b.Ack(up, next); err != nil {
			return err
		}
		if len(es) == 0 {
			select {
			case <-ch:
			case <-deadline:
				return fmt.Errorf("%s: stuck at %d of %d", up, next, want)
			}
		}
	}
	return nil
}

func TestFsyncModes(t *testing.T) {
	t.Run("always syncs before Append returns, sharing fsyncs", func(t *testing.T) {
		b := open(t, t.TempDir(), []string{"u"}, Options{Fsync: FsyncAlways})
		defer closeBuf(t, b)
		appendBatches(t, b, 0, 10, 2)
		if s := b.Stats().Syncs; s < 10 {
			t.Fatalf("%d syncs for 10 sequential appends", s)
		}
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				for k := range 20 {
					if _, _, err := b.Append(batch(k, 2)); err != nil {
						t.Error(err)
					}
				}
			})
		}
		wg.Wait()
		if b.synced != b.written {
			t.Fatalf("synced %d of %d bytes after every Append returned", b.synced, b.written)
		}
		t.Logf("%d fsyncs for 170 appends", b.Stats().Syncs)
	})
	t.Run("interval syncs in the background and saves cursors", func(t *testing.T) {
		synced, afterSync := signal()
		dir := t.TempDir()
		b := open(t, dir, []string{"u"}, Options{Fsync: FsyncInterval, FsyncInterval: 5 * time.Millisecond, afterSync: afterSync})
		defer closeBuf(t, b)
		appendBatches(t, b, 0, 3, 2)
		if err := b.Ack("u", 5); err != nil {
			t.Fatal(err)
		}
		waitFor(t, synced, b.allSynced)
		if s := b.Stats().Syncs; s == 0 {
			t.Fatal("no fsync counted")
		}
		waitFor(t, synced, func() bool { return savedCursors(t, dir)["u"] == 5 })
	})
	t.Run("interval syncs at once what comes near the interval's end", func(t *testing.T) {
		// A poll every interval has its record synced as it is written,
		// not up to an interval later at a tick of the writer's own.
		synced, afterSync := signal()
		var elapsed atomic.Int64
		start := time.Now()
		dir := t.TempDir()
		b := open(t, dir, []string{"u"}, Options{Fsync: FsyncInterval, FsyncInterval: time.Hour, afterSync: afterSync,
			now: func() time.Time { return start.Add(time.Duration(elapsed.Load())) }})
		defer closeBuf(t, b)
		elapsed.Store(int64(55 * time.Minute)) // the hour's deadline is far off
		appendBatches(t, b, 0, 1, 2)
		waitFor(t, synced, b.allSynced)
		if err := b.Ack("u", 2); err != nil {
			t.Fatal(err)
		}
		elapsed.Store(int64(110 * time.Minute))
		appendBatches(t, b, 1, 1, 2)
		waitFor(t, synced, func() bool { return b.allSynced() && savedCursors(t, dir)["u"] == 2 })
	})
	t.Run("never syncs only at Close", func(t *testing.T) {
		dir := t.TempDir()
		b := open(t, dir, []string{"u"}, Options{Fsync: FsyncNever})
		appendBatches(t, b, 0, 10, 2)
		if err := b.Ack("u", 7); err != nil {
			t.Fatal(err)
		}
		if s := b.Stats().Syncs; s != 0 {
			t.Fatalf("%d syncs in never mode", s)
		}
		if c := savedCursors(t, dir)["u"]; c == 7 {
			t.Fatalf("cursor saved before Close in never mode")
		}
		closeBuf(t, b)
		if c := savedCursors(t, dir)["u"]; c != 7 {
			t.Fatalf("saved cursor %d after Close, want 7", c)
		}
	})
}

// waitFor waits for cond, re-checking after each interval sync.
// signal returns a channel and a function that sends to it without
// blocking, for a test hook to wake waitFor.
func signal() (chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	return ch, func() {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// allSynced reports whether b's log is synced as far as it is written.
func (b *Buffer) allSynced() bool {
	b.syncMu.Lock()
	s := b.synced
	b.syncMu.Unlock()
	b.mu.Lock()
	defer b.mu.Unlock()
	return s == b.written
}

func waitFor(t *testing.T, tick <-chan struct{}, cond func() bool) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for !cond() {
		select {
		case <-tick:
		case <-deadline:
			t.Fatal("condition not met within 10s")
		}
	}
}

func savedCursors(t testing.TB, dir string) map[string]uint64 {
	t.Helper()
	sf := statefile.New(filepath.Join(dir, cursorFileName), stateFormat)
	defer sf.Close()
	body, err := sf.Load()
	if errors.Is(err, fs.ErrNotExist) {
		return nil // never saved
	}
	if err != nil {
		t.Fatal(err)
	}
	c, err := decodeCursors(body)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestStateFileCorruptOrMissing(t *testing.T) {
	for _, tc := range []struct {
		name   string
		damage func(dir string) error
	}{
		{"missing", func(dir string) error { return os.Remove(filepath.Join(dir, seqFileName)) }},
		{"garbage", func(dir string) error {
			return os.WriteFile(filepath.Join(dir, seqFileName), bytes.Repeat([]byte{0xAB}, 8192), 0o600)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			opts := Options{BootIDPath: writeBootID(t, "x")}
			b := open(t, dir, []string{"u"}, opts)
			appendBatches(t, b, 0, 2, 5)
			closeBuf(t, b)
			if err := tc.damage(dir); err != nil {
				t.Fatal(err)
			}
			log, lb := testLogger()
			opts.Logger = log
			b = open(t, dir, []string{"u"}, opts)
			defer closeBuf(t, b)
			if next := b.Stats().Next; next <= 11 {
				t.Fatalf("Next %d: without seq state seq must skip ahead, never reuse", next)
			}
			if !strings.Contains(lb.String(), "seq state") {
				t.Fatalf("no warning about the seq state:\n%s", lb)
			}
			checkContiguous(t, readAll(t, b, "u", 0, 100), 1, 5)
		})
	}
}

func TestCursorFileCorrupt(t *testing.T) {
	dir := t.TempDir()
	b := open(t, dir, []string{"u"}, Options{})
	appendBatches(t, b, 0, 2, 5)
	if err := b.Ack("u", 8); err != nil {
		t.Fatal(err)
	}
	closeBuf(t, b)
	if err := os.WriteFile(filepath.Join(dir, cursorFileName), []byte("junk"), 0o600); err != nil {
		t.Fatal(err)
	}
	b = open(t, dir, []string{"u"}, Options{})
	defer closeBuf(t, b)
	if c := b.Cursor("u"); c != 1 {
		t.Fatalf("cursor %d after losing the cursor file, want the oldest (1)", c)
	}
}
