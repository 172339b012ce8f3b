package buffer

import (
	"sync"

	"github.com/fieldgate/fieldgate/internal/reading"
)

// dict maps (adapter, point) to the small ids stored per reading. Ids are
// never reassigned: each new segment opens with a snapshot of the whole
// dictionary, so the newest segment alone rebuilds it at Open, and older
// segments can be deleted without losing a definition.
type dict struct {
	mu    sync.RWMutex
	ids   map[pointKey]uint32
	names []pointKey // by id
	known []bool     // by id: names[id] is defined
	next  uint32     // next id to assign; above every id ever seen
}

func newDict() *dict { return &dict{ids: make(map[pointKey]uint32)} }

// assign appends the id of each reading's point to ids, defining new ones.
// A poll's points were defined in the order it reads them, so each reading's
// id is tried first as the one after the reading before it: comparing the
// names (the same strings, so pointers compare) costs less than hashing them.
func (d *dict) assign(rs []reading.Reading, ids []uint32) []uint32 {
	d.mu.Lock()
	defer d.mu.Unlock()
	guess := uint64(len(d.names)) // none
	for _, r := range rs {
		k := pointKey{r.Adapter, r.Point}
		id, ok := uint32(guess), guess < uint64(len(d.names)) && d.known[guess] && d.names[guess] == k
		if !ok {
			id, ok = d.ids[k]
		}
		if !ok {
			id = d.next
			d.define(id, k)
		}
		ids = append(ids, id)
		guess = uint64(id) + 1
	}
	return ids
}

// define sets id's name; the caller holds d.mu for writing.
func (d *dict) define(id uint32, k pointKey) {
	for uint64(len(d.names)) <= uint64(id) {
		d.names = append(d.names, pointKey{})
		d.known = append(d.known, false)
	}
	d.names[id], d.known[id] = k, true
	if _, ok := d.ids[k]; !ok {
		d.ids[k] = id
	}
	d.bump(uint64(id) + 1)
}

func (d *dict) bump(end uint64) {
	if end > uint64(d.next) {
		d.next = uint32(min(end, 1<<32-1))
	}
}

// merge adds definitions read from the log, keeping any id already defined,
// and raises the next id above refEnd (one past the highest id referenced)
// so an id whose definition was lost is not given to another point.
func (d *dict) merge(defs []def, refEnd uint64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, df := range defs {
		if uint64(df.id) >= uint64(len(d.known)) || !d.known[df.id] {
			d.define(df.id, df.key)
		}
	}
	d.bump(refEnd)
}

// since returns the definitions of ids from from on, and the id after them.
func (d *dict) since(from uint32) ([]def, uint32) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	var defs []def
	for id := uint64(from); id < uint64(len(d.names)); id++ {
		if d.known[id] {
			defs = append(defs, def{uint32(id), d.names[id]})
		}
	}
	return defs, d.next
}

// lookup returns the name of id.
func (d *dict) lookup(id uint32) (pointKey, bool) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	if uint64(id) >= uint64(len(d.known)) || !d.known[id] {
		return pointKey{}, false
	}
	return d.names[id], true
}
