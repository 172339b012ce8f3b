package gpio

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// counterFile keeps the totals of one adapter's counter points, by point
// name, in a file of two checksummed slots written in turn, as the buffer
// keeps its cursors: a count costs one small in-place write and an
// fdatasync, with no new inode or directory entry per pulse, and a write
// torn by a power cut spoils only its own slot, leaving the previous total
// in the other.
//
// A slot is the magic, the generation (uint64), the body's length (uint32)
// and the CRC-32C of those two and the body, then the body: one "name count"
// line per point, sorted, readable with strings(1).
type counterFile struct {
	path string
	log  *slog.Logger

	mu      sync.Mutex
	counts  map[string]uint64
	f       *os.File // nil until a write creates the file, or after it was unreadable
	slot    int64    // bytes per slot; the file is two
	gen     uint64   // generation of the newest slot written
	failing bool     // the last write failed (logged once, not per pulse)
}

const (
	counterMagic  = "FGC1"
	counterHeader = 20
	counterAlign  = 512
)

var (
	castagnoli      = crc32.MakeTable(crc32.Castagnoli)
	errCounterState = errors.New("no valid slot")
)

// openCounterFile loads the totals saved at path. It never fails: a missing
// file counts from 0, and an unreadable one is renamed to path.bad, for
// whoever wants to recover it by hand, with a warning, and counts from 0.
func openCounterFile(path string, log *slog.Logger) *counterFile {
	c := &counterFile{path: path, log: log, counts: map[string]uint64{}}
	_ = os.Remove(path + ".tmp") // left by a crash while the file was replaced
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return c
	}
	if err == nil {
		if err = c.load(data); err == nil {
			// Unopenable, the file is replaced by the next write.
			c.f, _ = os.OpenFile(path, os.O_RDWR, 0)
			return c
		}
	}
	c.counts, c.gen = map[string]uint64{}, 0
	kept := path + ".bad"
	if rerr := os.Rename(path, kept); rerr != nil {
		kept = rerr.Error()
	}
	log.Warn("gpio counter state unreadable; counting from 0", "file", path, "kept_as", kept, "err", err)
	return c
}

// load takes the newest valid slot of data.
func (c *counterFile) load(data []byte) error {
	c.slot = int64(len(data) / 2)
	var body []byte
	for i := range int64(2) {
		gen, b, ok := parseCounterSlot(data[i*c.slot : (i+1)*c.slot])
		if ok && (body == nil || gen > c.gen) {
			c.gen, body = gen, b
		}
	}
	if body == nil {
		return errCounterState
	}
	var err error
	c.counts, err = decodeCounts(body)
	return err
}

func parseCounterSlot(b []byte) (gen uint64, body []byte, ok bool) {
	if len(b) < counterHeader || string(b[:4]) != counterMagic {
		return 0, nil, false
	}
	n := binary.LittleEndian.Uint32(b[12:])
	if uint64(n) > uint64(len(b)-counterHeader) {
		return 0, nil, false
	}
	body = b[counterHeader : counterHeader+int(n)]
	if counterCRC(b[4:16], body) != binary.LittleEndian.Uint32(b[16:]) {
		return 0, nil, false
	}
	return binary.LittleEndian.Uint64(b[4:]), body, true
}

func encodeCounterSlot(gen uint64, body []byte) []byte {
	b := make([]byte, counterHeader, counterHeader+len(body))
	copy(b, counterMagic)
	binary.LittleEndian.PutUint64(b[4:], gen)
	binary.LittleEndian.PutUint32(b[12:], uint32(len(body)))
	binary.LittleEndian.PutUint32(b[16:], counterCRC(b[4:16], body))
	return append(b, body...)
}

// counterCRC checksums a slot's generation and length, then its body.
func counterCRC(genLen, body []byte) uint32 {
	return crc32.Update(crc32.Checksum(genLen, castagnoli), castagnoli, body)
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
			return nil, fmt.Errorf("%w: bad line %q", errCounterState, line)
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
	err := c.save()
	switch {
	case err != nil && !c.failing:
		c.log.Error("gpio counter totals not persisted: counts since the last write that worked are lost if the gateway dies", "file", c.path, "err", err)
	case err == nil && c.failing:
		c.log.Info("gpio counter totals persisted again", "file", c.path)
	}
	c.failing = err != nil
	return c.counts[point], err
}

// save writes the totals to the older slot and waits for the disk.
func (c *counterFile) save() error {
	rec := encodeCounterSlot(c.gen+1, encodeCounts(c.counts))
	if c.f == nil || int64(len(rec)) > c.slot {
		return c.replace(rec)
	}
	if _, err := c.f.WriteAt(rec, int64((c.gen+1)%2)*c.slot); err != nil {
		return err
	}
	if err := unix.Fdatasync(int(c.f.Fd())); err != nil {
		return &os.PathError{Op: "fdatasync", Path: c.path, Err: err}
	}
	c.gen++
	return nil
}

// replace writes a fresh file with room for rec, atomically: temporary
// file, fsync, rename, directory fsync.
func (c *counterFile) replace(rec []byte) error {
	slot := (int64(len(rec)) + counterAlign - 1) / counterAlign * counterAlign
	data := make([]byte, 2*slot)
	copy(data[int64((c.gen+1)%2)*slot:], rec)
	tmp := c.path + ".tmp"
	if err := writeSynced(tmp, data); err != nil {
		return err
	}
	if err := os.Rename(tmp, c.path); err != nil {
		return err
	}
	if err := syncDir(filepath.Dir(c.path)); err != nil {
		return err
	}
	f, err := os.OpenFile(c.path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	if c.f != nil {
		_ = c.f.Close() // its inode is already replaced
	}
	c.f, c.slot = f, slot
	c.gen++
	return nil
}

func writeSynced(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o640)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	return errors.Join(err, f.Close())
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	return errors.Join(err, d.Close())
}

// close releases the file; every total is on disk already.
func (c *counterFile) close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.f == nil {
		return nil
	}
	err := c.f.Close()
	c.f = nil
	return err
}
