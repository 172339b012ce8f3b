package buffer

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fieldgate/fieldgate/internal/durable"
)

// A damage spoils a segment file, given its frame offsets (and its size
// last), and returns the offset up to which frames are intact: every frame
// ending there or before must survive the repair.
type damage func(t *testing.T, path string, offs []int64) (intactTo int64)

// smashHeader overwrites the 8-byte segment header, as bit rot would.
func smashHeader(t *testing.T, path string, offs []int64) int64 {
	patch(t, path, 0, []byte("garbage!"))
	return offs[len(offs)-1]
}

// tearAt cuts the file where at says, as a power cut during a write does.
func tearAt(at func(offs []int64) int64) damage {
	return func(t *testing.T, path string, offs []int64) int64 {
		truncate(t, path, at(offs))
		return at(offs)
	}
}

func both(d1, d2 damage) damage {
	return func(t *testing.T, path string, offs []int64) int64 {
		return min(d1(t, path, offs), d2(t, path, offs))
	}
}

var (
	tearOneByte     = tearAt(func(offs []int64) int64 { return offs[len(offs)-1] - 1 })
	tearMidRecord   = tearAt(func(offs []int64) int64 { return (offs[len(offs)-2] + offs[len(offs)-1]) / 2 })
	tearFrameHeader = tearAt(func(offs []int64) int64 { return offs[len(offs)-2] + 3 })
	tearSegHeader   = tearAt(func([]int64) int64 { return 5 })
)

// evidenceFiles lists the damaged-segment copies in dir.
func evidenceFiles(t testing.TB, dir string) []string {
	t.Helper()
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, de := range des {
		if isEvidence(de.Name()) {
			names = append(names, de.Name())
		}
	}
	return names
}

// segmentBytes is what the segment files of dir hold, evidence aside.
func segmentBytes(t testing.TB, dir string) int64 {
	t.Helper()
	segs, err := listSegments(durable.OS, dir)
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, s := range segs {
		if strings.Contains(s.path, brokenExt) {
			t.Fatalf("listSegments took %s for a segment", s.path)
		}
		fi, err := os.Stat(s.path)
		if err != nil {
			t.Fatal(err)
		}
		n += fi.Size()
	}
	return n
}

func readFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// firstLost is the first seq of the first frame of s (of n readings each,
// at offs) that does not end by intactTo, or next if every frame does.
func firstLost(s *segment, offs []int64, intactTo int64, n int, next uint64) uint64 {
	for j := range len(offs) - 1 {
		if offs[j+1] > intactTo {
			return s.first + uint64(j*n)
		}
	}
	return next
}

