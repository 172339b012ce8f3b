package bench

import (
	"bytes"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"google.golang.org/protobuf/proto"

	"github.com/fieldgate/fieldgate/bridge/sparkplug/sparkplugpb"
)

// subscriber counts what reaches a consumer: messages, readings, the bytes
// of their PUBLISH packets, which seqs arrived and, when asked, how long
// each reading took from its read time to here. It parses each payload
// format only as far as counting needs.
type subscriber struct {
	client paho.Client
	format string

	messages, readings, wire atomic.Int64

	counted   chan struct{} // closed once readings reach wantCount
	wantCount atomic.Int64

	mu        sync.Mutex
	seen      []uint64 // bitmap of seqs
	low       uint64   // lowest seq not seen yet
	target    uint64   // reached closes when low passes it
	reached   chan struct{}
	reachedAt time.Time
	latencies []time.Duration // nil unless recording
	liveFrom  uint64          // latencies are those of seqs from this one on
}

// subscribe connects a counting subscriber to the data topics of format at
// qos, and returns once the broker has acknowledged.
func subscribe(t testing.TB, broker, format string, qos byte) *subscriber {
	t.Helper()
	s := &subscriber{format: format, low: 1}
	o := paho.NewClientOptions().AddBroker(broker).SetClientID("bench-sub-" + strconv.FormatInt(time.Now().UnixNano(), 36)).
		SetAutoReconnect(false).SetCleanSession(true)
	s.client = paho.NewClient(o)
	if tok := s.client.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscriber: %v", tok.Error())
	}
	t.Cleanup(func() { s.client.Disconnect(50) })
	if tok := s.client.Subscribe(dataFilter(format), qos, s.handle); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	return s
}

// dataFilter is the topic filter of a format's reading messages.
func dataFilter(format string) string {
	switch format {
	case "batch", "compact":
		return prefix + "/" + adapter
	case "sparkplug":
		return "spBv1.0/bench/DDATA/+/" + adapter
	}
	return prefix + "/" + adapter + "/+"
}

func (s *subscriber) handle(_ paho.Client, m paho.Message) {
	now := time.Now()
	topic, p := m.Topic(), m.Payload()
	if strings.HasSuffix(topic, "/status") {
		return
	}
	n := 2 + len(topic) + len(p)
	if m.Qos() > 0 {
		n += 2 // packet id
	}
	n += 1 + varLen(n)
	s.messages.Add(1)
	s.wire.Add(int64(n))
	switch s.format {
	case "json":
		seq, _ := number(p, `"seq":`)
		s.arrived(seq, 1, now, func(int) time.Time { return rfc3339(p) })
	case "value":
		s.count(1)
	case "batch":
		for rest := p; ; {
			i := bytes.Index(rest, []byte(`"seq":`))
			if i < 0 {
				break
			}
			obj := rest[:i]
			rest = rest[i:]
			seq, _ := number(rest, `"seq":`)
			s.arrived(seq, 1, now, func(int) time.Time { return rfc3339(obj[bytes.LastIndex(obj, []byte(`"ts":`)):]) })
			rest = rest[6:]
		}
	case "compact":
		seq, _ := number(p, `"seq":`)
		ts, _ := number(p, `"ts":`)
		runs := compactTimes(p)
		count := 0
		for _, r := range runs {
			count += r[0]
		}
		s.arrived(seq, count, now, func(i int) time.Time {
			for _, r := range runs {
				if i < r[0] {
					return time.UnixMilli(int64(ts) + int64(r[1]))
				}
				i -= r[0]
			}
			return time.Time{}
		})
	case "sparkplug":
		var pl sparkplugpb.Payload
		if proto.Unmarshal(p, &pl) == nil {
			s.count(len(pl.GetMetrics()))
		}
	}
}

// count adds n readings.
func (s *subscriber) count(n int) {
	total := s.readings.Add(int64(n))
	if w := s.wantCount.Load(); w > 0 && total >= w && s.wantCount.CompareAndSwap(w, 0) {
		close(s.counted)
	}
}

