// Package crashfs is an in-memory durable.FS for tests that simulates power
// cuts. It keeps, for every file, what the process sees and what a power
// cut would leave: the bytes as of the file's last Datasync, and the
// writes since then, in order; and, for every directory, the entries as of
// its last SyncDir. Cut returns the file system as it comes back after a
// power cut: every file named in a durable entry holds its durable bytes
// plus a random prefix of the writes since, the last of them torn at a
// random byte, as a disk's write-back may have got that far; entries never
// made durable are gone, and removed or renamed files whose directory was
// not synced are back.
package crashfs

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/fieldgate/fieldgate/internal/durable"
)

// FS is the simulated file system. Its methods are safe for concurrent use.
type FS struct {
	mu    sync.Mutex
	rng   *rand.Rand
	dirs  map[string]*dir // every directory, by clean path
	locks map[string]bool
	clock time.Time // modification times: one tick per change
	// limit, when set, makes writes that would grow the file system past
	// this many bytes of file data fail with ENOSPC, as a full disk does.
	limit int64
}

type dir struct {
	entries map[string]*inode // as the process sees them
	durable map[string]*inode // as of the last SyncDir
}

type inode struct {
	data    []byte // as the process sees it
	synced  []byte // as of the last Datasync
	pending []op   // changes since the last Datasync, oldest first
	mod     time.Time
}

// op is one change to a file's data: a write at off, or a truncation to
// size when data is nil.
type op struct {
	off  int64
	data []byte
	size int64
}

// New returns an empty file system whose power cuts draw from seed.
func New(seed uint64) *FS {
	return &FS{
		rng:   rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		dirs:  map[string]*dir{"/": {entries: map[string]*inode{}, durable: map[string]*inode{}}},
		locks: map[string]bool{},
		clock: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
	}
}

// SetLimit makes the file system full at limit bytes of file data (0: no
// limit): writes past it fail with ENOSPC.
func (c *FS) SetLimit(limit int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.limit = limit
}

// Used returns the bytes of file data the process sees.
func (c *FS) Used() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.usedLocked()
}

func (c *FS) usedLocked() int64 {
	var n int64
	for _, d := range c.dirs {
		for _, in := range d.entries {
			n += int64(len(in.data))
		}
	}
	return n
}

func (c *FS) tick() time.Time {
	c.clock = c.clock.Add(time.Second)
	return c.clock
}

// split returns the directory and base name of a path.
func split(name string) (string, string) {
	name = filepath.Clean("/" + name)
	return filepath.Dir(name), filepath.Base(name)
}

func (c *FS) lookup(name string) (*dir, string, *inode, error) {
	dn, base := split(name)
	d, ok := c.dirs[dn]
	if !ok {
		return nil, "", nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	}
	return d, base, d.entries[base], nil
}

// OpenFile implements durable.FS.
func (c *FS) OpenFile(name string, flag int, _ fs.FileMode) (durable.File, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	d, base, in, err := c.lookup(name)
	if err != nil {
		return nil, err
	}
	switch {
	case in != nil && flag&os.O_CREATE != 0 && flag&os.O_EXCL != 0:
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrExist}
	case in == nil && flag&os.O_CREATE == 0:
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	case in == nil:
		in = &inode{mod: c.tick()}
		d.entries[base] = in
	}
	if flag&os.O_TRUNC != 0 && len(in.data) > 0 {
		in.truncate(0)
		in.mod = c.tick()
	}
	return &file{c: c, in: in, name: name, write: flag&(os.O_WRONLY|os.O_RDWR) != 0}, nil
}

// ReadDir implements durable.FS: regular files, sorted by name.
func (c *FS) ReadDir(name string) ([]fs.DirEntry, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	d, ok := c.dirs[filepath.Clean("/"+name)]
	if !ok {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: fs.ErrNotExist}
	}
	names := slices.Sorted(func(yield func(string) bool) {
		for n := range d.entries {
			if !yield(n) {
				return
			}
		}
	})
	des := make([]fs.DirEntry, len(names))
	for i, n := range names {
		des[i] = fs.FileInfoToDirEntry(info{n, d.entries[n]})
	}
	return des, nil
}

// Stat implements durable.FS.
func (c *FS) Stat(name string) (fs.FileInfo, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, base, in, err := c.lookup(name)
	if err == nil && in == nil {
		err = &fs.PathError{Op: "stat", Path: name, Err: fs.ErrNotExist}
	}
	if err != nil {
		return nil, err
	}
	return info{base, in}, nil
}