// TestRepairKeepsEvidence damages a segment the ways a crash or bit rot
// does and reopens: every frame that verifies is read back with its seq and
// value, a copy of the segment as it was sits beside it, named in the
// warning, the damage is counted, and the gateway carries on (Append takes
// the next seq, cursors stay). The next Open finds nothing to repair.
func TestRepairKeepsEvidence(t *testing.T) {
	const n = 5 // readings per record
	for _, tc := range []struct {
		name    string
		sealed  bool // damage the oldest segment rather than the tail
		damage  damage
		corrupt uint64
		warning string
	}{
		{"tail header", false, smashHeader, 1, "segment header damaged"},
		{"sealed header", true, smashHeader, 1, "segment header damaged"},
		{"tail torn one byte short", false, tearOneByte, 1, "torn tail cut"},
		{"tail torn mid-record", false, tearMidRecord, 1, "torn tail cut"},
		{"tail torn inside a frame header", false, tearFrameHeader, 1, "torn tail cut"},
		{"tail torn inside the segment header", false, tearSegHeader, 1, "segment header damaged"},
		{"tail header damaged and torn", false, both(smashHeader, tearMidRecord), 2, "segment header damaged; header rewritten, frames that verify kept; torn tail cut"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			modes(t, func(t *testing.T, opts Options) {
				dir := t.TempDir()
				opts.SegmentSize = 4 << 10
				b := open(t, dir, []string{"u", "v"}, opts)
				appendBatches(t, b, 0, 60, n)
				const acked = 123
				if err := b.Ack("u", acked); err != nil {
					t.Fatal(err)
				}
				next := b.Stats().Next
				closeBuf(t, b)

				segs, _ := listSegments(durable.OS, dir)
				s := segs[len(segs)-1]
				if tc.sealed {
					s = segs[0]
				}
				offs := frameOffsets(t, s.path)
				if len(segs) < 2 || len(offs) < 4 {
					t.Fatalf("want several segments of several records, have %d segments, %d frames", len(segs), len(offs)-1)
				}
				intactTo := tc.damage(t, s.path, offs)
				damaged := readFile(t, s.path)
				lostFrom := firstLost(s, offs, intactTo, n, next)

				log, lb := testLogger()
				opts.Logger = log
				b = open(t, dir, []string{"u", "v"}, opts)
				es := readAll(t, b, "v", 0, 64) // reaches every sealed segment
				if uint64(len(es)) != lostFrom-1 {
					t.Fatalf("read %d readings, want the %d whose frames verify", len(es), lostFrom-1)
				}
				checkContiguous(t, es, 1, n)

				copyPath := s.path + brokenExt
				if got := readFile(t, copyPath); !bytes.Equal(got, damaged) {
					t.Fatalf("%s holds %d bytes, not the %d the segment held before repair", copyPath, len(got), len(damaged))
				}
				out := lb.String()
				if !strings.Contains(out, "level=WARN msg=\"buffer: "+tc.warning) || !strings.Contains(out, "evidence="+copyPath) {
					t.Fatalf("want a warning %q naming %s:\n%s", tc.warning, copyPath, out)
				}
				st := b.Stats()
				if st.Corrupt != tc.corrupt {
					t.Fatalf("Corrupt = %d, want %d", st.Corrupt, tc.corrupt)
				}
				if onDisk := segmentBytes(t, dir); st.Bytes != onDisk {
					t.Fatalf("Stats.Bytes = %d, segments hold %d: evidence counted?", st.Bytes, onDisk)
				}
				if st.Cursors["u"] != acked || st.Cursors["v"] != 1 {
					t.Fatalf("cursors %v after repair, want u at %d and v at 1", st.Cursors, acked)
				}
				if first, _, err := b.Append(batch(int(next-1)/n, n)); err != nil || first != next {
					t.Fatalf("Append after repair = %d, %v; want %d (no seq reused)", first, err, next)
				}
				closeBuf(t, b)

				log, lb = testLogger()
				opts.Logger = log
				b = open(t, dir, []string{"u", "v"}, opts)
				defer closeBuf(t, b)
				es = readAll(t, b, "v", 0, 64)
				if strings.Contains(lb.String(), "level=WARN") {
					t.Fatalf("repaired buffer still warns:\n%s", lb)
				}
				if got := evidenceFiles(t, dir); len(got) != 1 {
					t.Fatalf("evidence after a clean reopen: %v, want only %s", got, filepath.Base(copyPath))
				}
				if uint64(len(es)) != lostFrom-1+n || es[len(es)-1].Seq != next+n-1 {
					t.Fatalf("after reopen read %d readings ending at seq %d, want %d ending at %d",
						len(es), es[len(es)-1].Seq, lostFrom-1+n, next+n-1)
				}
				checkContiguous(t, es[:lostFrom-1], 1, n)
				checkContiguous(t, es[lostFrom-1:], next, n)
			})
		})
	}
}

