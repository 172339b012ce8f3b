//go:build !linux

package durable

import (
	"io"
	"os"
)

// datasync falls back to fsync where fdatasync is not available.
func datasync(f *os.File) error { return f.Sync() }

// free reports no limit where statfs is not wired up.
func free(string) (int64, error) { return 1 << 62, nil }

// lock opens the lock file; advisory locking is only implemented on Linux,
// the platform fieldgate runs on.
func lock(path string) (io.Closer, error) {
	return os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o640)
}
