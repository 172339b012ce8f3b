package bench

import (
	"fmt"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/fieldgate/fieldgate/buffer"
	"github.com/fieldgate/fieldgate/internal/reading"
)

// drainPoints is the device whose cycles fill the backlog, and which the
// gateway keeps polling, every drainInterval, while it drains.
const (
	drainPoints   = 200
	drainInterval = time.Second
)

// drain delivers a backlog of r.sz.backlog readings, per format, and
// measures how long that takes from the gateway's start with the broker up,
// the gateway's peak RSS meanwhile, whether polling kept every cycle and
// how long the readings polled meanwhile took to arrive. The backlog is
// written once with the buffer package, as an outage writes it (poll
// cycles of the device's 200 points, 10 ms apart), and copied for each
// format.
func (r *rig) drain() {
	backlog := filepath.Join(r.t.TempDir(), "backlog")
	last := writeBacklog(r.t, backlog, r.sz.backlog)
	for _, format := range formats("json", "batch", "compact") {
		dir := filepath.Join(r.t.TempDir(), "buffer")
		copyDir(r.t, backlog, dir)
		bank, addr := device(r.t, drainPoints)
		sub := subscribe(r.t, r.broker.URL(), format, 1)
		sub.liveFrom = last + 1
		sub.record(true)
		reads0 := bank.Reads()
		g := r.startGateway("drain-"+format, gwConfig{device: addr, points: drainPoints, interval: drainInterval.String(),
			broker: r.broker.URL(), qos: 1, format: format, dir: dir})
		done := sub.awaitAll(r.t, last, r.sz.drainLimit)
		took := done.Sub(g.started)
		cycles := (bank.Reads() - reads0) / 2 // 200 points: two requests a cycle
		u := g.usage()
		live := sub.record(false)
		g.stop()
		sub.client.Disconnect(50)

		rate := float64(last) / took.Seconds()
		r.res.add(fmt.Sprintf("drain %s: %d readings", format, last), took.Seconds(), "s", "", nil)
		r.res.add(fmt.Sprintf("drain %s", format), rate, "readings/s", "", nil)
		r.drains[format] = rate
		r.res.check(fmt.Sprintf("drain %s: peak RSS", format), u.hwm, "MiB", "< 40", below(40))
		r.keptCycles(fmt.Sprintf("drain %s", format), cycles, took, drainInterval)
		if len(live) > 0 {
			r.res.add(fmt.Sprintf("drain %s: p99 latency of readings polled meanwhile", format), ms(percentile(live, 0.99)), "ms", "", nil)
		}
	}
}

// keptCycles records the poll cycles of a drain against those its
// interval asked for: one at the start, one each interval after.
func (r *rig) keptCycles(what string, cycles int, took, interval time.Duration) {
	want := int(took/interval) + 1
	r.res.check(what+": poll cycles kept", float64(cycles), "cycles",
		"≥ "+strconv.Itoa(want-1)+" (1 per "+interval.String()+")", atLeast(float64(want-1)))
}

// writeBacklog fills a buffer for upstream "local" with poll cycles of the
// drain device and returns the last seq.
func writeBacklog(t testing.TB, dir string, n int) uint64 {
	t.Helper()
	b, err := buffer.Open(dir, []string{"local"}, buffer.Options{Fsync: buffer.FsyncNever})
	if err != nil {
		t.Fatal(err)
	}
	names := make([]string, drainPoints)
	for i := range names {
		names[i] = "p" + strconv.Itoa(i)
	}
	rs := make([]reading.Reading, drainPoints)
	start := time.Now().Add(-time.Hour)
	var last uint64
	for cycle := 0; cycle*drainPoints < n; cycle++ {
		at := start.Add(time.Duration(cycle) * 10 * time.Millisecond)
		for i := range rs {
			rs[i] = reading.Reading{Adapter: adapter, Point: names[i], Time: at, Value: reading.Uint(uint64(97 * i % 10000))}
		}
		if _, last, err = b.Append(rs); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	return last
}