// TestPowerCutRepairKeepsEvidence: a kill -9, then a power cut that tears
// the tail and spoils its header. The next Open keeps every frame that
// verifies and a copy of the tail as the power cut left it, and seq moves
// past everything that was handed out.
func TestPowerCutRepairKeepsEvidence(t *testing.T) {
	dir := t.TempDir()
	boot := writeBootID(t, "boot-A")
	killChildAfter(t, dir, boot, 300)
	handedOut, tail := logEndOnDisk(t, dir)
	offs := frameOffsets(t, tail.path)
	lostFrom := firstLost(tail, offs, both(smashHeader, tearMidRecord)(t, tail.path, offs), childBatch, handedOut)
	damaged := readFile(t, tail.path)
	if err := os.WriteFile(boot, []byte("boot-B\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	log, lb := testLogger()
	b := open(t, dir, []string{"u"}, Options{BootIDPath: boot, Logger: log})
	defer closeBuf(t, b)
	es := readAll(t, b, "u", 0, 500)
	if uint64(len(es)) != lostFrom-1 {
		t.Fatalf("read %d readings, want the %d whose frames verify", len(es), lostFrom-1)
	}
	checkContiguous(t, es, 1, childBatch)
	copyPath := tail.path + brokenExt
	if !bytes.Equal(readFile(t, copyPath), damaged) || !strings.Contains(lb.String(), "evidence="+copyPath) {
		t.Fatalf("%s does not hold the damaged tail, or the warning does not name it:\n%s", copyPath, lb)
	}
	if c := b.Stats().Corrupt; c != 2 {
		t.Fatalf("Corrupt = %d, want 2 (header and torn tail)", c)
	}
	if first, _, err := b.Append(batch(0, 1)); err != nil || first < handedOut {
		t.Fatalf("Append after the power cut = %d, %v; want at least %d (no reuse)", first, err, handedOut)
	}
}

// TestEvidenceBounded repairs the tail again and again: no copy is ever
// overwritten, and only the newest evidenceKept are kept.
func TestEvidenceBounded(t *testing.T) {
	modes(t, func(t *testing.T, opts Options) {
		dir := t.TempDir()
		base := time.Now().Add(-time.Hour)
		var copies [][]byte // each round's damaged segment
		for round := range evidenceKept + 3 {
			b := open(t, dir, []string{"u"}, opts)
			appendBatches(t, b, 2*round, 2, 5)
			closeBuf(t, b)
			// Each repair cuts readings the last Close counted, so the
			// next Open starts a new segment after them: tear the newest.
			_, tail := logEndOnDisk(t, dir)
			path := tail.path
			tearOneByte(t, path, frameOffsets(t, path))
			copies = append(copies, readFile(t, path))

			before := evidenceFiles(t, dir)
			closeBuf(t, open(t, dir, []string{"u"}, opts))
			after := evidenceFiles(t, dir)
			if len(after) != min(round+1, evidenceKept) {
				t.Fatalf("round %d: %d copies kept (%v), want %d", round, len(after), after, min(round+1, evidenceKept))
			}
			var made []string
			for _, name := range after {
				if !slices.Contains(before, name) {
					made = append(made, name)
				}
			}
			if len(made) != 1 {
				t.Fatalf("round %d: new copies %v, want one", round, made)
			}
			p := filepath.Join(dir, made[0])
			if !bytes.Equal(readFile(t, p), copies[round]) {
				t.Fatalf("round %d: %s is not the damaged segment", round, made[0])
			}
			// Distinct times, so which copy is newest does not depend on
			// the file system's timestamp granularity.
			mod := base.Add(time.Duration(round) * time.Minute)
			if err := os.Chtimes(p, mod, mod); err != nil {
				t.Fatal(err)
			}
		}
		var kept [][]byte
		for _, name := range evidenceFiles(t, dir) {
			kept = append(kept, readFile(t, filepath.Join(dir, name)))
		}
		for _, want := range copies[len(copies)-evidenceKept:] {
			if !slices.ContainsFunc(kept, func(k []byte) bool { return bytes.Equal(k, want) }) {
				t.Fatal("a copy of the newest repairs was deleted")
			}
		}
	})
}

func TestIsEvidence(t *testing.T) {
	seg := segName(42)
	for name, want := range map[string]bool{
		seg + brokenExt:         true,
		seg + brokenExt + ".2":  true,
		seg + brokenExt + ".17": true,
		seg:                     false,
		seg + brokenExt + ".":   false,
		seg + brokenExt + ".x":  false,
		seg + brokenExt + "2":   false,
		"notes" + brokenExt:     false,
		seqFileName:             false,
	} {
		if got := isEvidence(name); got != want {
			t.Errorf("isEvidence(%q) = %v", name, got)
		}
		if _, ok := parseSegName(name); ok && want {
			t.Errorf("%q is taken for a segment", name)
		}
	}
}
