package buffer

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/fieldgate/fieldgate/internal/durable"
)

const (
	// brokenExt marks a copy of a segment as it was before a repair. The
	// name no longer ends in segExt, so listSegments never takes it for a
	// segment and it counts in no size accounting.
	brokenExt = ".broken"
	// evidenceKept bounds the copies, so repeated damage cannot fill the
	// disk: at most this many segment-sized files besides the log.
	evidenceKept = 3
)

// repair mends a damaged segment in place so the next Open finds it clean:
// it keeps a copy of the file as it was (keepEvidence), rewrites a damaged
// header, cuts a torn tail at cutAt (none when negative) and syncs. Every
// frame that verifies stays where it is. An error means the segment itself
// could not be written; a failure to keep the copy is only logged.
func (b *Buffer) repair(f durable.File, s *segment, headerBad bool, cutAt int64, sc segScan) error {
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	size := fi.Size()
	var why []string
	attrs := []any{"segment", s.path, "records_kept", sc.records}
	if headerBad {
		b.corrupt.Add(1)
		why = append(why, "segment header damaged; header rewritten, frames that verify kept")
	}
	if cutAt >= 0 {
		b.corrupt.Add(1)
		why = append(why, "torn tail cut")
		attrs = append(attrs, "bytes_cut", size-cutAt)
	}
	if size > 0 { // an empty file (torn at creation) holds nothing to keep
		copyPath, err := b.keepEvidence(f, s.path, size)
		if copyPath != "" {
			attrs = append(attrs, "evidence", copyPath)
		}
		if err != nil { // the buffer must open all the same
			attrs = append(attrs, "evidence_error", err)
		}
	}
	damage := strings.Join(why, "; ")
	if err := mend(f, s.header(b.key), headerBad, cutAt); err != nil {
		b.log.Warn("buffer: repair failed", append(attrs, "damage", damage, "error", err)...)
		return err
	}
	b.log.Warn("buffer: "+damage, attrs...)
	return nil
}

// mend writes repair's changes and syncs them.
func mend(f durable.File, header []byte, headerBad bool, cutAt int64) error {
	if headerBad {
		if _, err := f.WriteAt(header, 0); err != nil {
			return err
		}
	}
	if cutAt >= 0 {
		if err := f.Truncate(cutAt); err != nil {
			return err
		}
	}
	return f.Datasync()
}

// keepEvidence copies the first size bytes of the segment at path (open as
// src) to a new file beside it, path.broken or, if that exists,
// path.broken.2 and so on, so no earlier copy is overwritten. It syncs the
// copy and the directory and deletes all but the newest evidenceKept copies.
// It returns the copy's path, or "" if none was kept.
func (b *Buffer) keepEvidence(src io.ReaderAt, path string, size int64) (string, error) {
	b.evidenceMu.Lock()
	defer b.evidenceMu.Unlock()
	var dst durable.File
	var name string
	for k := 1; dst == nil; k++ {
		name = evidenceName(path, k)
		f, err := b.fs.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o640)
		switch {
		case err == nil:
			dst = f
		case !errors.Is(err, os.ErrExist):
			return "", err
		}
	}
	_, err := io.Copy(dst, io.NewSectionReader(src, 0, size))
	if err == nil {
		err = dst.Datasync()
	}
	if err = errors.Join(err, dst.Close()); err != nil {
		_ = b.fs.Remove(name) // a partial copy is no evidence
		return "", err
	}
	dir := filepath.Dir(path)
	b.pruneEvidence(dir, filepath.Base(name))
	if err := b.fs.SyncDir(dir); err != nil {
		return name, fmt.Errorf("sync %s: %w", dir, err)
	}
	return name, nil
}

// evidenceName is the k-th candidate name for a copy of the segment at path.
func evidenceName(path string, k int) string {
	if k == 1 {
		return path + brokenExt
	}
	return path + brokenExt + "." + strconv.Itoa(k)
}

// isEvidence reports whether name is one of evidenceName's.
func isEvidence(name string) bool {
	seg, suffix, ok := strings.Cut(name, brokenExt)
	if _, isSeg := parseSegName(seg); !ok || !isSeg {
		return false
	}
	if suffix == "" {
		return true
	}
	k, ok := strings.CutPrefix(suffix, ".")
	_, err := strconv.ParseUint(k, 10, 31)
	return ok && err == nil
}

// pruneEvidence deletes all but the newest evidenceKept copies in dir,
// newest by modification time; keep, the copy just made, is never deleted
// (after a reboot the clock of a box without an RTC may be behind the
// copies' times until NTP sets it).
func (b *Buffer) pruneEvidence(dir, keep string) {
	des, err := b.fs.ReadDir(dir)
	if err != nil {
		b.log.Warn("buffer: listing damaged-segment copies", "error", err)
		return
	}
	type copyInfo struct {
		name string
		mod  time.Time
	}
	var others []copyInfo
	for _, de := range des {
		if !de.Type().IsRegular() || !isEvidence(de.Name()) || de.Name() == keep {
			continue
		}
		fi, err := de.Info()
		if err != nil {
			continue // deleted meanwhile
		}
		others = append(others, copyInfo{de.Name(), fi.ModTime()})
	}
	slices.SortFunc(others, func(a, b copyInfo) int { // newest first
		return cmp.Or(b.mod.Compare(a.mod), strings.Compare(b.name, a.name))
	})
	for _, c := range others[min(len(others), evidenceKept-1):] {
		p := filepath.Join(dir, c.name)
		if err := b.fs.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			b.log.Warn("buffer: deleting an old damaged-segment copy", "path", p, "error", err)
			continue
		}
		b.log.Info("buffer: old damaged-segment copy deleted", "path", p, "kept", evidenceKept)
	}
}
