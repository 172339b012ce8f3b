package bridge

import "github.com/fieldgate/fieldgate/buffer"

// maxBatchRead bounds one buffer read in the batch format.
const maxBatchRead = 4096

// batchEncoder is format "batch": a JSON array of one adapter's readings,
// each with "point" added, on <prefix>/<adapter>, at most max per message,
// never retained.
type batchEncoder struct {
	prefix string
	max    int
	ts     tsText
}

// encode takes the leading run of one adapter's readings, at most e.max.
func (e *batchEncoder) encode(es []buffer.Entry, v *view) (message, int) {
	first := es[0]
	n := 1
	for n < len(es) && n < e.max && es[n].Adapter == first.Adapter {
		n++
	}
	b := make([]byte, 0, 96*n)
	b = append(b, '[')
	for i, r := range es[:n] {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSON(b, r, v.units[pointKey{r.Adapter, r.Point}], true, &e.ts)
	}
	b = append(b, ']')
	return message{topic: e.prefix + "/" + first.Adapter, payload: b, first: first.Seq, last: es[n-1].Seq}, n
}

func (e *batchEncoder) entries(n int) int { return runEntries(n, e.max) }

// runEntries is the entries of an encoder that puts up to max readings in
// a message: n messages' worth, within what one buffer read may ask for.
func runEntries(n, max int) int { return min(n*max, maxBatchRead) }