// Remove implements durable.FS; the removal is durable at the next SyncDir.
func (c *FS) Remove(name string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	d, base, in, err := c.lookup(name)
	if err == nil && in == nil {
		err = &fs.PathError{Op: "remove", Path: name, Err: fs.ErrNotExist}
	}
	if err != nil {
		return err
	}
	delete(d.entries, base)
	return nil
}

// Rename implements durable.FS; the new name is durable at the next SyncDir.
func (c *FS) Rename(oldpath, newpath string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	od, obase, in, err := c.lookup(oldpath)
	if err == nil && in == nil {
		err = &fs.PathError{Op: "rename", Path: oldpath, Err: fs.ErrNotExist}
	}
	if err != nil {
		return err
	}
	nd, nbase, _, err := c.lookup(newpath)
	if err != nil {
		return err
	}
	delete(od.entries, obase)
	nd.entries[nbase] = in
	return nil
}

// MkdirAll implements durable.FS; directories themselves are always
// durable.
func (c *FS) MkdirAll(path string, _ fs.FileMode) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for p := filepath.Clean("/" + path); ; p = filepath.Dir(p) {
		if _, ok := c.dirs[p]; !ok {
			c.dirs[p] = &dir{entries: map[string]*inode{}, durable: map[string]*inode{}}
		}
		if p == "/" {
			return nil
		}
	}
}

// SyncDir implements durable.FS.
func (c *FS) SyncDir(name string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	d, ok := c.dirs[filepath.Clean("/"+name)]
	if !ok {
		return &fs.PathError{Op: "sync", Path: name, Err: fs.ErrNotExist}
	}
	d.durable = maps.Clone(d.entries)
	return nil
}

// Free implements durable.FS: the room left below the limit.
func (c *FS) Free(string) (int64, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.limit == 0 {
		return 1 << 62, nil
	}
	return max(0, c.limit-c.usedLocked()), nil
}

// Lock implements durable.FS: one holder per name.
func (c *FS) Lock(name string) (io.Closer, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	d, base, in, err := c.lookup(name)
	if err != nil {
		return nil, err
	}
	if in == nil {
		d.entries[base] = &inode{mod: c.tick()}
	}
	key := filepath.Clean("/" + name)
	if c.locks[key] {
		return nil, fmt.Errorf("%s: %w", name, durable.ErrLocked)
	}
	c.locks[key] = true
	return unlock{c, key}, nil
}

type unlock struct {
	c   *FS
	key string
}

func (u unlock) Close() error {
	u.c.mu.Lock()
	defer u.c.mu.Unlock()
	delete(u.c.locks, u.key)
	return nil
}

// Cut returns the file system as a power cut leaves it (see the package
// doc). c itself is unchanged, so a test may go on inspecting it.
func (c *FS) Cut() *FS {
	c.mu.Lock()
	defer c.mu.Unlock()
	after := &FS{rng: c.rng, dirs: map[string]*dir{}, locks: map[string]bool{}, clock: c.clock, limit: c.limit}
	kept := map[*inode]*inode{} // hard links stay one inode
	for _, name := range slices.Sorted(maps.Keys(c.dirs)) {
		d := c.dirs[name]
		nd := &dir{entries: map[string]*inode{}}
		for _, base := range slices.Sorted(maps.Keys(d.durable)) {
			in := d.durable[base]
			if _, ok := kept[in]; !ok {
				kept[in] = &inode{data: c.survivor(in), mod: in.mod}
				kept[in].synced = bytes.Clone(kept[in].data)
			}
			nd.entries[base] = kept[in]
		}
		nd.durable = maps.Clone(nd.entries)
		after.dirs[name] = nd
	}
	return after
}

// survivor is what a power cut leaves of in: its synced bytes, then a
// random number of the changes since, the next of them torn.
func (c *FS) survivor(in *inode) []byte {
	out := bytes.Clone(in.synced)
	n := c.rng.IntN(len(in.pending) + 1)
	for i, o := range in.pending {
		if i > n {
			break
		}
		if o.data == nil {
			if i < n || c.rng.IntN(2) == 0 {
				out = resize(out, o.size)
			}
			continue
		}
		data := o.data
		if i == n {
			data = data[:c.rng.IntN(len(data)+1)] // torn
		}
		out = writeAt(out, o.off, data)
	}
	return out
}

func resize(b []byte, size int64) []byte {
	if int64(len(b)) >= size {
		return b[:size]
	}
	return append(b, make([]byte, size-int64(len(b)))...)
}

