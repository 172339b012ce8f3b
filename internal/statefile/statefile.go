// Package statefile keeps a small state that is rewritten often (the
// buffer's seq reservation and upstream cursors, a GPIO counter's totals)
// durable across crashes and power cuts, cheaply.
//
// A file holds two slots, overwritten in place in turn. A save is one write
// of at most a slot and an fdatasync: no new inode, no rename, no directory
// update. Rename-based replacement costs several metadata blocks in the ext4
// journal per write, which adds up on an SD card when state is saved every
// second or on every pulse. A write torn by a power cut spoils only the slot
// it was writing; the other still holds the previous state, and Load takes
// the newest slot whose checksum matches.
//
// Only a payload that outgrows its slot takes the slow path: a fresh file
// with larger slots replaces the old one atomically (temporary file, fsync,
// rename, directory fsync).
//
// A slot is the format's 4-byte magic, the generation (uint64, little
// endian), the payload's length (uint32), the CRC-32C of generation, length
// and payload (uint32), then the payload; the rest of the slot is unused.
package statefile

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"

	"github.com/fieldgate/fieldgate/internal/durable"
)

// ErrCorrupt says a state file has no valid slot: not a torn write (that
// leaves the other slot), but a damaged or foreign file.
var ErrCorrupt = errors.New("state file has no valid slot")

// Format tells one kind of state file from another.
type Format struct {
	// Magic starts every slot, so a file of another kind is never loaded
	// as this one.
	Magic [4]byte
	// Align rounds slot sizes up to a multiple of it (> 0): a file system
	// page makes each save one page write.
	Align int
}

const headerLen = 20 // magic, generation, length, CRC-32C

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// File is one state file. It is not safe for concurrent use.
type File struct {
	fs     durable.FS
	path   string
	format Format
	f      durable.File // nil until Load found a valid slot or Save wrote the file
	slot   int64        // bytes per slot; the file is two
	gen    uint64       // generation of the newest slot
}

// New returns the state file at path; nothing is read or written before
// Load or Save.
func New(path string, format Format) *File { return NewIn(durable.OS, path, format) }

// NewIn is New on the file system fsys.
func NewIn(fsys durable.FS, path string, format Format) *File {
	return &File{fs: fsys, path: path, format: format}
}

// Path returns the file's path, for logs.
func (f *File) Path() string { return f.path }

// SetAside renames an unusable file to its path with ".bad" appended, so
// whoever diagnoses it later has the evidence, and returns that name; the
// next Save writes a fresh file.
func (f *File) SetAside() (string, error) {
	_ = f.Close()
	f.slot, f.gen = 0, 0
	kept := f.path + ".bad"
	if err := f.fs.Rename(f.path, kept); err != nil {
		return "", err
	}
	return kept, nil
}

// Dir is a directory of state files lent to the parts of the gateway that
// keep small state across restarts (a GPIO pulse counter's totals): each
// asks for its files by name and never sees the path.
type Dir struct{ path string }

// OpenDir creates the directory at path if needed.
func OpenDir(path string) (*Dir, error) {
	if err := os.MkdirAll(path, 0o750); err != nil {
		return nil, err
	}
	return &Dir{path: path}, nil
}

// File returns the state file name in d; name is a plain file name, which
// its user makes unique (by putting its own name in it).
func (d *Dir) File(name string, format Format) *File {
	return New(filepath.Join(d.path, filepath.Base(name)), format)
}

// Load returns the payload of the newest valid slot. A file not written yet
// gives an error wrapping fs.ErrNotExist, one with no valid slot ErrCorrupt;
// either way the next Save writes a fresh file. Call it once, before the
// first Save: it also removes what a crash while the file was being
// replaced left behind.
func (f *File) Load() ([]byte, error) {
	_ = f.fs.Remove(f.path + ".tmp")
	data, err := durable.ReadFile(f.fs, f.path)
	if err != nil {
		return nil, err
	}
	slot := int64(len(data) / 2)
	var payload []byte
	found := false
	for i := range int64(2) {
		gen, p, ok := f.parse(data[i*slot : (i+1)*slot])
		if ok && (!found || gen > f.gen) {
			f.gen, payload, found = gen, p, true
		}
	}
	if !found {
		return nil, fmt.Errorf("%s: %w", f.path, ErrCorrupt)
	}
	f.slot = slot
	// Unopenable for writing (read-only), it is replaced by the next Save.
	f.f, _ = f.fs.OpenFile(f.path, os.O_RDWR, 0)
	return payload, nil
}

func (f *File) parse(b []byte) (gen uint64, payload []byte, ok bool) {
	if len(b) < headerLen || [4]byte(b) != f.format.Magic {
		return 0, nil, false
	}
	n := binary.LittleEndian.Uint32(b[12:])
	if uint64(n) > uint64(len(b)-headerLen) {
		return 0, nil, false
	}
	end := headerLen + int(n)
	payload = b[headerLen:end:end]
	if checksum(b[4:16], payload) != binary.LittleEndian.Uint32(b[16:]) {
		return 0, nil, false
	}
	return binary.LittleEndian.Uint64(b[4:]), payload, true
}

func (f *File) encode(gen uint64, payload []byte) []byte {
	b := make([]byte, headerLen, headerLen+len(payload))
	copy(b, f.format.Magic[:])
	binary.LittleEndian.PutUint64(b[4:], gen)
	binary.LittleEndian.PutUint32(b[12:], uint32(len(payload)))
	binary.LittleEndian.PutUint32(b[16:], checksum(b[4:16], payload))
	return append(b, payload...)
}

// checksum covers a slot's generation and length, then its payload.
func checksum(genLen, payload []byte) uint32 {
	return crc32.Update(crc32.Checksum(genLen, castagnoli), castagnoli, payload)
}

// Save makes payload the newest state, durably: once it returns nil, a
// Load after a crash or a power cut finds payload or a later one.
func (f *File) Save(payload []byte) error {
	rec := f.encode(f.gen+1, payload)
	if f.f == nil || int64(len(rec)) > f.slot {
		return f.replace(rec)
	}
	if _, err := f.f.WriteAt(rec, int64((f.gen+1)%2)*f.slot); err != nil {
		return err
	}
	if err := f.f.Datasync(); err != nil {
		return err
	}
	f.gen++
	return nil
}

// replace writes a fresh file with slots large enough for rec.
func (f *File) replace(rec []byte) error {
	align := int64(f.format.Align)
	slot := (int64(len(rec)) + align - 1) / align * align
	data := make([]byte, 2*slot)
	copy(data[int64((f.gen+1)%2)*slot:], rec)
	tmp := f.path + ".tmp"
	if err := f.writeSynced(tmp, data); err != nil {
		return err
	}
	if err := f.fs.Rename(tmp, f.path); err != nil {
		return err
	}
	if f.f != nil {
		_ = f.f.Close() // its inode is replaced: writes to it would be lost
	}
	f.f, f.slot = nil, slot
	f.gen++
	if err := f.fs.SyncDir(filepath.Dir(f.path)); err != nil {
		return err // f.f stays nil, so the next Save replaces the file again
	}
	var err error
	f.f, err = f.fs.OpenFile(f.path, os.O_RDWR, 0)
	return err
}

func (f *File) writeSynced(path string, data []byte) error {
	w, err := f.fs.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o640)
	if err != nil {
		return err
	}
	_, err = w.Write(data)
	if err == nil {
		err = w.Datasync()
	}
	return errors.Join(err, w.Close())
}

// Close releases the file; every saved state is on disk already.
func (f *File) Close() error {
	if f.f == nil {
		return nil
	}
	err := f.f.Close()
	f.f = nil
	return err
}
