// Package durable holds the sync calls the buffer's log and its state files
// share, so both make data durable the same way.
package durable

import (
	"errors"
	"os"
)

// SyncDir makes dir's entries (a new or renamed file) durable; without it a
// power cut can lose a file whose contents were synced.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	return errors.Join(err, d.Close())
}