func writeAt(b []byte, off int64, p []byte) []byte {
	if end := off + int64(len(p)); end > int64(len(b)) {
		b = resize(b, end)
	}
	copy(b[off:], p)
	return b
}

func (in *inode) truncate(size int64) {
	in.data = resize(in.data, size)
	in.pending = append(in.pending, op{size: size})
}

// file is an open file.
type file struct {
	c      *FS
	in     *inode
	name   string
	write  bool
	off    int64 // for Write
	closed bool
}

var errClosed = errors.New("file already closed")

func (f *file) check(writing bool) error {
	switch {
	case f.closed:
		return &fs.PathError{Op: "use", Path: f.name, Err: errClosed}
	case writing && !f.write:
		return &fs.PathError{Op: "write", Path: f.name, Err: fs.ErrPermission}
	}
	return nil
}

func (f *file) ReadAt(p []byte, off int64) (int, error) {
	f.c.mu.Lock()
	defer f.c.mu.Unlock()
	if err := f.check(false); err != nil {
		return 0, err
	}
	if off >= int64(len(f.in.data)) {
		return 0, io.EOF
	}
	n := copy(p, f.in.data[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (f *file) WriteAt(p []byte, off int64) (int, error) {
	f.c.mu.Lock()
	defer f.c.mu.Unlock()
	if err := f.check(true); err != nil {
		return 0, err
	}
	if grow := off + int64(len(p)) - int64(len(f.in.data)); grow > 0 && f.c.limit > 0 && f.c.usedLocked()+grow > f.c.limit {
		// A full disk takes what fits, as write(2) does, then fails.
		room := max(0, int(f.c.limit-f.c.usedLocked()+int64(len(f.in.data))-off))
		room = min(room, len(p))
		f.apply(p[:room], off)
		return room, &fs.PathError{Op: "write", Path: f.name, Err: syscall.ENOSPC}
	}
	f.apply(p, off)
	return len(p), nil
}

func (f *file) apply(p []byte, off int64) {
	if len(p) == 0 {
		return
	}
	f.in.data = writeAt(f.in.data, off, p)
	f.in.pending = append(f.in.pending, op{off: off, data: bytes.Clone(p)})
	f.in.mod = f.c.tick()
}

func (f *file) Write(p []byte) (int, error) {
	n, err := f.WriteAt(p, f.off)
	f.off += int64(n)
	return n, err
}

func (f *file) Truncate(size int64) error {
	f.c.mu.Lock()
	defer f.c.mu.Unlock()
	if err := f.check(true); err != nil {
		return err
	}
	f.in.truncate(size)
	f.in.mod = f.c.tick()
	return nil
}

func (f *file) Datasync() error {
	f.c.mu.Lock()
	defer f.c.mu.Unlock()
	if err := f.check(false); err != nil {
		return err
	}
	f.in.synced, f.in.pending = bytes.Clone(f.in.data), nil
	return nil
}

func (f *file) Stat() (fs.FileInfo, error) {
	f.c.mu.Lock()
	defer f.c.mu.Unlock()
	return info{filepath.Base(f.name), f.in}, nil
}

func (f *file) Name() string { return f.name }

func (f *file) Close() error {
	f.c.mu.Lock()
	defer f.c.mu.Unlock()
	if f.closed {
		return &fs.PathError{Op: "close", Path: f.name, Err: errClosed}
	}
	f.closed = true
	return nil
}

// info describes a file; the size is what the process sees. It is a
// snapshot taken under the lock.
type info struct {
	name string
	in   *inode
}

func (i info) Name() string       { return i.name }
func (i info) Size() int64        { return int64(len(i.in.data)) }
func (i info) Mode() fs.FileMode  { return 0o640 }
func (i info) ModTime() time.Time { return i.in.mod }
func (i info) IsDir() bool        { return false }
func (i info) Sys() any           { return nil }

// WriteFile writes a file and makes it durable, entry included: for a test
// to set up what exists before it starts (a boot id).
func (c *FS) WriteFile(name string, data []byte) error {
	if err := c.MkdirAll(filepath.Dir(filepath.Clean("/"+name)), 0o750); err != nil {
		return err
	}
	f, err := c.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o640)
	if err != nil {
		return err
	}
	if _, err := f.WriteAt(data, 0); err != nil {
		return err
	}
	if err := f.Datasync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return c.SyncDir(filepath.Dir(filepath.Clean("/" + name)))
}
