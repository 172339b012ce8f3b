// Package durable is the file system the buffer's log and the state files
// write through, with the sync calls that make their data durable. OS is
// the operating system's; tests substitute a file system that simulates
// power cuts (crashfs) to check what recovery keeps.
package durable

import (
	"errors"
	"io"
	"io/fs"
	"os"
)

// FS is the part of a file system the buffer and state files use.
type FS interface {
	OpenFile(name string, flag int, perm fs.FileMode) (File, error)
	ReadDir(name string) ([]fs.DirEntry, error)
	Stat(name string) (fs.FileInfo, error)
	Remove(name string) error
	Rename(oldpath, newpath string) error
	MkdirAll(path string, perm fs.FileMode) error
	// SyncDir makes dir's entries (a new, renamed or removed file)
	// durable; without it a power cut can lose a file whose contents were
	// synced.
	SyncDir(dir string) error
	// Free returns the bytes available to the process on the file system
	// holding path.
	Free(path string) (int64, error)
	// Lock takes an exclusive lock on the file name, creating it, so two
	// processes never share what it guards; it fails with ErrLocked when
	// another holds it. The lock ends with its Close (or the process).
	Lock(name string) (io.Closer, error)
}

// File is an open file of an FS.
type File interface {
	io.ReaderAt
	io.WriterAt
	io.Writer
	Truncate(size int64) error
	// Datasync flushes the file's data and the metadata needed to read it
	// back (its size).
	Datasync() error
	Stat() (fs.FileInfo, error)
	Name() string
	Close() error
}

// ErrLocked says another process holds a lock.
var ErrLocked = errors.New("in use by another process")

// OS is the operating system's file system.
var OS FS = osFS{}

type osFS struct{}

func (osFS) OpenFile(name string, flag int, perm fs.FileMode) (File, error) {
	f, err := os.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return osFile{f}, nil
}

func (osFS) ReadDir(name string) ([]fs.DirEntry, error) { return os.ReadDir(name) }
func (osFS) Stat(name string) (fs.FileInfo, error)      { return os.Stat(name) }
func (osFS) Remove(name string) error                   { return os.Remove(name) }
func (osFS) Rename(oldpath, newpath string) error       { return os.Rename(oldpath, newpath) }
func (osFS) MkdirAll(path string, perm fs.FileMode) error {
	return os.MkdirAll(path, perm)
}

func (osFS) SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	return errors.Join(err, d.Close())
}

func (osFS) Lock(name string) (io.Closer, error) { return lock(name) }
func (osFS) Free(path string) (int64, error)     { return free(path) }

// osFile is an *os.File with Datasync.
type osFile struct{ *os.File }

func (f osFile) Datasync() error { return datasync(f.File) }

// ReadFile reads the whole file name of fsys, to its end: files of /proc
// report a size of 0.
func ReadFile(fsys FS, name string) ([]byte, error) {
	f, err := fsys.OpenFile(name, os.O_RDONLY, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.NewSectionReader(f, 0, 1<<62))
}
