package buffer

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// State files hold two slots and are overwritten in place, alternating
// between the slots: a write is one page and an fdatasync, with no new inode
// or directory update (rename-based replacement costs several metadata
// blocks in the ext4 journal per write, which adds up on an SD card when
// cursors are saved every second). A write torn by a power cut spoils one
// slot; the other still holds the previous state.
const (
	slotMagic     = "FGS1"
	slotHeaderLen = 20 // magic, generation uint64, length uint32, CRC32C uint32
	slotAlign     = 4096
)

var errBadState = errors.New("state file unreadable")

type slotFile struct {
	path string
	f    *os.File
	slot int64  // bytes per slot; the file is two slots
	gen  uint64 // generation of the newest slot
}

// openSlotFile opens path and returns the newest valid body (nil when the
// file is new). A file with no valid slot yields errBadState; it is replaced
// on the next write.
func openSlotFile(path string) (*slotFile, []byte, error) {
	s := &slotFile{path: path}
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return s, nil, nil
	}
	if err != nil {
		return nil, nil, err
	}
	s.slot = int64(len(data) / 2)
	var body []byte
	for i := range int64(2) {
		gen, b, ok := parseSlot(data[i*s.slot : (i+1)*s.slot])
		if ok && (body == nil || gen > s.gen) {
			s.gen, body = gen, b
		}
	}
	if body == nil {
		s.slot = 0 // forces a fresh file on the next write
		return s, nil, fmt.Errorf("%s: %w", path, errBadState)
	}
	if s.f, err = os.OpenFile(path, os.O_RDWR, 0); err != nil {
		return nil, nil, err
	}
	return s, body, nil
}

func parseSlot(b []byte) (gen uint64, body []byte, ok bool) {
	if len(b) < slotHeaderLen || string(b[:4]) != slotMagic {
		return 0, nil, false
	}
	gen = binary.LittleEndian.Uint64(b[4:])
	n := binary.LittleEndian.Uint32(b[12:])
	if uint64(n) > uint64(len(b)-slotHeaderLen) {
		return 0, nil, false
	}
	body = b[slotHeaderLen : slotHeaderLen+int(n)]
	if slotCRC(b[4:16], body) != binary.LittleEndian.Uint32(b[16:]) {
		return 0, nil, false
	}
	return gen, slices.Clone(body), true
}

func slotCRC(genLen, body []byte) uint32 {
	return crc32.Update(crc32.Checksum(genLen, castagnoli), castagnoli, body)
}

func encodeSlot(gen uint64, body []byte) []byte {
	b := make([]byte, slotHeaderLen, slotHeaderLen+len(body))
	copy(b, slotMagic)
	binary.LittleEndian.PutUint64(b[4:], gen)
	binary.LittleEndian.PutUint32(b[12:], uint32(len(body)))
	binary.LittleEndian.PutUint32(b[16:], slotCRC(b[4:16], body))
	return append(b, body...)
}

// write makes body the newest state, durably.
func (s *slotFile) write(body []byte) error {
	rec := encodeSlot(s.gen+1, body)
	if s.f == nil || int64(len(rec)) > s.slot {
		return s.replace(rec)
	}
	if _, err := s.f.WriteAt(rec, int64((s.gen+1)%2)*s.slot); err != nil {
		return fmt.Errorf("%s: %w", s.path, err)
	}
	if err := datasync(s.f); err != nil {
		return fmt.Errorf("%s: %w", s.path, err)
	}
	s.gen++
	return nil
}

// replace writes a fresh file large enough for rec, atomically: temp file,
// fsync, rename, directory fsync.
func (s *slotFile) replace(rec []byte) error {
	slot := (int64(len(rec)) + slotAlign - 1) / slotAlign * slotAlign
	data := make([]byte, 2*slot)
	at := int64((s.gen+1)%2) * slot
	copy(data[at:], rec)
	tmp := s.path + ".tmp"
	if err := writeSynced(tmp, data); err != nil {
		return err
	}
	if err := os.Rename(tmp, s.path); err != nil {
		return err
	}
	if err := syncDir(filepath.Dir(s.path)); err != nil {
		return err
	}
	f, err := os.OpenFile(s.path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	if s.f != nil {
		_ = s.f.Close() // the old inode is already replaced
	}
	s.f, s.slot = f, slot
	s.gen++
	return nil
}

func (s *slotFile) close() error {
	if s.f == nil {
		return nil
	}
	err := s.f.Close()
	s.f = nil
	return err
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

// seqState is the seq reservation: seqs below reserved may have been handed
// out during boot; cleanNext is the exact next seq after a clean Close (0
// while running).
type seqState struct {
	boot      string
	reserved  uint64
	cleanNext uint64
}

func (st seqState) encode() []byte {
	b := appendString(nil, st.boot)
	b = binary.AppendUvarint(b, st.reserved)
	return binary.AppendUvarint(b, st.cleanNext)
}

func decodeSeqState(b []byte) (seqState, error) {
	d := decoder{b: b}
	st := seqState{boot: d.string("boot id"), reserved: d.uvarint("reserved"), cleanNext: d.uvarint("clean next")}
	return st, d.err
}

func encodeCursors(c map[string]uint64) []byte {
	names := make([]string, 0, len(c))
	for n := range c {
		names = append(names, n)
	}
	slices.Sort(names)
	b := binary.AppendUvarint(nil, uint64(len(names)))
	for _, n := range names {
		b = appendString(b, n)
		b = binary.AppendUvarint(b, c[n])
	}
	return b
}

func decodeCursors(b []byte) (map[string]uint64, error) {
	d := decoder{b: b}
	n := d.uvarint("cursor count")
	if n > uint64(len(b)) {
		d.fail("cursor count")
	}
	c := make(map[string]uint64)
	for i := uint64(0); i < n && d.err == nil; i++ {
		name := d.string("upstream name")
		c[name] = d.uvarint("cursor")
	}
	return c, d.err
}

// readBootID returns the kernel's boot id, or "" where there is none; ""
// never matches, so an unknown boot is treated as a reboot (seq jumps, never
// repeats).
func readBootID(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}
