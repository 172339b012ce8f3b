//go:build !linux

package buffer

import "os"

// lockDir opens the lock file; advisory locking is only implemented on Linux,
// the platform fieldgate runs on.
func lockDir(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o640)
}
