package buffer

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fieldgate/fieldgate/internal/durable"
)

const (
	childDirEnv  = "FG_BUFFER_CRASH_DIR"
	childBootEnv = "FG_BUFFER_CRASH_BOOT_ID"
	childBatch   = 10
)

func TestMain(m *testing.M) {
	if dir := os.Getenv(childDirEnv); dir != "" {
		os.Exit(crashChild(dir))
	}
	os.Exit(m.Run())
}

// crashChild appends poll cycles without fsync, printing each cycle's last
// seq once Append has returned, until it is killed (or a minute passes, so
// an orphan cannot run on).
func crashChild(dir string) int {
	b, err := Open(dir, []string{"u"}, Options{Fsync: FsyncNever, SegmentSize: 16 << 10, BootIDPath: os.Getenv(childBootEnv)})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	for k, end := 0, time.Now().Add(time.Minute); time.Now().Before(end); k++ {
		_, last, err := b.Append(batch(k, childBatch))
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		fmt.Println(last)
	}
	return 0
}

// killChildAfter runs crashChild on dir and SIGKILLs it mid-append once it
// has reported cycles cycles; it returns the last seq reported.
func killChildAfter(t *testing.T, dir, bootPath string, cycles int) uint64 {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), childDirEnv+"="+dir, childBootEnv+"="+bootPath)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var last uint64
	sc := bufio.NewScanner(out)
	for n := 0; n < cycles && sc.Scan(); n++ {
		if last, err = strconv.ParseUint(sc.Text(), 10, 64); err != nil {
			t.Fatalf("child said %q", sc.Text())
		}
	}
	if err := cmd.Process.Kill(); err != nil { // SIGKILL: no deferred cleanup, no Close
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, out)
	_ = cmd.Wait() // "signal: killed"
	if last < uint64(cycles*childBatch) {
		t.Fatalf("child reported seq %d, want %d cycles; stderr:\n%s", last, cycles, stderr.String())
	}
	return last
}

// logEndOnDisk returns the seq after the last intact record, as the page
// cache holds it, and the newest segment. After a power cut the newest
// segment may be empty, started past seqs that were skipped: the end is
// then the previous segment's.
func logEndOnDisk(t *testing.T, dir string) (uint64, *segment) {
	t.Helper()
	segs, err := listSegments(durable.OS, dir)
	if err != nil || len(segs) == 0 {
		t.Fatalf("segments: %v, %v", segs, err)
	}
	tail := segs[len(segs)-1]
	for i := len(segs) - 1; i >= 0; i-- {
		if end := segmentEnd(t, segs[i]); end > segs[i].first || i == 0 {
			return end, tail
		}
	}
	panic("unreachable")
}

