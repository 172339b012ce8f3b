package sparkplug

import (
	"errors"
	"fmt"
	"io/fs"

	"github.com/fieldgate/fieldgate/internal/statefile"
)

// BdSeqFormat tells a bdSeq file from the gateway's other state files.
var BdSeqFormat = statefile.Format{Magic: [4]byte{'F', 'G', 'B', 'D'}, Align: 64}

// BdSeq is the birth/death sequence number of an edge node, kept in a
// small crash-safe state file: 0 at the first MQTT CONNECT ever, one more
// at each CONNECT after it, 255 followed by 0. It is kept on disk because
// a host application pairs an NDEATH with the NBIRTH of the same bdSeq:
// after a restart the gateway must not reuse the number of the session
// whose will the broker may still deliver. Not safe for concurrent use.
type BdSeq struct {
	file *statefile.File // nil: kept in memory only
	last uint8
	used bool // last holds a number already used
}

// OpenBdSeq loads the bdSeq kept in file, a state file of BdSeqFormat,
// which the first Next creates if need be. A file that exists but has no
// valid state is an error wrapping statefile.ErrCorrupt; setting it aside
// (statefile.File.SetAside) starts the count at 0 again. A nil file keeps
// the count in memory only, for a gateway that has nowhere to keep it: a
// restart then starts again at 0.
func OpenBdSeq(file *statefile.File) (*BdSeq, error) {
	b := &BdSeq{file: file}
	if file == nil {
		return b, nil
	}
	payload, err := b.file.Load()
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return b, nil
	case err != nil:
		return nil, fmt.Errorf("sparkplug bdSeq: %w", err)
	case len(payload) != 1:
		return nil, fmt.Errorf("sparkplug bdSeq %s: %w: %d bytes of state", file.Path(), statefile.ErrCorrupt, len(payload))
	}
	b.last, b.used = payload[0], true
	return b, nil
}

// Next returns the bdSeq for the next MQTT CONNECT, once it is durably
// saved: call it before each connect and put the number in that
// connection's will and its NBIRTH. On an error the number is not used
// up, and the next call tries again.
func (b *BdSeq) Next() (uint8, error) {
	n := uint8(0)
	if b.used {
		n = b.last + 1 // wraps from 255 to 0
	}
	if b.file != nil {
		if err := b.file.Save([]byte{n}); err != nil {
			return 0, fmt.Errorf("sparkplug bdSeq: %w", err)
		}
	}
	b.last, b.used = n, true
	return n, nil
}

// Close releases the file.
func (b *BdSeq) Close() error {
	if b.file == nil {
		return nil
	}
	return b.file.Close()
}