// awaitReadings waits until n readings have arrived in all.
func (s *subscriber) awaitReadings(t testing.TB, n int64, limit time.Duration) {
	t.Helper()
	s.counted = make(chan struct{})
	s.wantCount.Store(n)
	if s.readings.Load() >= n && s.wantCount.CompareAndSwap(n, 0) {
		return
	}
	select {
	case <-s.counted:
	case <-time.After(limit):
		t.Fatalf("%d readings of %d arrived in %v", s.readings.Load(), n, limit)
	}
}

// arrived records count readings from seq on; at gives the read time of
// the i-th, for latencies.
func (s *subscriber) arrived(seq uint64, count int, now time.Time, at func(i int) time.Time) {
	s.count(count)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.latencies != nil {
		for i := range count {
			if seq+uint64(i) >= s.liveFrom {
				s.latencies = append(s.latencies, now.Sub(at(i)))
			}
		}
	}
	for q := seq; q < seq+uint64(count); q++ {
		w := int(q / 64)
		for w >= len(s.seen) {
			s.seen = append(s.seen, 0)
		}
		s.seen[w] |= 1 << (q % 64)
	}
	for int(s.low/64) < len(s.seen) && s.seen[s.low/64]&(1<<(s.low%64)) != 0 {
		s.low++
	}
	if s.reached != nil && s.low > s.target {
		s.reachedAt = now
		close(s.reached)
		s.reached = nil
	}
}

// awaitAll waits until every seq from 1 to last has arrived and returns
// when the last of them did.
func (s *subscriber) awaitAll(t testing.TB, last uint64, limit time.Duration) time.Time {
	t.Helper()
	s.mu.Lock()
	if s.low > last {
		at := s.reachedAt
		s.mu.Unlock()
		return at
	}
	done := make(chan struct{})
	s.target, s.reached = last, done
	s.mu.Unlock()
	select {
	case <-done:
	case <-time.After(limit):
		s.mu.Lock()
		low := s.low
		s.mu.Unlock()
		t.Fatalf("seq %d still missing after %v (waiting for every seq up to %d)", low, limit, last)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reachedAt
}

// record starts (or, with false, stops) keeping latencies, returning those
// kept so far.
func (s *subscriber) record(on bool) []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.latencies
	s.latencies = nil
	if on {
		s.latencies = make([]time.Duration, 0, 1<<16)
	}
	return out
}

// number parses the unsigned integer after key in p.
func number(p []byte, key string) (uint64, bool) {
	i := bytes.Index(p, []byte(key))
	if i < 0 {
		return 0, false
	}
	var v uint64
	ok := false
	for _, c := range p[i+len(key):] {
		if c < '0' || c > '9' {
			break
		}
		v, ok = v*10+uint64(c-'0'), true
	}
	return v, ok
}

// rfc3339 parses the "ts" of a json reading.
func rfc3339(p []byte) time.Time {
	i := bytes.Index(p, []byte(`"ts":"`))
	if i < 0 || len(p) < i+6+24 {
		return time.Time{}
	}
	ts, _ := time.Parse(time.RFC3339Nano, string(p[i+6:i+6+24]))
	return ts
}

// compactTimes parses the "times" runs of a compact message: [count,
// offset in ms] pairs.
func compactTimes(p []byte) [][2]int {
	i := bytes.Index(p, []byte(`"times":[`))
	if i < 0 {
		return nil
	}
	var runs [][2]int
	var cur [2]int
	field, neg, depth := 0, false, 0
	for _, c := range p[i+len(`"times":[`)-1:] {
		switch {
		case c == '[':
			depth++
			cur, field, neg = [2]int{}, 0, false
		case c == ']':
			depth--
			if depth == 0 {
				return runs
			}
			if neg {
				cur[1] = -cur[1]
			}
			runs = append(runs, cur)
		case c == ',':
			field = 1
		case c == '-':
			neg = true
		case c >= '0' && c <= '9':
			cur[field] = cur[field]*10 + int(c-'0')
		}
	}
	return runs
}

// varLen is the size of an MQTT remaining-length field.
func varLen(n int) int {
	switch {
	case n < 128:
		return 1
	case n < 16384:
		return 2
	case n < 2097152:
		return 3
	}
	return 4
}
