package bench

import (
	"fmt"
	"slices"
	"time"
)

// latencyPoints at latencyInterval make 1,000 readings a second.
const (
	latencyPoints   = 100
	latencyInterval = 100 * time.Millisecond
)

// latency measures, per format, how long readings take from their read
// time (the "ts" they carry, in whole milliseconds, so each figure may be
// up to 1 ms high) to a subscriber, at 1,000 readings a second, QoS 1.
func (r *rig) latency() {
	for _, format := range formats("json", "batch", "compact") {
		_, addr := device(r.t, latencyPoints)
		sub := subscribe(r.t, r.broker.URL(), format, 1)
		g := r.startGateway("latency-"+format, gwConfig{device: addr, points: latencyPoints, interval: latencyInterval.String(),
			broker: r.broker.URL(), qos: 1, format: format})
		ls := r.latencies(format, sub, g.stop)
		r.res.add(fmt.Sprintf("latency %s p50 (1,000 readings/s)", format), ms(percentile(ls, 0.50)), "ms", "", nil)
		r.res.check(fmt.Sprintf("latency %s p99 (1,000 readings/s)", format), ms(percentile(ls, 0.99)), "ms", "< 5", below(5))
	}
	// The floor of the json run: bare paho publishing its messages, a burst
	// of latencyPoints each latencyInterval, stamped at the burst's start.
	sub := subscribe(r.t, r.broker.URL(), "json", 1)
	_, done := barePublisher(r.t, r.broker.URL(), 1, r.sz.warm+r.sz.latencyWindow+time.Second, latencyPoints, latencyInterval)
	ls := r.latencies("bare paho", sub, done)
	r.res.add("latency bare paho p50 (1,000 json messages/s)", ms(percentile(ls, 0.50)), "ms", "", nil)
	r.res.add("latency bare paho p99 (1,000 json messages/s)", ms(percentile(ls, 0.99)), "ms", "", nil)
}

// latencies records at sub, past the warm-up, the latency of what a
// publisher already started sends in the window, then ends the publisher
// with stop.
func (r *rig) latencies(name string, sub *subscriber, stop func()) []time.Duration {
	time.Sleep(r.sz.warm) // the warm-up and the window are what is measured
	sub.record(true)
	time.Sleep(r.sz.latencyWindow)
	ls := sub.record(false)
	stop()
	sub.client.Disconnect(50)
	if len(ls) == 0 {
		r.t.Fatalf("%s: no readings arrived in %v", name, r.sz.latencyWindow)
	}
	return ls
}

func percentile(ds []time.Duration, q float64) time.Duration {
	s := slices.Sorted(slices.Values(ds))
	return s[min(len(s)-1, int(q*float64(len(s))))]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
