package buffer

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/fieldgate/fieldgate/internal/durable"
	"github.com/fieldgate/fieldgate/internal/statefile"
)

// stateFormat is seq.state's and cursors.state's: slots of a page, so
// each save is one page write.
var stateFormat = statefile.Format{Magic: [4]byte{'F', 'G', 'S', '1'}, Align: 4096}

// seqState is the seq reservation: seqs below reserved may have been handed
// out during boot; cleanNext is the exact next seq after a clean Close (0
// while running). key is the buffer's secret frame key (see frameSeal),
// kept here too so that segments whose header is damaged can be read;
// files written before it existed have none.
type seqState struct {
	boot      string
	reserved  uint64
	cleanNext uint64
	key       []byte
}

func (st seqState) encode() []byte {
	b := appendString(nil, st.boot)
	b = binary.AppendUvarint(b, st.reserved)
	b = binary.AppendUvarint(b, st.cleanNext)
	return appendString(b, string(st.key))
}

func decodeSeqState(b []byte) (seqState, error) {
	d := decoder{b: b}
	st := seqState{boot: d.string("boot id"), reserved: d.uvarint("reserved"), cleanNext: d.uvarint("clean next")}
	if len(d.b) > 0 {
		st.key = []byte(d.string("key"))
	}
	if d.err != nil || st.key != nil && len(st.key) != keyLen {
		return seqState{}, errors.Join(d.err, fmt.Errorf("%w: key of %d bytes", errBadRecord, len(st.key)))
	}
	return st, nil
}

// newKey returns a fresh frame key.
func newKey() []byte {
	k := make([]byte, keyLen)
	_, _ = rand.Read(k) // crypto/rand never fails on Linux
	return k
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
	if d.err != nil {
		return nil, d.err
	}
	return c, nil
}

// readBootID returns the kernel's boot id, or "" where there is none; ""
// never matches, so an unknown boot is treated as a reboot (seq jumps, never
// repeats).
func readBootID(fsys durable.FS, path string) string {
	b, err := durable.ReadFile(fsys, path)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}