// segmentEnd returns the seq after the last intact record of s, setting
// s.size.
func segmentEnd(t *testing.T, s *segment) uint64 {
	t.Helper()
	f, err := os.Open(s.path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	s.size = fi.Size()
	end := s.first
	readHeader(f, s, nil)
	if _, err := scanSegment(f, s, s.size, func(rec *record, _ int64) error { end = rec.end(); return nil }); err != nil {
		t.Fatal(err)
	}
	return end
}

func TestKill9LosesNothing(t *testing.T) {
	dir := t.TempDir()
	boot := writeBootID(t, "boot-A")
	last := killChildAfter(t, dir, boot, 500)

	log, lb := testLogger()
	b := open(t, dir, []string{"u"}, Options{BootIDPath: boot, Logger: log})
	defer closeBuf(t, b)
	st := b.Stats()
	if st.Next <= last {
		t.Fatalf("Next %d after kill -9, but seq %d had been handed out", st.Next, last)
	}
	if (st.Next-1)%childBatch != 0 {
		t.Fatalf("Next %d splits a poll cycle", st.Next)
	}
	es := readAll(t, b, "u", 0, 777)
	if uint64(len(es)) != st.Next-1 {
		t.Fatalf("read %d readings, want all %d below Next", len(es), st.Next-1)
	}
	checkContiguous(t, es, 1, childBatch)
	first, _, err := b.Append(batch(0, 1))
	if err != nil || first != st.Next {
		t.Fatalf("first Append after kill -9 got seq %d, %v; want %d (consecutive)", first, err, st.Next)
	}
	if !strings.Contains(lb.String(), "unclean stop") {
		t.Errorf("no recovery log line:\n%s", lb)
	}
}

func TestPowerCutNeverReusesSeq(t *testing.T) {
	dir := t.TempDir()
	boot := writeBootID(t, "boot-A")
	killChildAfter(t, dir, boot, 500)
	handedOut, tail := logEndOnDisk(t, dir) // every seq below this may have been published

	// The power cut loses what the page cache had not written: cut the
	// newest segment in half, most likely through a record.
	if err := os.Truncate(tail.path, segHeaderLen+(tail.size-segHeaderLen)/2); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(boot, []byte("boot-B\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	log, lb := testLogger()
	b := open(t, dir, []string{"u"}, Options{BootIDPath: boot, Logger: log})
	defer closeBuf(t, b)
	survived, _ := logEndOnDisk(t, dir)
	st := b.Stats()
	if st.Next < handedOut {
		t.Fatalf("Next %d after a power cut would reuse seqs up to %d", st.Next, handedOut-1)
	}
	if st.Next <= survived {
		t.Fatalf("Next %d did not jump past the surviving log end %d", st.Next, survived)
	}
	es := readAll(t, b, "u", 0, 500)
	checkContiguous(t, es, 1, childBatch)
	if uint64(len(es)) != survived-1 {
		t.Fatalf("read %d readings, want the %d that survived", len(es), survived-1)
	}
	first, _, err := b.Append(batch(0, 1))
	if err != nil || first != st.Next {
		t.Fatalf("Append after power cut = %d, %v; want %d", first, err, st.Next)
	}
	out := lb.String()
	if !strings.Contains(out, "reboot") || !strings.Contains(out, "torn tail cut") {
		t.Errorf("want reboot and torn-tail log lines:\n%s", out)
	}
}

// frameOffsets lists the offsets of the frames of a segment file.
func frameOffsets(t *testing.T, path string) []int64 {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, _ := f.Stat()
	var offs []int64
	s := &segment{}
	if first, ok := parseSegName(filepath.Base(path)); ok {
		s.first = first
	}
	readHeader(f, s, nil)
	if _, err := scanSegment(f, s, fi.Size(), func(_ *record, at int64) error { offs = append(offs, at); return nil }); err != nil {
		t.Fatal(err)
	}
	return append(offs, fi.Size())
}

func patch(t *testing.T, path string, at int64, b []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(b, at); err != nil {
		t.Fatal(err)
	}
}

// TestTornTail tears the last record in the ways a crash does (after
// etcd's TestRepairWriteTearLast): Open cuts it with a warning, keeps the
// rest, and never reuses its seqs.
func TestTornTail(t *testing.T) {
	for _, tc := range []struct {
		name    string
		damage  func(t *testing.T, path string, offs []int64)
		keepAll bool // the damage added bytes rather than tearing a record
	}{
		{"cut one byte", func(t *testing.T, p string, offs []int64) { truncate(t, p, offs[len(offs)-1]-1) }, false},
		{"cut mid-record", func(t *testing.T, p string, offs []int64) {
			truncate(t, p, (offs[len(offs)-2]+offs[len(offs)-1])/2)
		}, false},
		{"cut inside header", func(t *testing.T, p string, offs []int64) { truncate(t, p, offs[len(offs)-2]+3) }, false},
		{"zeros appended", func(t *testing.T, p string, offs []int64) { patch(t, p, offs[len(offs)-1], make([]byte, 4096)) }, true},
		{"garbage appended", func(t *testing.T, p string, offs []int64) {
			patch(t, p, offs[len(offs)-1], append([]byte{frameMagic0, frameMagic1, 9, 0, 0, 0}, bytes.Repeat([]byte{7}, 50)...))
		}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			b := open(t, dir, []string{"u"}, Options{})
			appendBatches(t, b, 0, 10, 5)
			closeBuf(t, b)
			_, tail := logEndOnDisk(t, dir)
			tc.damage(t, tail.path, frameOffsets(t, tail.path))

			log, lb := testLogger()
			b = open(t, dir, []string{"u"}, Options{Logger: log})
			if !strings.Contains(lb.String(), "torn tail cut") {
				t.Fatalf("no torn-tail warning:\n%s", lb)
			}
			want := 45
			if tc.keepAll {
				want = 50
			}
			es := readAll(t, b, "u", 0, 100)
			if len(es) != want {
				t.Fatalf("read %d readings, want %d", len(es), want)
			}
			checkContiguous(t, es, 1, 5)
			if first, _, err := b.Append(batch(10, 5)); err != nil || first != 51 {
				t.Fatalf("Append after repair = %d, %v; want 51 (no reuse)", first, err)
			}
			closeBuf(t, b)

			log, lb = testLogger()
			b = open(t, dir, []string{"u"}, Options{Logger: log})
			defer closeBuf(t, b)
			if strings.Contains(lb.String(), "level=WARN") {
				t.Fatalf("repaired log still warns:\n%s", lb)
			}
			if es := readAll(t, b, "u", 0, 100); len(es) != want+5 {
				t.Fatalf("after reopen read %d, want %d", len(es), want+5)
			}
		})
	}
}

func truncate(t *testing.T, path string, size int64) {
	t.Helper()
	if err := os.Truncate(path, size); err != nil {
		t.Fatal(err)
	}
}

// TestCorruptMiddle damages one record in the middle of a segment: it is
// skipped and counted, and the records after it are kept.
func TestCorruptMiddle(t *testing.T) {
	for _, tc := range []struct {
		name string
		at   func(off int64) int64 // where to flip a byte, given record 3's offset
	}{
		{"payload byte", func(off int64) int64 { return off + frameHeaderLen + 4 }},
		{"checksum", func(off int64) int64 { return off + 7 }},
		{"length", func(off int64) int64 { return off + 5 }},
		{"magic", func(off int64) int64 { return off }},
	} {
		for _, sealed := range []bool{false, true} {
			name := tc.name + map[bool]string{false: " in tail", true: " in sealed segment"}[sealed]
			t.Run(name, func(t *testing.T) {
				dir := t.TempDir()
				opts := Options{}
				if sealed {
					opts.SegmentSize = 4 << 10
				}
				b := open(t, dir, []string{"u"}, opts)
				appendBatches(t, b, 0, 60, 5)
				closeBuf(t, b)
				segs, _ := listSegments(durable.OS, dir)
				s := segs[len(segs)-1]
				if sealed {
					if len(segs) < 2 {
						t.Fatalf("want several segments, have %d", len(segs))
					}
					s = segs[0]
				}
				offs := frameOffsets(t, s.path)
				at := tc.at(offs[2])
				flip(t, s.path, at)

				log, lb := testLogger()
				b = open(t, dir, []string{"u"}, Options{Logger: log})
				defer closeBuf(t, b)
				es := readAll(t, b, "u", 0, 64)
				if len(es) != 300-5 {
					t.Fatalf("read %d readings, want all but one record's 5", len(es))
				}
				lost := s.first + 10 // the third record of the segment
				for i, e := range es {
					if e.Seq >= lost && e.Seq < lost+5 {
						t.Fatalf("read seq %d from the damaged record", e.Seq)
					}
					checkBatchEntry(t, e, 5)
					if i > 0 && e.Seq <= es[i-1].Seq {
						t.Fatal("out of order")
					}
				}
				if c := b.Stats().Corrupt; c != 1 {
					t.Fatalf("Corrupt = %d, want 1", c)
				}
				if !strings.Contains(lb.String(), "corrupt records skipped") {
					t.Fatalf("no corruption warning:\n%s", lb)
				}
				if next := b.Stats().Next; next != 301 {
					t.Fatalf("Next %d, want 301", next)
				}
			})
		}
	}
}

func flip(t *testing.T, path string, at int64) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	patch(t, path, at, []byte{data[at] ^ 0x5A})
}
