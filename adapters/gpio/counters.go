package gpio

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/fieldgate/fieldgate/internal/statefile"
)

// counterFile keeps the totals of one adapter's counter points, by point
// name, in a statefile, as the buffer keeps its cursors: a count costs one
// small in-place write and an fdatasync, with no new inode or directory
// entry per pulse, and a write torn by a power cut leaves the previous
// total. The payload is one "name count" line per point, sorted, readable
// with strings(1).
type counterFile struct {
	log *slog.Logger

	mu      sync.Mutex
	counts  map[string]uint64
	file    *statefile.File
	failing bool // the last write failed (logged once, not per pulse)
}

// counterFormat's small slots suit a file of a few short lines.
var counterFormat = statefile.Format{Magic: [4]byte{'F', 'G', 'C', '1'}, Align: 512}

var errBadCounts = errors.New("unknown counter totals format")

// openCounterFile loads the totals saved in f. It never fails: a missing
// file counts from 0, and an unreadable one is set aside as .bad, for
// whoever wants to recover it by hand, with a warning, and counts from 0.
func openCounterFile(f *statefile.File, log *slog.Logger) *counterFile {
	c := &counterFile{log: log, counts: map[string]uint64{}, file: f}
	body, err := c.file.Load()
	if errors.Is(err, fs.ErrNotExist) {
		return c
	}
	if err == nil {
		if c.counts, err = decodeCounts(body); err == nil {
			return c
		}
	}
	c.counts = map[string]uint64{}
	kept, rerr := c.file.SetAside()
	if rerr != nil {
		kept = rerr.Error()
	}
	log.Warn("gpio counter state unreadable; counting from 0", "file", c.file.Path(), "kept_as", kept, "err", err)
	return c
}

func encodeCounts(counts map[string]uint64) []byte {
	var b []byte
	for _, name := range slices.Sorted(maps.Keys(counts)) {
		b = append(b, name...)
		b = append(b, ' ')
		b = strconv.AppendUint(b, counts[name], 10)
		b = append(b, '\n')
	}
	return b
}

// decodeCounts parses a body whose checksum matched: a failure means a
// format this code does not know.
func decodeCounts(body []byte) (map[string]uint64, error) {
	counts := map[string]uint64{}
	for line := range strings.Lines(string(body)) {
		name, n, ok := strings.Cut(strings.TrimSuffix(line, "\n"), " ")
		count, err := strconv.ParseUint(n, 10, 64)
		if !ok || name == "" || err != nil {
			return nil, fmt.Errorf("%w: bad line %q", errBadCounts, line)
		}
		counts[name] = count
	}
	return counts, nil
}

// total returns point's count.
func (c *counterFile) total(point string) uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.counts[point]
}

// add counts n more edges of point and makes the new total durable before
// it returns it. When that fails the total still grows, in memory: the error
// says it would not survive a crash.
func (c *counterFile) add(point string, n uint64) (uint64, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.counts[point] += n
	err := c.file.Save(encodeCounts(c.counts))
	switch {
	case err != nil && !c.failing:
		c.log.Error("gpio counter totals not persisted: counts since the last write that worked are lost if the gateway dies", "file", c.file.Path(), "err", err)
	case err == nil && c.failing:
		c.log.Info("gpio counter totals persisted again", "file", c.file.Path())
	}
	c.failing = err != nil
	return c.counts[point], err
}

// close releases the file; every total is on disk already.
func (c *counterFile) close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.file.Close()
}
