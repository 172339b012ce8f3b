package bridge

import "github.com/fieldgate/fieldgate/buffer"

// valueEncoder is format "value": one message per reading on the point's
// topic, the bare value as text (21.5, true).
type valueEncoder struct {
	topics topics
	retain bool
}

func (e *valueEncoder) encode(es []buffer.Entry, _ *view) (message, int) {
	r := es[0]
	b := r.Value.AppendText(make([]byte, 0, 24))
	return message{topic: e.topics.of(pointKey{r.Adapter, r.Point}), payload: b, retain: e.retain, first: r.Seq, last: r.Seq}, 1
}

func (e *valueEncoder) entries(n int) int { return n }
