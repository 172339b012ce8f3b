package bridge

import (
	"hash/fnv"
	"strconv"

	"github.com/fieldgate/fieldgate/buffer"
)

// dictSuffix ends the topic of an adapter's point dictionary in the compact
// format. No point name holds a "$", so the topic is no reading's or
// command's.
const dictSuffix = "/$points"

// compactEncoder is format "compact": an adapter's consecutive readings in
// columns on <prefix>/<adapter>, at most max per message, never retained:
//
//	{"seq":1042,"ts":1764745200123,"dict":"9f3a1c22","points":[[0,125],[130,75]],
//	 "times":[[125,0],[75,3]],"values":[21.5,true,…]}
//
// seq is the first reading's, and the readings' seqs follow on without a
// gap (a gap starts a new message); ts is the first reading's read time in
// milliseconds since 1970; points are runs of [first index, count] into the
// adapter's dictionary, times runs of [count, milliseconds after ts], both
// in the readings' order; values are JSON values as in format "json".
//
// The dictionary lists the adapter's point names in the order the gateway
// first met them, which is the order of a poll cycle, so a whole cycle is
// one run, and their units. It is published retained at QoS 1 on
// <prefix>/<adapter>/$points,
//
//	{"dict":"9f3a1c22","points":["supply_temp","pump",…],"units":{"supply_temp":"degC"}}
//
// before the first message of each link that uses it, and whenever it
// grows or a unit changes. dict names its contents (FNV-1a of names and
// units), so it stays the same across restarts with the same config, and a
// consumer can tell a message it cannot decode yet.
type compactEncoder struct {
	prefix string
	max    int
	dicts  map[string]*pointDict // by adapter
	view   *view                 // the view the dictionaries' units come from
}

// pointDict is one adapter's dictionary.
type pointDict struct {
	names     []string
	index     map[string]int
	units     []string
	id        string // hex of the FNV-1a hash; "" until computed
	published bool   // on this link
}

func newCompactEncoder(prefix string, max int) *compactEncoder {
	return &compactEncoder{prefix: prefix, max: max, dicts: map[string]*pointDict{}}
}

func (e *compactEncoder) entries(n int) int { return runEntries(n, e.max) }

// linkStarted forgets what was published: a broker may have lost retained
// messages while the link was down.
func (e *compactEncoder) linkStarted() {
	for _, d := range e.dicts {
		d.published = false
	}
}

func (e *compactEncoder) encode(es []buffer.Entry, v *view) (message, int) {
	first := es[0]
	n := 1
	for n < len(es) && n < e.max && es[n].Adapter == first.Adapter && es[n].Seq == es[n-1].Seq+1 {
		n++
	}
	if v != e.view {
		e.view = v
		for a, d := range e.dicts {
			d.relabel(a, v)
		}
	}
	d := e.dicts[first.Adapter]
	if d == nil {
		d = &pointDict{index: map[string]int{}}
		e.dicts[first.Adapter] = d
	}
	if !d.holds(es[:n]) {
		// Take in the adapter's points among all the entries read, not
		// only this message's, so a poll cycle split over messages
		// makes one dictionary, not one per message.
		for _, r := range es {
			if r.Adapter == first.Adapter {
				d.add(r.Adapter, r.Point, v)
			}
		}
	}
	if d.id == "" {
		d.seal()
	}
	if !d.published {
		d.published = true
		return message{topic: e.prefix + "/" + first.Adapter + dictSuffix, payload: d.appendJSON(nil), retain: true,
			minQoS: 1, first: first.Seq, last: first.Seq - 1}, 0
	}
	return message{topic: e.prefix + "/" + first.Adapter, payload: e.appendReadings(make([]byte, 0, 64+8*n), d, es[:n]),
		first: first.Seq, last: es[n-1].Seq}, n
}

// appendReadings appends the data message of rs, whose points d holds.
func (e *compactEncoder) appendReadings(b []byte, d *pointDict, rs []buffer.Entry) []byte {
	ts := rs[0].Time.UnixMilli()
	b = append(b, `{"seq":`...)
	b = strconv.AppendUint(b, rs[0].Seq, 10)
	b = append(b, `,"ts":`...)
	b = strconv.AppendInt(b, ts, 10)
	b = append(b, `,"dict":"`...)
	b = append(b, d.id...)
	b = append(b, `","points":[`...)
	for i := 0; i < len(rs); {
		start, k := d.index[rs[i].Point], 1
		for i+k < len(rs) && d.index[rs[i+k].Point] == start+k {
			k++
		}
		b = appendPair(b, i > 0, int64(start), int64(k))
		i += k
	}
	b = append(b, `],"times":[`...)
	for i := 0; i < len(rs); {
		off, k := rs[i].Time.UnixMilli()-ts, 1
		for i+k < len(rs) && rs[i+k].Time.UnixMilli()-ts == off {
			k++
		}
		b = appendPair(b, i > 0, int64(k), off)
		i += k
	}
	b = append(b, `],"values":[`...)
	for i, r := range rs {
		if i > 0 {
			b = append(b, ',')
		}
		b = r.Value.AppendJSON(b)
	}
	return append(b, "]}"...)
}

// appendPair appends [x,y], after a comma unless it is the first.
func appendPair(b []byte, comma bool, x, y int64) []byte {
	if comma {
		b = append(b, ',')
	}
	b = append(b, '[')
	b = strconv.AppendInt(b, x, 10)
	b = append(b, ',')
	b = strconv.AppendInt(b, y, 10)
	return append(b, ']')
}

// holds reports whether every point of rs has an index.
func (d *pointDict) holds(rs []buffer.Entry) bool {
	for _, r := range rs {
		if _, ok := d.index[r.Point]; !ok {
			return false
		}
	}
	return true
}

// add gives point an index if it has none; the dictionary then changes.
func (d *pointDict) add(adapter, point string, v *view) {
	if _, ok := d.index[point]; ok {
		return
	}
	d.index[point] = len(d.names)
	d.names = append(d.names, point)
	d.units = append(d.units, v.units[pointKey{adapter, point}])
	d.id, d.published = "", false
}

// relabel takes the units of v; a changed unit changes the dictionary.
func (d *pointDict) relabel(adapter string, v *view) {
	for i, p := range d.names {
		if u := v.units[pointKey{adapter, p}]; u != d.units[i] {
			d.units[i], d.id, d.published = u, "", false
		}
	}
}

// seal names the dictionary after its contents.
func (d *pointDict) seal() {
	h := fnv.New32a()
	for i, p := range d.names {
		_, _ = h.Write([]byte(p))
		_, _ = h.Write([]byte{0})
		_, _ = h.Write([]byte(d.units[i]))
		_, _ = h.Write([]byte{0})
	}
	d.id = strconv.FormatUint(uint64(h.Sum32())|1<<32, 16)[1:] // eight hex digits
}

// appendJSON appends the dictionary's message.
func (d *pointDict) appendJSON(b []byte) []byte {
	b = append(b, `{"dict":"`...)
	b = append(b, d.id...)
	b = append(b, `","points":[`...)
	for i, p := range d.names {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, p)
	}
	b = append(b, ']')
	units := false
	for i, u := range d.units {
		if u == "" {
			continue
		}
		if units {
			b = append(b, ',')
		} else {
			b = append(b, `,"units":{`...)
			units = true
		}
		b = appendString(b, d.names[i])
		b = append(b, ':')
		b = appendString(b, u)
	}
	if units {
		b = append(b, '}')
	}
	return append(b, '}')
}
